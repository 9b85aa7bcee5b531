package plan_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/diagnose"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
)

const (
	ns = dpf.DefaultNamespace
	sa = "dpf-provisioning-dms-service-account"
)

func secretGet(node string) access.Request {
	return access.Request{Verb: "get", Resource: "secrets", Namespace: ns, Name: dpf.SecretName(node)}
}

// input is a v25.4.0 cluster with nodes failing on their Secret, one node
// whose API server is unreachable and one healthy node.
func input(version string, failing ...string) plan.Input {
	b := &evidence.Bundle{Install: evidence.Install{Namespace: ns, OperatorConfig: dpf.OperatorConfigName, Version: version}}
	rbacFinding := diagnose.Finding{Class: diagnose.ClassRBACForbidden, Code: diagnose.CodeRBACForbidden, Severity: diagnose.SeverityError,
		Fixable: true, Summary: "pods may not get secrets", NextStep: "run dpfdoctor fix"}
	for _, n := range failing {
		b.Pods = append(b.Pods, evidence.Pod{Name: dpf.PodName(n), Namespace: ns, Node: n, ServiceAccount: sa})
		rbacFinding.Pods = append(rbacFinding.Pods, dpf.PodName(n))
		rbacFinding.Missing = append(rbacFinding.Missing, secretGet(n))
	}
	b.Pods = append(b.Pods, evidence.Pod{Name: "w9-dms", Namespace: ns, Node: "w9", ServiceAccount: sa},
		evidence.Pod{Name: "ok-dms", Namespace: ns, Node: "ok", ServiceAccount: sa, Ready: true})
	d := &diagnose.Diagnosis{Findings: []diagnose.Finding{
		rbacFinding,
		{Class: diagnose.ClassAPIServerUnreachable, Code: diagnose.CodeAPIServerUnreachable, Severity: diagnose.SeverityError,
			Pods: []string{"w9-dms"}, Summary: "kubectl version fails", NextStep: "fix the VIP"},
		{Class: diagnose.ClassHealthy, Code: diagnose.CodeHealthy, Severity: diagnose.SeverityInfo, Pods: []string{"ok-dms"}},
	}}
	return plan.Input{Diagnosis: d, Bundle: b}
}

func rules(t *testing.T, c plan.Change) []rbacv1.PolicyRule {
	t.Helper()
	var r rbacv1.Role
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(c.Object.Object, &r); err != nil {
		t.Fatal(err)
	}
	return r.Rules
}

func TestBuildLeastPrivilege(t *testing.T) {
	p, err := plan.Build(input("v25.4.0", "w1", "w2"))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Changes) != 2 || p.Changes[0].Ref().Kind != "Role" || p.Changes[1].Ref().Kind != "RoleBinding" {
		t.Fatalf("changes: %+v", p.Changes)
	}
	for _, c := range p.Changes {
		ref := c.Ref()
		if ref.Namespace != ns || !strings.HasPrefix(ref.Name, plan.NamePrefix) || c.Object.GetLabels()[plan.ManagedByLabel] != plan.ManagedByValue {
			t.Errorf("%s: namespace, name or label wrong: %v", ref, c.Object.GetLabels())
		}
		if !strings.Contains(c.Object.GetAnnotations()[plan.AnswersAnnotation], diagnose.CodeRBACForbidden) {
			t.Errorf("%s does not say which finding it answers: %v", ref, c.Object.GetAnnotations())
		}
	}
	rs := rules(t, p.Changes[0])
	if len(rs) != 1 || strings.Join(rs[0].Verbs, ",") != "get" || strings.Join(rs[0].ResourceNames, ",") != "w1-server-secret,w2-server-secret" {
		t.Fatalf("rules: %+v", rs)
	}
	if len(p.Expect) != 2 || p.ServiceAccount != sa {
		t.Fatalf("expect %v, SA %q", p.Expect, p.ServiceAccount)
	}
	denied := map[string]bool{}
	for _, r := range p.MustStayDenied {
		denied[r.String()] = true
	}
	for _, want := range []string{"list secrets in " + ns, "watch secrets in " + ns, "list secrets (cluster-scoped)", "get secrets dpf-provisioning-ca-secret in " + ns} {
		if !denied[want] {
			t.Errorf("MustStayDenied lacks %q: %v", want, p.MustStayDenied)
		}
	}
	if len(p.Skipped) != 1 || p.Skipped[0].Code != diagnose.CodeAPIServerUnreachable || p.Skipped[0].NextStep == "" {
		t.Fatalf("skipped: %+v", p.Skipped)
	}
	if len(p.Restart) != 2 {
		t.Fatalf("restart: %+v", p.Restart)
	}
}

