package guard

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/apply"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// dmsPod is a DMS pod whose dms-init is in the given state.
func dmsPod(node string, created time.Time, st corev1.ContainerStatus, ready bool) *corev1.Pod {
	st.Name = dpf.ContainerDMSInit
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: dpf.PodName(node), Namespace: dpf.DefaultNamespace, UID: types.UID("uid-" + node),
			CreationTimestamp: metav1.NewTime(created), Labels: map[string]string{dpf.ComponentLabel: dpf.ComponentDMS}},
		Spec: corev1.PodSpec{NodeName: node, ServiceAccountName: "dpf-provisioning-dms-service-account",
			InitContainers: []corev1.Container{{Name: dpf.ContainerDMSInit, Image: "example/dpf-hostdriver:v25.4.0"}}},
		Status: corev1.PodStatus{Phase: corev1.PodPending, InitContainerStatuses: []corev1.ContainerStatus{st}},
	}
	if ready {
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	}
	return p
}

func crashLoop(restarts int32, started time.Time) corev1.ContainerStatus {
	return corev1.ContainerStatus{RestartCount: restarts,
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error",
			StartedAt: metav1.NewTime(started), FinishedAt: metav1.NewTime(started.Add(time.Second))}}}
}

func TestFailing(t *testing.T) {
	grace := time.Minute
	starting := corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}}}
	deleting := dmsPod("d", t0, crashLoop(3, t0), false)
	deleting.DeletionTimestamp = &metav1.Time{Time: t0}
	for _, tc := range []struct {
		name      string
		pod       *corev1.Pod
		want      bool
		wantUntil time.Time
	}{
		{"ready", dmsPod("a", t0, corev1.ContainerStatus{}, true), false, time.Time{}},
		{"crash loop", dmsPod("b", t0, crashLoop(2, t0), false), true, time.Time{}},
		{"image pull", dmsPod("c", t0, corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}}, false), true, time.Time{}},
		{"deleting", deleting, false, time.Time{}},
		{"starting within grace", dmsPod("e", t0, starting, false), false, t0.Add(grace)},
		{"not started after grace", dmsPod("f", t0.Add(-2*grace), starting, false), true, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, until := failing(tc.pod, t0.Add(time.Second), grace)
			if got != tc.want || !until.Equal(tc.wantUntil) {
				t.Errorf("failing = %v, until %v; want %v, %v", got, until, tc.want, tc.wantUntil)
			}
		})
	}
}

// After dpfdoctor's RBAC changes, a diagnosed pod whose last run started
// before the change waits for its retry; one that ran since is diagnosed.
func TestTrackerSplit(t *testing.T) {
	tr := newTracker()
	before := dmsPod("old", t0, crashLoop(2, t0), false)
	after := dmsPod("new", t0, crashLoop(3, t0.Add(10*time.Second)), false)
	undiagnosed := dmsPod("fresh", t0, crashLoop(1, t0), false)
	fails := []failingPod{{obj: before}, {obj: after}, {obj: undiagnosed}}
	fresh, waiting := tr.split(fails, "rv1", t0)
	if len(fresh) != 3 || len(waiting) != 0 {
		t.Fatalf("first reconcile: %d fresh, %d waiting", len(fresh), len(waiting))
	}
	tr.report(before.UID, "RBACForbidden|DPF-RBAC-001")
	tr.report(after.UID, "RBACForbidden|DPF-RBAC-001")
	fresh, waiting = tr.split(fails, "rv2", t0.Add(5*time.Second))
	if len(waiting) != 1 || waiting[0].obj != before || len(fresh) != 2 {
		t.Fatalf("after the change: fresh %v, waiting %v", names(fresh), names(waiting))
	}
	if c := tr.class(before.UID); c != "RBACForbidden" {
		t.Errorf("class %q", c)
	}
	if !tr.report(before.UID, "Unknown|X") || tr.report(before.UID, "Unknown|X") {
		t.Error("report must tell a new diagnosis from a repeated one")
	}
}

func names(fs []failingPod) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.obj.Name)
	}
	return out
}

