package sim

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
)

// planes are the package's two API servers, with an audit log for the
// call-table tests, each started on first use (so that -short starts none)
// and stopped by TestMain. A test takes one for its sim and gives it back
// once the sim has stopped, so that two tests' sims run side by side: a
// sim test mostly waits on time-scaled back-offs and dms-init's kubectl.
var (
	planes    = [2]SharedControlPlane{{Audit: true}, {Audit: true}}
	freePlane = func() chan int {
		free := make(chan int, len(planes))
		for i := range planes {
			free <- i
		}
		return free
	}()
)

// startSim starts a sim for one test on a free API server of the package
// and stops it at the end. Tests that call it run in parallel.
func startSim(t *testing.T, o Options) (*Cluster, kubernetes.Interface) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts an API server (envtest); skipped under -short")
	}
	if Assets() == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run the tests with `make test` (it builds the envtest binaries)")
	}
	i := <-freePlane
	t.Cleanup(func() { freePlane <- i }) // after Stop, registered below
	cp, err := planes[i].Get()
	if err != nil {
		t.Fatalf("start the shared control plane: %v", err)
	}
	o.ControlPlane = cp
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, o)
	if err != nil {
		t.Fatalf("sim.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return c, kubernetes.NewForConfigOrDie(c.Config)
}

func listPods(t *testing.T, cs kubernetes.Interface) []corev1.Pod {
	t.Helper()
	list, err := cs.CoreV1().Pods(dpf.DefaultNamespace).List(context.Background(), metav1.ListOptions{LabelSelector: dpf.ComponentLabel})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// waitPods waits until pred holds for the DMS pods.
func waitPods(t *testing.T, cs kubernetes.Interface, timeout time.Duration, what string, pred func([]corev1.Pod) bool) []corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		pods := listPods(t, cs)
		if pred(pods) {
			return pods
		}
		if time.Now().After(deadline) {
			var states []string
			for i := range pods {
				states = append(states, pods[i].Name+"="+dpf.PodState(&pods[i]))
			}
			t.Fatalf("timed out waiting for %s; pods: %v", what, states)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func allState(n int, state string) func([]corev1.Pod) bool {
	return func(ps []corev1.Pod) bool {
		if len(ps) != n {
			return false
		}
		for i := range ps {
			if dpf.PodState(&ps[i]) != state {
				return false
			}
		}
		return true
	}
}

func kubectl(t *testing.T, c *Cluster, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(KubectlPath(), append([]string{"--kubeconfig", c.KubeconfigPath}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func sar(t *testing.T, cs kubernetes.Interface, r access.Request) bool {
	t.Helper()
	subj := access.ServiceAccount(dpf.DefaultNamespace, "dpf-provisioning-dms-service-account")
	res, err := cs.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User: subj.User, Groups: subj.Groups,
		ResourceAttributes: &authzv1.ResourceAttributes{Verb: r.Verb, Group: r.Group, Resource: r.Resource, Subresource: r.Subresource, Namespace: r.Namespace, Name: r.Name},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return res.Status.Allowed
}

func secretGet(node string) access.Request {
	return access.Request{Verb: "get", Resource: "secrets", Namespace: dpf.DefaultNamespace, Name: dpf.SecretName(node)}
}

func hasRule(t *testing.T, cs kubernetes.Interface, resource string) bool {
	t.Helper()
	cr, err := cs.RbacV1().ClusterRoles().Get(context.Background(), "dpf-provisioning-dms-role", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range cr.Rules {
		for _, res := range r.Resources {
			if res == resource {
				return true
			}
		}
	}
	return false
}

// The reported v25.4.0 story with the real kubectl: Forbidden on the Secret,
// logs through pods/log, a growing back-off; a patch to the operator's
// ClusterRole is reverted; a separate Role + RoleBinding survives and the
// pods become Ready.
func TestSecretsForbiddenStory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, cs := startSim(t, Options{Nodes: 2, Scenario: "hypothetical-secrets-forbidden", TimeScale: 0.01, SecretWaitAttempts: 1, Resync: time.Hour})
	if !c.useKubectl {
		t.Fatal("a 2-node sim should run the real kubectl")
	}
	node := c.Nodes[0]
	pod := dpf.PodName(node)
	if sar(t, cs, secretGet(node)) {
		t.Fatal("the DMS ServiceAccount may read its Secret before any fix")
	}

	// Back-off grows as a kubelet's: the CrashLoopBackOff message of each
	// failure names the delay before the next restart.
	delays := map[int32]time.Duration{} // by restart count
	last := int32(-1)
	waitPods(t, cs, time.Minute, "four dms-init failures", func(ps []corev1.Pod) bool {
		for i := range ps {
			if ps[i].Name != pod {
				continue
			}
			for _, s := range ps[i].Status.InitContainerStatuses {
				if s.Name == dpf.ContainerDMSInit && s.RestartCount != last && s.State.Waiting != nil && s.State.Waiting.Reason == "CrashLoopBackOff" {
					last = s.RestartCount
					f := strings.Fields(s.State.Waiting.Message)
					d, err := time.ParseDuration(f[1])
					if err != nil {
						t.Fatalf("back-off message %q: %v", s.State.Waiting.Message, err)
					}
					delays[s.RestartCount] = d
				}
			}
		}
		return last >= 4
	})
	// restartCount n (n failures) is followed by 10 s × 2^(n-1), scaled.
	for n, d := range delays {
		if want := c.scale(backoffInitial) << (n - 1); d != want {
			t.Errorf("back-off after failure %d is %v, want %v (all: %v)", n, d, want, delays)
		}
	}
	if len(delays) < 2 {
		t.Errorf("saw too few failures to judge the back-off: %v", delays)
	}
	if got := dpf.PodState(getPod(t, cs, pod)); got != "Init:CrashLoopBackOff" {
		t.Fatalf("pod state %q, want Init:CrashLoopBackOff", got)
	}

	forbidden := fmt.Sprintf(`Error from server (Forbidden): secrets %q is forbidden: User "system:serviceaccount:dpf-operator-system:dpf-provisioning-dms-service-account" cannot get resource "secrets"`, dpf.SecretName(node))
	for _, args := range [][]string{{"logs", "-n", c.Namespace, pod, "-c", "dms-init"}, {"logs", "-n", c.Namespace, pod, "-c", "dms-init", "--previous"}} {
		out, err := kubectl(t, c, args...)
		if err != nil || !strings.Contains(out, forbidden) || !strings.Contains(out, "[dmsinit] Error (create_certificate:") {
			t.Fatalf("kubectl %v: %v\n%s", args, err, out)
		}
	}
	if out, err := kubectl(t, c, "get", "pods", "-n", c.Namespace); err != nil || !strings.Contains(out, "Init:CrashLoopBackOff") {
		t.Fatalf("kubectl get pods: %v\n%s", err, out)
	}
	evs, err := cs.CoreV1().Events(c.Namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod + ",reason=BackOff"})
	if err != nil || len(evs.Items) != 1 || evs.Items[0].Count < 2 || evs.Items[0].Type != corev1.EventTypeWarning {
		t.Fatalf("BackOff event not aggregated as the kubelet does: %+v %v", evs, err)
	}

	// The widely shared patch is reverted by the next operator reconcile.
	patch := `[{"op":"add","path":"/rules/-","value":{"apiGroups":[""],"resources":["secrets"],"verbs":["get","list"]}}]`
	if _, err := cs.RbacV1().ClusterRoles().Patch(ctx, "dpf-provisioning-dms-role", types.JSONPatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if !hasRule(t, cs, "secrets") {
		t.Fatal("patch did not add the rule")
	}
	if err := c.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if hasRule(t, cs, "secrets") {
		t.Fatal("the operator's reconcile did not revert the patched ClusterRole")
	}

	// A separate Role + RoleBinding survives the reconcile and fixes dms-init.
	grantSecrets(t, cs, c.Nodes...)
	if err := c.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().Roles(c.Namespace).Get(ctx, "test-dms-secrets", metav1.GetOptions{}); err != nil {
		t.Fatalf("the separate Role did not survive the reconcile: %v", err)
	}
	waitPods(t, cs, time.Minute, "pods Ready after the grant", allState(2, "Running"))
	for _, p := range listPods(t, cs) {
		if !dpf.PodReady(&p) {
			t.Fatalf("%s is Running but not Ready", p.Name)
		}
	}
	dyn := dynamic.NewForConfigOrDie(c.Config)
	for _, n := range c.Nodes {
		if _, err := dyn.Resource(gvrDPUNode).Namespace(c.Namespace).Get(ctx, n, metav1.GetOptions{}); err != nil {
			t.Fatalf("dms-init did not create DPUNode %s as the ServiceAccount: %v", n, err)
		}
	}
	out, err := kubectl(t, c, "logs", "-n", c.Namespace, pod, "-c", "dms-init")
	if err != nil || !strings.Contains(out, "Main function completed successfully") {
		t.Fatalf("successful run not in logs: %v\n%s", err, out)
	}
	// Least privilege really holds: other Secrets and list stay forbidden.
	if sar(t, cs, secretGet("some-other-node")) || sar(t, cs, access.Request{Verb: "list", Resource: "secrets", Namespace: c.Namespace}) {
		t.Fatal("the per-name grant allows more than the named Secrets")
	}
}

func getPod(t *testing.T, cs kubernetes.Interface, name string) *corev1.Pod {
	t.Helper()
	p, err := cs.CoreV1().Pods(dpf.DefaultNamespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func grantSecrets(t *testing.T, cs kubernetes.Interface, nodes ...string) {
	t.Helper()
	ctx := context.Background()
	var names []string
	for _, n := range nodes {
		names = append(names, dpf.SecretName(n))
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "test-dms-secrets", Namespace: dpf.DefaultNamespace},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}, ResourceNames: names}}}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "test-dms-secrets", Namespace: dpf.DefaultNamespace},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "dpf-provisioning-dms-service-account", Namespace: dpf.DefaultNamespace}}}
	if _, err := cs.RbacV1().Roles(role.Namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().RoleBindings(rb.Namespace).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !sar(t, cs, secretGet(nodes[0])) {
		if time.Now().After(deadline) {
			t.Fatal("grant not effective")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Every scenario yields its pod state, log lines and events.
func TestEveryScenario(t *testing.T) {
	t.Parallel()
	var mix []string
	for _, s := range Scenarios() {
		mix = append(mix, string(s)+"=1")
	}
	c, cs := startSim(t, Options{Nodes: len(mix), Scenario: strings.Join(mix, ","), TimeScale: 0.05, SecretWaitAttempts: 1, KubectlMaxNodes: 16})
	byScenario := map[Scenario]string{}
	for i, s := range Scenarios() {
		byScenario[s] = dpf.PodName(c.Nodes[i])
	}
	want := map[Scenario]string{Healthy: "Running", CertificateNotReady: "Init:0/3", HypotheticalEmptyCertificateFiles: "CrashLoopBackOff"}
	waitPods(t, cs, time.Minute, "every scenario's state", func(ps []corev1.Pod) bool {
		if len(ps) != len(mix) {
			return false
		}
		for s, name := range byScenario {
			w := want[s]
			if w == "" {
				w = "Init:CrashLoopBackOff"
			}
			for i := range ps {
				if ps[i].Name == name && (dpf.PodState(&ps[i]) != w || (strings.HasSuffix(w, "CrashLoopBackOff") && restarts(&ps[i]) < 2)) {
					return false
				}
			}
		}
		return true
	})
	logs := func(s Scenario, container string) string {
		out, err := kubectl(t, c, "logs", "-n", c.Namespace, byScenario[s], "-c", container)
		if err != nil {
			t.Fatalf("logs of %s: %v\n%s", s, err, out)
		}
		return out
	}
	for _, tc := range []struct {
		s        Scenario
		contains []string
		not      []string
	}{
		{HypotheticalSecretsForbiddenQuiet, []string{"Waiting for secret ", "Timed out waiting for secret "}, []string{"Forbidden"}},
		{DPUDeviceStatusForbidden, []string{"Failed to update PCI address for DPUDevice", `cannot get resource "dpudevices/status"`}, nil},
		{APIServerUnreachable, []string{"Failed to check kubectl version", "refused"}, nil},
		{NoDPUFound, []string{"Error (main:", "No DPUs found on this system, exiting"}, nil},
		{Healthy, []string{dpf.MsgCompleted}, []string{"Error"}},
		{HypotheticalEmptyCertificateFiles, []string{`cannot get resource "secrets"`, dpf.MsgCompleted}, []string{"Error ("}},
	} {
		out := logs(tc.s, "dms-init")
		for _, w := range tc.contains {
			if !strings.Contains(out, w) {
				t.Errorf("%s: dms-init log lacks %q:\n%s", tc.s, w, out)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(out, w) {
				t.Errorf("%s: dms-init log has %q:\n%s", tc.s, w, out)
			}
		}
	}
	// DPUDevice status skew runs the newer hostdriver against the v25.4.0 role.
	if tag := dpf.ImageTag(getPod(t, cs, byScenario[DPUDeviceStatusForbidden]).Spec.InitContainers[1].Image); tag != "v25.7.0" {
		t.Errorf("status-skew pod runs hostdriver %s, want v25.7.0", tag)
	}
	if out := logs(HypotheticalEmptyCertificateFiles, dpf.ContainerDMS); !strings.Contains(out, DMSEmptyCertificate) {
		t.Errorf("empty certificate files: the dms log lacks %q:\n%s", DMSEmptyCertificate, out)
	}
	rshim := getPod(t, cs, byScenario[RshimOccupied])
	st := rshim.Status.InitContainerStatuses[0]
	if st.Name != dpf.ContainerRshimPreflight || st.LastTerminationState.Terminated == nil ||
		st.LastTerminationState.Terminated.ExitCode != 1 || st.LastTerminationState.Terminated.Message != PCIAddress {
		t.Errorf("rshim-preflight status: %+v", st)
	}
	evs, err := cs.CoreV1().Events(c.Namespace).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + byScenario[CertificateNotReady]})
	if err != nil || len(evs.Items) == 0 || evs.Items[0].Reason != "FailedMount" || !strings.Contains(evs.Items[0].Message, dpf.SecretName(strings.TrimSuffix(byScenario[CertificateNotReady], "-dms"))) {
		t.Errorf("certificate-not-ready: want a FailedMount event naming the Secret, got %+v %v", evs, err)
	}
	if _, err := kubectl(t, c, "logs", "-n", c.Namespace, byScenario[CertificateNotReady], "-c", "dms-init"); err == nil {
		t.Error("logs of a container that never started should fail")
	}
}

func restarts(p *corev1.Pod) int32 {
	var n int32
	for _, s := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
		n += s.RestartCount
	}
	return n
}

// v25.4.0 re-creates a deleted DMS pod only on a Node event while no DPUNode
// exists; v25.7 re-creates it at once.
// On v25.4.0 a deleted DMS pod whose node has no DPUNode comes back at the
// kubelet's next Node status report (5 min × time scale, jittered), with no
// other Node event.
func TestNodeStatusReportRecreatesPod(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// A report period of 1 s (20 s × 0.05) ± 10 %.
	c, cs := startSim(t, Options{Nodes: 1, Scenario: string(DPUDeviceStatusForbidden), TimeScale: 0.05, KubectlMaxNodes: -1, Resync: time.Hour,
		NodeStatusReport: 20 * time.Second})
	waitPods(t, cs, 30*time.Second, "dms-init failing", allState(1, "Init:CrashLoopBackOff"))
	pod := dpf.PodName(c.Nodes[0])
	old, err := cs.CoreV1().Pods(c.Namespace).Get(ctx, pod, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Pods(c.Namespace).Delete(ctx, pod, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	// The report comes every second, so the gap between the old pod and
	// its replacement can be shorter than a poll: wait for the new UID.
	waitPods(t, cs, 55*time.Second, "pod re-created after a Node status report", func(ps []corev1.Pod) bool {
		return len(ps) == 1 && ps[0].UID != old.UID
	})
	n, err := cs.CoreV1().Nodes().Get(ctx, c.Nodes[0], metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady && !cond.LastHeartbeatTime.After(deleted.Add(-time.Second)) {
			t.Errorf("Ready heartbeat %v is older than the deletion at %v: the pod came back for another reason", cond.LastHeartbeatTime, deleted)
		}
	}
}

func TestPodRecreation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		version  string
		recreate bool
	}{{"v25.4.0", false}, {"v25.7.0", true}} {
		t.Run(tc.version, func(t *testing.T) {
			ctx := context.Background()
			c, cs := startSim(t, Options{Version: tc.version, Nodes: 1, TimeScale: 0.05, KubectlMaxNodes: -1})
			waitPods(t, cs, 30*time.Second, "Ready", allState(1, "Running"))
			pod := dpf.PodName(c.Nodes[0])
			if err := cs.CoreV1().Pods(c.Namespace).Delete(ctx, pod, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			// A Node event, as a fix would arrange.
			patch := []byte(`{"metadata":{"annotations":{"test/poke":"1"}}}`)
			if _, err := cs.CoreV1().Nodes().Patch(ctx, c.Nodes[0], types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
			if tc.recreate {
				waitPods(t, cs, 30*time.Second, "re-created pod Ready", allState(1, "Running"))
				return
			}
			time.Sleep(2 * time.Second)
			if _, err := cs.CoreV1().Pods(c.Namespace).Get(ctx, pod, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Fatalf("v25.4.0 re-created the pod although its DPUNode exists (err=%v)", err)
			}
		})
	}
}

// When every node is unreachable the DPFOperatorConfig's VIP is wrong and
// the pods carry it; a paused operator does not revert drift.
func TestUnreachableVIPAndPause(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, cs := startSim(t, Options{Nodes: 2, Scenario: "apiserver-unreachable", TimeScale: 0.05, KubectlMaxNodes: -1, Resync: time.Hour})
	pods := waitPods(t, cs, 30*time.Second, "CrashLoopBackOff", allState(2, "Init:CrashLoopBackOff"))
	var host, port string
	for _, e := range pods[0].Spec.InitContainers[1].Env {
		if e.Name == "KUBERNETES_SERVICE_HOST" {
			host = e.Value
		}
		if e.Name == "KUBERNETES_SERVICE_PORT" {
			port = e.Value
		}
	}
	if "https://"+host+":"+port != c.ClosedURL() {
		t.Fatalf("pod env %s:%s, want the wrong VIP %s", host, port, c.ClosedURL())
	}
	dyn := dynamic.NewForConfigOrDie(c.Config)
	if _, err := dyn.Resource(gvrOperatorCfg).Namespace(c.Namespace).Patch(ctx, dpf.OperatorConfigName, types.MergePatchType,
		[]byte(`{"spec":{"overrides":{"paused":true}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	before := c.Reconciles()
	patch := `[{"op":"add","path":"/rules/-","value":{"apiGroups":[""],"resources":["secrets"],"verbs":["get"]}}]`
	if _, err := cs.RbacV1().ClusterRoles().Patch(ctx, "dpf-provisioning-dms-role", types.JSONPatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if !hasRule(t, cs, "secrets") || c.Reconciles() != before {
		t.Fatal("a paused operator reconciled its inventory")
	}
}

// v25.1 (pods per DPU, no ServiceAccount, unlabelled) and v25.10 (the host
// agent) are simulated with the scenarios that apply to them.
func TestOtherVersions(t *testing.T) {
	t.Parallel()
	t.Run("v25.1.0", func(t *testing.T) {
		c, cs := startSim(t, Options{Version: "v25.1.0", Nodes: 3, Scenario: "healthy=1,rshim-occupied=1,certificate-not-ready=1", TimeScale: 0.05})
		var pods []corev1.Pod
		deadline := time.Now().Add(30 * time.Second)
		for {
			list, err := cs.CoreV1().Pods(c.Namespace).List(context.Background(), metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			pods = list.Items
			states := map[string]string{}
			for i := range pods {
				states[pods[i].Name] = dpf.PodState(&pods[i])
			}
			if states["dpu-worker-1-0000-3b-00-0-dms"] == "Running" && states["dpu-worker-2-0000-3b-00-0-dms"] == "Init:CrashLoopBackOff" &&
				states["dpu-worker-3-0000-3b-00-0-dms"] == "Init:0/2" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("v25.1 pod states: %v", states)
			}
			time.Sleep(100 * time.Millisecond)
		}
		p := pods[0]
		if len(p.Labels) != 0 || p.Spec.ServiceAccountName != "" || p.OwnerReferences[0].Kind != "DPU" {
			t.Fatalf("v25.1 pod shape: labels %v sa %q owner %v", p.Labels, p.Spec.ServiceAccountName, p.OwnerReferences)
		}
		if _, err := Start(context.Background(), Options{Version: "v25.1.0", Scenario: "hypothetical-secrets-forbidden"}); !errors.Is(err, ErrNotApplicable) {
			t.Fatalf("hypothetical-secrets-forbidden on v25.1 should be refused, got %v", err)
		}
		if _, err := Start(context.Background(), Options{Version: "v25.7.0", Scenario: "dpudevice-status-forbidden"}); !errors.Is(err, ErrNotApplicable) ||
			!strings.Contains(err.Error(), "it applies to v25.4.0") {
			t.Fatalf("dpudevice-status-forbidden on v25.7 should be refused naming v25.4.0, got %v", err)
		}
	})
	t.Run("v25.10.0", func(t *testing.T) {
		c, cs := startSim(t, Options{Version: "v25.10.0", Nodes: 3, Scenario: "healthy=1,no-dpu-found=1,apiserver-unreachable=1", TimeScale: 0.05, KubectlMaxNodes: -1})
		waitPods(t, cs, 30*time.Second, "host agent states", func(ps []corev1.Pod) bool {
			want := map[string]string{"dpu-worker-1-dms": "Running", "dpu-worker-2-dms": "CrashLoopBackOff", "dpu-worker-3-dms": "CrashLoopBackOff"}
			for i := range ps {
				if dpf.PodState(&ps[i]) != want[ps[i].Name] {
					return false
				}
			}
			return len(ps) == 3
		})
		p := getPod(t, cs, "dpu-worker-1-dms")
		if p.Labels[dpf.ComponentLabel] != dpf.ComponentHostAgent || p.Spec.ServiceAccountName != "dpf-provisioning-hostagent-service-account" || len(p.Spec.InitContainers) != 0 {
			t.Fatalf("v25.10 pod shape: %v %q", p.Labels, p.Spec.ServiceAccountName)
		}
		out, err := kubectl(t, c, "logs", "-n", c.Namespace, "dpu-worker-3-dms", "-c", "hostagent")
		if err != nil || !strings.Contains(out, "unable to reach the Kubernetes API server") {
			t.Fatalf("host agent log: %v\n%s", err, out)
		}
		if _, err := dynamic.NewForConfigOrDie(c.Config).Resource(gvrDPUNode).Namespace(c.Namespace).Get(context.Background(), "dpu-worker-1", metav1.GetOptions{}); err != nil {
			t.Fatalf("host agent did not register its DPUNode as its ServiceAccount: %v", err)
		}
	})
}

// A pod's deletion is confirmed as a real kubelet's pod worker confirms it,
// not behind another pod's run: with the one worker busy on a dms-init run
// of at least 15 s (150 Secret polls of 2 s, scaled by 0.05), the pod that
// nothing runs is gone at once, and the running one only after its run.
func TestDeletionNotBehindOtherRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, cs := startSim(t, Options{Nodes: 2, Scenario: string(HypotheticalSecretsForbidden), TimeScale: 0.05, KubectlMaxNodes: -1,
		Workers: 1, SecretWaitAttempts: 150})
	waitPods(t, cs, 30*time.Second, "both pods created", func(ps []corev1.Pod) bool { return len(ps) == 2 })
	deadline := time.Now().Add(10 * time.Second)
	running := func() int {
		c.kl.mu.Lock()
		defer c.kl.mu.Unlock()
		return len(c.kl.busy)
	}
	for running() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("no dms-init run started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	deleted := map[types.UID]bool{}
	for _, p := range listPods(t, cs) {
		deleted[p.UID] = true
		if err := cs.CoreV1().Pods(c.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The operator may re-create a pod (a Node status report): count only
	// the deleted ones.
	left := func(n int) func([]corev1.Pod) bool {
		return func(ps []corev1.Pod) bool {
			k := 0
			for _, p := range ps {
				if deleted[p.UID] {
					k++
				}
			}
			return k <= n
		}
	}
	waitPods(t, cs, 5*time.Second, "the pod nothing ran gone", left(1))
	if left(0)(listPods(t, cs)) {
		t.Fatal("the running pod is gone too: its deletion should wait for its run")
	}
	waitPods(t, cs, 2*time.Minute, "the running pod gone after its run", left(0))
}