func TestBuildScopeNamespace(t *testing.T) {
	in := input("v25.4.0", "w1", "w2")
	in.Scope = plan.ScopeNamespace
	p, err := plan.Build(in)
	if err != nil {
		t.Fatal(err)
	}
	rs := rules(t, p.Changes[0])
	if len(rs) != 1 || len(rs[0].ResourceNames) != 0 || strings.Join(rs[0].Verbs, ",") != "get" {
		t.Fatalf("rules: %+v", rs)
	}
	for _, r := range p.MustStayDenied {
		if r.Resource == "secrets" && r.Verb == "get" && r.Namespace == ns {
			t.Errorf("namespace scope cannot promise %s stays denied", r)
		}
	}
	in.Scope = "cluster"
	if _, err := plan.Build(in); err == nil {
		t.Fatal("an unknown scope was accepted")
	}
}

// A later fix for more nodes keeps what an earlier one granted.
func TestBuildKeepsEarlierGrants(t *testing.T) {
	first, err := plan.Build(input("v25.4.0", "w1"))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.Role
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(first.Changes[0].Object.Object, &role); err != nil {
		t.Fatal(err)
	}
	in := input("v25.4.0", "w2")
	in.Bundle.RBAC.Roles = []rbacv1.Role{role}
	p, err := plan.Build(in)
	if err != nil {
		t.Fatal(err)
	}
	rs := rules(t, p.Changes[0])
	if len(rs) != 1 || strings.Join(rs[0].ResourceNames, ",") != "w1-server-secret,w2-server-secret" {
		t.Fatalf("rules: %+v", rs)
	}
}

func TestBuildDeterministic(t *testing.T) {
	a, _ := plan.Build(input("v25.4.0", "w1", "w2"))
	b, _ := plan.Build(input("v25.4.0", "w1", "w2"))
	c, _ := plan.Build(input("v25.4.0", "w1", "w3"))
	if a.ID == "" || a.ID != b.ID || a.ID == c.ID {
		t.Fatalf("IDs: %s %s %s", a.ID, b.ID, c.ID)
	}
	ya, _ := a.RBACYAML()
	yb, _ := b.RBACYAML()
	if string(ya) != string(yb) || strings.Count(string(ya), "\n---\n") != 1 || strings.Contains(string(ya), "creationTimestamp") {
		t.Fatalf("YAML:\n%s", ya)
	}
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(strings.Split(string(ya), "---\n")[0]), &obj); err != nil || obj["kind"] != "Role" {
		t.Fatalf("first document: %v %v", obj, err)
	}
}

func TestBuildHealthyIsEmpty(t *testing.T) {
	b := &evidence.Bundle{Install: evidence.Install{Namespace: ns, Version: "v25.4.0"},
		Pods: []evidence.Pod{{Name: "ok-dms", Node: "ok", Ready: true, ServiceAccount: sa}}}
	d := &diagnose.Diagnosis{Findings: []diagnose.Finding{{Class: diagnose.ClassHealthy, Code: diagnose.CodeHealthy, Severity: diagnose.SeverityInfo, Pods: []string{"ok-dms"}}}}
	p, err := plan.Build(plan.Input{Diagnosis: d, Bundle: b})
	if err != nil || !p.Empty() || len(p.Skipped) != 0 {
		t.Fatalf("plan for a healthy cluster: %+v %v", p, err)
	}
}