func TestForeign(t *testing.T) {
	entry := func(manager, fields string) metav1.ManagedFieldsEntry {
		return metav1.ManagedFieldsEntry{Manager: manager, Operation: metav1.ManagedFieldsOperationUpdate,
			FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(fields)}
	}
	for _, tc := range []struct {
		name    string
		entries []metav1.ManagedFieldsEntry
		want    bool
	}{
		{"dpfdoctor only", []metav1.ManagedFieldsEntry{entry(plan.FieldManager, `{"f:rules":{}}`)}, false},
		{"a label added by hand", []metav1.ManagedFieldsEntry{entry(plan.FieldManager, `{"f:rules":{}}`),
			entry("kubectl-label", `{"f:metadata":{"f:labels":{"f:team":{}}}}`)}, false},
		{"rules edited by hand", []metav1.ManagedFieldsEntry{entry(plan.FieldManager, `{"f:metadata":{}}`),
			entry("kubectl-edit", `{"f:rules":{}}`)}, true},
		{"subjects edited", []metav1.ManagedFieldsEntry{entry("kubectl-patch", `{"f:subjects":{}}`)}, true},
		{"fix and the guard", []metav1.ManagedFieldsEntry{entry(plan.FieldManager, `{"f:rules":{}}`),
			entry(apply.GuardFieldManager, `{"f:rules":{}}`)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := &unstructured.Unstructured{}
			u.SetManagedFields(tc.entries)
			if got := apply.AlteredByOthers(u); got != tc.want {
				t.Errorf("foreign = %v, want %v", got, tc.want)
			}
		})
	}
}

// A node's permissions are those naming its objects exactly: w1's are not
// w10's.
func TestMissingFor(t *testing.T) {
	a := plan.Addressed{Missing: []access.Request{
		{Verb: "get", Resource: "secrets", Namespace: dpf.DefaultNamespace, Name: dpf.SecretName("w10")},
		{Verb: "get", Resource: "secrets", Namespace: dpf.DefaultNamespace, Name: dpf.SecretName("w1")},
		{Verb: "get", Group: dpf.GroupProvisioning, Resource: "dpunodes", Namespace: dpf.DefaultNamespace, Name: "w1"},
		{Verb: "create", Group: dpf.GroupProvisioning, Resource: "dpunodes", Namespace: dpf.DefaultNamespace},
	}}
	want := a.Missing[1].String() + "; " + a.Missing[2].String()
	if got := missingFor(a, "w1"); got != want {
		t.Errorf("w1: %q, want %q", got, want)
	}
	if got := missingFor(a, "w2"); strings.Count(got, ";") != 3 {
		t.Errorf("no permission of w2's: want all four, got %q", got)
	}
}

func TestRepairCap(t *testing.T) {
	rp := &repairer{r: &reconciler{opts: Options{MaxRepairsPerMinute: 2}}}
	if rp.allow(t0) != 0 || rp.allow(t0.Add(time.Second)) != 0 {
		t.Fatal("the first two repairs must pass")
	}
	if wait := rp.allow(t0.Add(2 * time.Second)); wait <= 0 || wait > time.Minute {
		t.Fatalf("third repair within a minute: wait %v", wait)
	}
	if rp.allow(t0.Add(61*time.Second)) != 0 {
		t.Fatal("a minute later the cap must have room again")
	}
}

func TestClusterVersion(t *testing.T) {
	pods := []*corev1.Pod{
		dmsPod("a", t0, corev1.ContainerStatus{}, true), dmsPod("b", t0, corev1.ContainerStatus{}, true),
		dmsPod("c", t0, corev1.ContainerStatus{}, true),
	}
	pods[2].Spec.InitContainers[0].Image = "example/dpf-hostdriver:v25.7.0" // a skewed hostdriver
	if v, src := evidence.PodsVersion(pods); v != "v25.4.0" || src != evidence.VersionFromPods {
		t.Errorf("version %q from %q", v, src)
	}
	if v, _ := evidence.PodsVersion(nil); v != "" {
		t.Errorf("no pods: %q", v)
	}
}

func TestPruneBackups(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"20250101T000000Z", "20250101T000001Z", "20250101T000001Z-1", "20250102T000000Z"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	pruneBackups(root, 2, testLogger("test"))
	entries, _ := os.ReadDir(root)
	if len(entries) != 2 || entries[0].Name() != "20250101T000001Z-1" || entries[1].Name() != "20250102T000000Z" {
		t.Errorf("kept %v", entries)
	}
}