func TestRestartActions(t *testing.T) {
	v254, _ := dpf.Lookup("v25.4.0")
	v257, _ := dpf.Lookup("v25.7.0")
	pods := []plan.AffectedPod{{Name: "a-dms", Node: "a"}, {Name: "b-dms", Node: "b"}, {Name: "c-dms", Node: "c", Ready: true}, {Name: "d-dms", Node: "d", Deleting: true}}
	dpuNodes := map[string]bool{"b": true}
	for _, tc := range []struct {
		name    string
		mode    string
		release dpf.Release
		known   bool
		want    map[string]string // pod → action[+touch]
	}{
		{"v25.4.0", plan.RestartDelete, v254, true, map[string]string{"a-dms": "delete+touch", "b-dms": "wait"}},
		{"v25.7.0", plan.RestartDelete, v257, true, map[string]string{"a-dms": "delete", "b-dms": "delete"}},
		{"unknown", plan.RestartDelete, dpf.Release{}, false, map[string]string{"a-dms": "wait", "b-dms": "wait"}},
		{"v25.4.0 none", plan.RestartNone, v254, true, map[string]string{"a-dms": "wait", "b-dms": "wait"}},
		{"v25.7.0 none", plan.RestartNone, v257, true, map[string]string{"a-dms": "wait", "b-dms": "wait"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]string{}
			for _, a := range plan.RestartActions(tc.mode, tc.release, tc.known, pods, dpuNodes) {
				s := a.Action
				if a.TouchNode {
					s += "+touch"
				}
				if a.Reason == "" {
					t.Errorf("%s has no reason", a.Pod)
				}
				got[a.Pod] = s
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s: %s, want %s", k, got[k], v)
				}
			}
		})
	}
}

func TestCovers(t *testing.T) {
	p, _ := plan.Build(input("v25.4.0", "w1"))
	desired := p.Changes[0].Object
	live := desired.DeepCopy()
	live.SetResourceVersion("7")
	live.SetLabels(map[string]string{plan.ManagedByLabel: plan.ManagedByValue, "extra": "x"})
	live.SetCreationTimestamp(metav1.Now())
	if ok, err := plan.Covers(live, desired); !ok || err != nil {
		t.Fatalf("Covers: %t %v", ok, err)
	}
	if ok, _ := plan.Identical(live, desired); ok {
		t.Fatal("Identical ignores an extra label")
	}
	other, _ := plan.Build(input("v25.4.0", "w2"))
	if ok, _ := plan.Covers(live, other.Changes[0].Object); ok {
		t.Fatal("Covers ignores different rules")
	}
}

// Kept objects: a new grant merges with the kept Role (no name is
// dropped, whatever the bundle says), and without a fixable finding the
// kept objects are carried over as they are, without server-set fields,
// with the ServiceAccount their binding binds.
func TestBuildKeep(t *testing.T) {
	first, err := plan.Build(input("v25.4.0", "w1"))
	if err != nil {
		t.Fatal(err)
	}
	var keep []*unstructured.Unstructured
	for _, c := range first.Changes {
		o := c.Object.DeepCopy()
		o.SetResourceVersion("7")
		o.SetUID("uid-1")
		keep = append(keep, o)
	}
	in := input("v25.4.0", "w2")
	p, err := plan.Build(plan.Input{Diagnosis: in.Diagnosis, Bundle: in.Bundle, Keep: keep})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Changes) != 2 {
		t.Fatalf("changes: %+v", p.Changes)
	}
	if rs := rules(t, p.Changes[0]); len(rs) != 1 || strings.Join(rs[0].ResourceNames, ",") != "w1-server-secret,w2-server-secret" {
		t.Fatalf("the kept name was dropped: %+v", rs)
	}

	p, err = plan.Build(plan.Input{Diagnosis: &diagnose.Diagnosis{}, Bundle: in.Bundle, Keep: keep})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Changes) != 2 || p.ServiceAccount != sa || p.Changes[0].Ref().Kind != "Role" {
		t.Fatalf("service account %q, changes %+v", p.ServiceAccount, p.Changes)
	}
	for i, c := range p.Changes {
		if c.Object.GetResourceVersion() != "" || c.Object.GetUID() != "" {
			t.Errorf("%s keeps server-set fields", c.Ref())
		}
		if ok, err := plan.Covers(c.Object, first.Changes[i].Object); err != nil || !ok {
			t.Errorf("%s is not carried over as it was: %v", c.Ref(), err)
		}
	}
	if rs := rules(t, p.Changes[0]); strings.Join(rs[0].ResourceNames, ",") != "w1-server-secret" {
		t.Errorf("rules %+v", rs)
	}
}