// The fetcher reads logs for at most maxLogs pods per signature, once, and
// asks each access question once per RBAC state.
func TestFetcherReadsOnce(t *testing.T) {
	cs := fake.NewSimpleClientset()
	f := newFetcher(cs, dpf.DefaultNamespace, 2)
	var fails []failingPod
	for _, n := range []string{"n1", "n2", "n3", "n4"} {
		p := dmsPod(n, t0, crashLoop(1, t0), false)
		ev := evidence.PodFrom(p)
		fails = append(fails, failingPod{obj: p, ev: ev, sig: ev.Signature(), restarts: 1})
	}
	fill := func(state string) *evidence.Bundle {
		b := &evidence.Bundle{Install: evidence.Install{Namespace: dpf.DefaultNamespace, Version: "v25.4.0"}}
		for _, p := range fails {
			b.Pods = append(b.Pods, p.ev)
		}
		if err := f.fill(context.Background(), b, fails, state); err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := fill("s1")
	logs, reviews := count(cs)
	if logs != 2 || len(b.LogGroups) != 1 || len(b.LogGroups[0].Fetched) != 2 || len(b.LogGroups[0].Pods) != 4 {
		t.Fatalf("%d log reads, groups %+v", logs, b.LogGroups)
	}
	if reviews == 0 || len(b.Access) != reviews {
		t.Fatalf("%d reviews for %d checks", reviews, len(b.Access))
	}
	cs.ClearActions()
	fill("s1")
	if l, r := count(cs); l != 0 || r != 0 {
		t.Fatalf("steady state read %d logs and asked %d reviews", l, r)
	}
	// RBAC changed: answers are asked again; logs only for pods that
	// failed again since.
	fails[0].restarts = 2
	cs.ClearActions()
	fill("s2")
	if l, r := count(cs); l != 1 || r != reviews {
		t.Fatalf("after an RBAC change: %d log reads (want 1), %d reviews (want %d)", l, r, reviews)
	}
}

func count(cs *fake.Clientset) (logs, reviews int) {
	for _, a := range cs.Actions() {
		switch {
		case a.GetResource().Resource == "pods" && a.GetSubresource() == "log":
			logs++
		case a.GetResource().Resource == "subjectaccessreviews":
			reviews++
		}
	}
	return logs, reviews
}

// A new leader that sees the grant's Role but not its RoleBinding
// recreates the binding the way rbac.Render shapes it.
func TestCompleteBindings(t *testing.T) {
	role := &unstructured.Unstructured{}
	role.SetAPIVersion(rbacv1.SchemeGroupVersion.String())
	role.SetKind("Role")
	role.SetNamespace(dpf.DefaultNamespace)
	role.SetName(plan.NamePrefix + "dpf-provisioning-dms-service-account")
	role.SetLabels(map[string]string{plan.ManagedByLabel: plan.ManagedByValue})
	rp := &repairer{desired: map[plan.ObjectRef]*unstructured.Unstructured{plan.RefOf(role): role}}
	s := &snapshot{pods: []*corev1.Pod{dmsPod("a", t0, corev1.ContainerStatus{}, true)}}
	rp.completeBindings(s)
	rb := rp.desired[plan.ObjectRef{Group: rbacv1.GroupName, Kind: "RoleBinding", Namespace: dpf.DefaultNamespace, Name: role.GetName()}]
	if rb == nil {
		t.Fatal("no binding")
	}
	subjects, _, _ := unstructured.NestedSlice(rb.Object, "subjects")
	if len(subjects) != 1 || subjects[0].(map[string]any)["name"] != "dpf-provisioning-dms-service-account" {
		t.Errorf("bound %v", subjects)
	}
	if rb.GetLabels()[plan.ManagedByLabel] != plan.ManagedByValue {
		t.Errorf("labels %v", rb.GetLabels())
	}
}

// The cache keeps a lean pod: no annotations or managed fields, env values
// masked except the API server address, Secret volumes by name only.
func TestTrimPod(t *testing.T) {
	p := dmsPod("a", t0, crashLoop(1, t0), false)
	p.Annotations = map[string]string{"big": "annotation"}
	p.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "x"}}
	p.Spec.InitContainers[0].Env = []corev1.EnvVar{{Name: "KUBERNETES_SERVICE_HOST", Value: "127.0.10.1"}, {Name: "TOKEN", Value: "s3cr3t"}}
	p.Spec.InitContainers[0].ReadinessProbe = &corev1.Probe{}
	p.Spec.Volumes = []corev1.Volume{{Name: dpf.ServerVolume, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "a-server-secret"}}}}
	obj, err := trimPod(p)
	if err != nil {
		t.Fatal(err)
	}
	got := obj.(*corev1.Pod)
	c := got.Spec.InitContainers[0]
	switch {
	case got.Annotations != nil || got.ManagedFields != nil || c.ReadinessProbe != nil:
		t.Errorf("not trimmed: %+v", got)
	case c.Env[0].Value != "127.0.10.1" || c.Env[1].Value != evidence.Masked:
		t.Errorf("env %+v", c.Env)
	case got.Spec.Volumes[0].Secret.SecretName != "a-server-secret" || got.UID != p.UID || dpf.PodState(got) != dpf.PodState(p):
		t.Errorf("lost what the guard reads: %+v", got)
	}
	if ev := evidence.PodFrom(got); ev.Signature() != evidence.PodFrom(p).Signature() {
		t.Errorf("signature changed by trimming")
	}
}