// A DPU node without its pod: on v25.4.0 the plan annotates its Node next
// to the grant the other findings need; on v25.7 it only waits; a finding
// fix cannot act on (version unknown) is skipped.
func TestBuildMissingPods(t *testing.T) {
	for _, tc := range []struct {
		version, want string
		skipped       bool
	}{
		{version: "v25.4.0", want: plan.ActionRecreate + "+touch"},
		{version: "v25.7.0", want: plan.ActionWait},
		{version: "", skipped: true},
	} {
		t.Run(tc.version, func(t *testing.T) {
			in := input(tc.version, "w1")
			in.Diagnosis.Findings = append(in.Diagnosis.Findings, diagnose.Finding{Class: diagnose.ClassPodMissing, Code: diagnose.CodePodMissing,
				Severity: diagnose.SeverityError, Nodes: []string{"w2", "w3"}, Fixable: tc.version != "", Summary: "2 nodes have no DMS pod"})
			p, err := plan.Build(in)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Changes) == 0 {
				t.Error("the other findings' grant is gone")
			}
			got := map[string]string{}
			for _, a := range p.Restart {
				s := a.Action
				if a.TouchNode {
					s += "+touch"
				}
				got[a.Pod] = s
			}
			if tc.skipped {
				if _, ok := got["w2-dms"]; ok || len(p.Skipped) != 2 {
					t.Fatalf("restart %v, skipped %+v", got, p.Skipped)
				}
				return
			}
			if got["w2-dms"] != tc.want || got["w3-dms"] != tc.want {
				t.Fatalf("restart %v, want %s for w2-dms and w3-dms", got, tc.want)
			}
		})
	}
}

// --restart=auto deletes on a small v25.4.0 fleet and waits on a large one,
// and says why; an unknown mode is an error.
func TestRestartModeAuto(t *testing.T) {
	nodes := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("w%04d", i)
		}
		return out
	}
	for _, tc := range []struct {
		nodes    int
		wantMode string
	}{{3, plan.RestartDelete}, {plan.AutoDeleteMax + 1, plan.RestartNone}} {
		p, err := plan.Build(input("v25.4.0", nodes(tc.nodes)...))
		if err != nil {
			t.Fatal(err)
		}
		if p.RestartMode != tc.wantMode || !strings.HasPrefix(p.RestartWhy, "auto: ") || len(p.Restart) != tc.nodes {
			t.Errorf("%d nodes: mode %q (%s), %d actions; want %q", tc.nodes, p.RestartMode, p.RestartWhy, len(p.Restart), tc.wantMode)
		}
	}
	in := input("v25.4.0", "w1")
	in.Restart = "sometimes"
	if _, err := plan.Build(in); !errors.Is(err, plan.ErrRestart) {
		t.Fatalf("unknown mode: %v", err)
	}
}

// Pods that failed on RBAC granted since (DPF-RBAC-002) only restart: on
// v25.4.0 they wait for their own retry, and their ServiceAccount never
// displaces the one the grant is for.
func TestBuildGrantedSince(t *testing.T) {
	in := input("v25.4.0", "w1")
	const other = "dpf-provisioning-hostagent-service-account"
	in.Bundle.Pods = append(in.Bundle.Pods, evidence.Pod{Name: "g1-dms", Namespace: ns, Node: "g1", ServiceAccount: other})
	granted := diagnose.Finding{Class: diagnose.ClassRBACForbidden, Code: diagnose.CodeRBACGranted, Severity: diagnose.SeverityError,
		Fixable: true, Pods: []string{"g1-dms"}}
	in.Diagnosis.Findings = append([]diagnose.Finding{granted}, in.Diagnosis.Findings...)
	p, err := plan.Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if p.ServiceAccount != sa || len(p.Changes) != 2 {
		t.Fatalf("plan for %s with %d changes, want %s and the grant", p.ServiceAccount, len(p.Changes), sa)
	}
	for _, a := range p.Restart {
		if a.Pod == "g1-dms" && (a.Action != plan.ActionWait || a.TouchNode) {
			t.Errorf("g1-dms on v25.4.0: %s (touch node %t), want wait", a.Action, a.TouchNode)
		}
	}
	if !slices.ContainsFunc(p.Restart, func(a plan.PodAction) bool { return a.Pod == "g1-dms" }) {
		t.Errorf("no action for g1-dms: %+v", p.Restart)
	}
}
