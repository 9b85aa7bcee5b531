package sandbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/dpfdoctor/dpfdoctor/internal/cli"
	"github.com/dpfdoctor/dpfdoctor/internal/diagnose"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
	"github.com/dpfdoctor/dpfdoctor/internal/sandbox"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// fixture is the repo's sysfs-discovering dms-init (variant C calls).
var fixture = filepath.Join("testdata", "dmsinit-sysfs.sh")

func requireSim(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts an API server (envtest) and bubblewrap; skipped under -short")
	}
	if sim.Assets() == "" {
		t.Fatal("envtest binaries not found: export KUBEBUILDER_ASSETS=$(hack/envtest.sh)")
	}
	if _, err := sandbox.Launcher(); err != nil {
		t.Fatal(err)
	}
}

// startScriptSim starts a sim on a control plane from planes whose dms-init
// and rshim-preflight run script in the sandbox made by launcher (bwrap or
// unshare; empty: sandbox.Launcher()).
func startScriptSim(t *testing.T, launcher, script string, o sim.Options) (*sim.Cluster, kubernetes.Interface) {
	t.Helper()
	requireSim(t)
	kubectl, err := exec.LookPath(sim.KubectlPath())
	if err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(script)
	if err != nil {
		t.Fatal(err)
	}
	o.Script = sandbox.SimRunner{Script: abs, Kubectl: kubectl, Launcher: launcher}
	o.ControlPlane = planes.get(t)
	if o.TimeScale == 0 {
		o.TimeScale = 0.05
	}
	if o.Resync == 0 {
		o.Resync = time.Hour
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := sim.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	return c, kubernetes.NewForConfigOrDie(c.Config)
}

// waitPods waits until every one of n DMS pods is in a state for which ok
// holds.
func waitPods(t *testing.T, c *sim.Cluster, cs kubernetes.Interface, n int, what string, ok func(state string) bool) []corev1.Pod {
	t.Helper()
	return waitNodes(t, c, cs, n, what, func(_, state string) bool { return ok(state) })
}

// waitNodes waits until every one of n DMS pods is in a state for which
// ok(node, state) holds.
func waitNodes(t *testing.T, c *sim.Cluster, cs kubernetes.Interface, n int, what string, ok func(node, state string) bool) []corev1.Pod {
	t.Helper()
	var last []string
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		pods, err := cs.CoreV1().Pods(c.Namespace).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		last = last[:0]
		good := 0
		for i := range pods.Items {
			s := dpf.PodState(&pods.Items[i])
			last = append(last, pods.Items[i].Name+"="+s)
			if ok(pods.Items[i].Spec.NodeName, s) {
				good++
			}
		}
		if good == n && len(pods.Items) == n {
			return pods.Items
		}
	}
	t.Fatalf("pods not %s: %v", what, last)
	return nil
}

// fixtureAs writes a copy of the fixture that behaves as script variant
// (B, C or story) and waits for the node's Secret twice, 0.2 s apart,
// instead of 30 times 2 s.
func fixtureAs(t *testing.T, variant string) string {
	t.Helper()
	b, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, r := range [][2]string{{`script_variant="C"`, `script_variant="` + variant + `"`},
		{"secret_wait_attempts=30", "secret_wait_attempts=2"}, {"secret_wait_seconds=2", "secret_wait_seconds=0.2"}} {
		if !strings.Contains(s, r[0]) {
			t.Fatalf("fixture lacks %q", r[0])
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	p := filepath.Join(t.TempDir(), "dmsinit-"+variant+".sh")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// fixToReady runs `dpfdoctor fix --apply` and waits until all n pods run.
func fixToReady(t *testing.T, c *sim.Cluster, cs kubernetes.Interface, n int) {
	t.Helper()
	code, out, errOut := runCLI(t, "fix", "--kubeconfig", c.KubeconfigPath, "--apply", "--yes", "--reconcile-wait", "500ms",
		"--timeout", "90s", "--backup-dir", t.TempDir())
	if code != cli.ExitOK || !strings.Contains(out, fmt.Sprintf("pods Ready %d/%d", n, n)) {
		t.Fatalf("fix: exit %d\n%s\n%s", code, out, errOut)
	}
	waitPods(t, c, cs, n, "Running", running)
}

// wantClasses checks diagnose's class of each node's pod.
func wantClasses(t *testing.T, c *sim.Cluster, want map[string]diagnose.Class) {
	t.Helper()
	got := classes(t, c)
	for n, w := range want {
		if got[n] != w {
			t.Errorf("%s: class %s, want %s", n, got[n], w)
		}
	}
}

func crashing(s string) bool { return strings.Contains(s, "CrashLoopBackOff") }
func running(s string) bool  { return s == "Running" }

// logOf returns a container's current log through the API server.
func logOf(t *testing.T, cs kubernetes.Interface, ns, pod, container string) string {
	t.Helper()
	b, err := cs.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: container}).DoRaw(context.Background())
	if err != nil {
		p, _ := cs.CoreV1().Pods(ns).Get(context.Background(), pod, metav1.GetOptions{})
		t.Fatalf("logs of %s/%s: %v: %s\n%+v", pod, container, err, b, p.Status.InitContainerStatuses)
	}
	return string(b)
}

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return runCLIContext(t, context.Background(), args...)
}

// runCLIContext runs dpfdoctor in ctx (sandbox.WithControlPlane).
func runCLIContext(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	s := genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
	root := cli.NewRootCommand(s)
	root.SetContext(ctx)
	code := cli.Run(root, args, &errOut)
	return code, out.String(), errOut.String()
}

// classes runs `dpfdoctor diagnose -o json` and returns each pod's class by
// node.
func classes(t *testing.T, c *sim.Cluster) map[string]diagnose.Class {
	t.Helper()
	code, out, errOut := runCLI(t, "diagnose", "--kubeconfig", c.KubeconfigPath, "-o", "json")
	var d diagnose.Diagnosis
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("diagnose: exit %d: %v\n%s\n%s", code, err, out, errOut)
	}
	got := map[string]diagnose.Class{}
	for _, p := range d.Pods {
		got[p.Node] = p.Class
	}
	return got
}

// The flagship on v25.4.0: the script's real `kubectl patch --subresource
// status` is Forbidden by the release's role; diagnose reads it from the
// script's own log and fix makes the pods Ready. The sandbox is
// bubblewrap's.
func TestSimFlagshipDiagnoseAndFix(t *testing.T) {
	t.Parallel()
	c, cs := startScriptSim(t, "bwrap", fixture, sim.Options{Version: "v25.4.0", Nodes: 2, Scenario: string(sim.DPUDeviceStatusForbidden)})
	waitPods(t, c, cs, 2, "crashing", crashing)
	node := c.Nodes[0]
	log := logOf(t, cs, c.Namespace, dpf.PodName(node), dpf.ContainerDMSInit)
	for _, want := range []string{
		"[dmsinit]   PCI Address: 0000-3b-00",
		"[dmsinit] Error (create_dpu_device:",
		"Failed to update PCI address for DPUDevice mt2306xz",
		`Error from server (Forbidden): dpudevices.provisioning.dpu.nvidia.com "mt2306xz`,
		`cannot get resource "dpudevices/status"`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("dms-init log lacks %q:\n%s", want, log)
		}
	}
	for n, cl := range classes(t, c) {
		if cl != diagnose.ClassStatusSubresourceSkew {
			t.Errorf("%s: class %s, want %s", n, cl, diagnose.ClassStatusSubresourceSkew)
		}
	}
	fixToReady(t, c, cs, 2)
	if log := logOf(t, cs, c.Namespace, dpf.PodName(node), dpf.ContainerDMSInit); !strings.Contains(log, "Main function completed successfully") {
		t.Errorf("dms-init after the fix:\n%s", log)
	}
}

// Host and network scenarios on v25.7.0: each comes from the script's real
// output on its node's fake host, and diagnose classifies each pod. The
// sandbox is the unshare fallback's (bwrap missing, or
// DPFDOCTOR_SANDBOX=unshare), which the other sim tests do not use;
// TestIsolation shows that both launchers isolate alike.
func TestSimHostScenarios(t *testing.T) {
	t.Parallel()
	c, cs := startScriptSim(t, "unshare", fixture, sim.Options{Version: "v25.7.0", Nodes: 4,
		Scenario: "apiserver-unreachable=1,no-dpu-found=1,rshim-occupied=1,healthy=1"})
	waitPods(t, c, cs, 4, "settled", func(s string) bool { return crashing(s) || running(s) })
	wantClasses(t, c, map[string]diagnose.Class{c.Nodes[0]: diagnose.ClassAPIServerUnreachable, c.Nodes[1]: diagnose.ClassNoDPUFound,
		c.Nodes[2]: diagnose.ClassRshimOccupied, c.Nodes[3]: diagnose.ClassHealthy})
	ns := c.Namespace
	if l := logOf(t, cs, ns, dpf.PodName(c.Nodes[0]), dpf.ContainerDMSInit); !strings.Contains(l, "Failed to check kubectl version: ") ||
		!strings.Contains(l, "connection") {
		t.Errorf("apiserver-unreachable log:\n%s", l)
	}
	if l := logOf(t, cs, ns, dpf.PodName(c.Nodes[1]), dpf.ContainerDMSInit); !strings.Contains(l, "Total DPUs discovered: 0") ||
		!strings.Contains(l, "No DPUs found on this system, exiting") {
		t.Errorf("no-dpu-found log:\n%s", l)
	}
	p, err := cs.CoreV1().Pods(ns).Get(context.Background(), dpf.PodName(c.Nodes[2]), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st := p.Status.InitContainerStatuses[0]
	if term := st.LastTerminationState.Terminated; term == nil || term.ExitCode != 1 || term.Message != "0000:3b:00" {
		t.Errorf("rshim-preflight: %+v, want exit 1 with the script's message 0000:3b:00", st.LastTerminationState)
	}
}

// --rbac replaces the release's role: with the v25.7-era manifests the
// flagship's script succeeds on v25.4.0, and the operator re-applies the
// given rules on every resync, reverting a hand edit. Each host has a
// BlueField-3 and a BlueField-2, and the script registers both.
func TestSimRBACReplacesInventory(t *testing.T) {
	t.Parallel()
	set, err := rbac.LoadManifests(filepath.Join("testdata", "rbac-v25.7"))
	if err != nil {
		t.Fatal(err)
	}
	c, cs := startScriptSim(t, "", fixture, sim.Options{Version: "v25.4.0", Nodes: 2, Scenario: string(sim.DPUDeviceStatusForbidden), RBAC: set,
		HostDPUs: []string{sim.DeviceBlueField3, sim.DeviceBlueField2}})
	waitPods(t, c, cs, 2, "Running", running)
	ctx := context.Background()
	twoDevices(t, c, cs)
	crb, err := cs.RbacV1().ClusterRoleBindings().Get(ctx, "dpf-provisioning-dms-rolebinding", metav1.GetOptions{})
	if err != nil || crb.Subjects[0].Namespace != c.Namespace || crb.Labels[dpf.ApplySetPartOfLabel] == "" {
		t.Fatalf("binding: %v %+v", err, crb)
	}
	role, err := cs.RbacV1().ClusterRoles().Get(ctx, "dpf-provisioning-dms-role", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	role.Rules = role.Rules[:1]
	if _, err := cs.RbacV1().ClusterRoles().Update(ctx, role, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	role, err = cs.RbacV1().ClusterRoles().Get(ctx, "dpf-provisioning-dms-role", metav1.GetOptions{})
	if err != nil || len(role.Rules) != 5 || role.Rules[2].Resources[0] != "dpudevices/status" {
		t.Fatalf("after resync: %v %+v", err, role.Rules)
	}
}

// The scenarios fix cannot repair, through the fixture as script B on
// v25.4.0 (the classes are the replay's, pinned by
// internal/evidence TestScenariosClassified):
//   - hypothetical-empty-certificate-files: the script's Secret reads are
//     Forbidden and unchecked, it exits 0 leaving empty certificate files,
//     and the dms container fails on them;
//   - certificate-not-ready: the pod cannot mount <node>-server-secret, so
//     no container starts and the script never runs: no log, no DPUDevice;
//   - healthy: script B (no status patch) against the v25.4.0 role.
//
// Diagnose says neither failure is fixable, and fix plans no change.
func TestSimNotFixableScenarios(t *testing.T) {
	t.Parallel()
	c, cs := startScriptSim(t, "", fixtureAs(t, "B"), sim.Options{Version: "v25.4.0", Nodes: 3,
		Scenario: "hypothetical-empty-certificate-files=1,certificate-not-ready=1,healthy=1"})
	empty, notReady, healthy := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	want := map[string]string{empty: "CrashLoopBackOff", notReady: "Init:0/3", healthy: "Running"}
	waitNodes(t, c, cs, 3, "settled", func(node, state string) bool { return state == want[node] })
	wantClasses(t, c, map[string]diagnose.Class{empty: diagnose.ClassEmptyCertificateFiles, notReady: diagnose.ClassCertificateNotReady,
		healthy: diagnose.ClassHealthy})

	ns := c.Namespace
	l := logOf(t, cs, ns, dpf.PodName(empty), dpf.ContainerDMSInit)
	for _, w := range []string{"Certificate secret name: " + dpf.SecretName(empty), `cannot get resource "secrets"`, dpf.MsgCompleted} {
		if !strings.Contains(l, w) {
			t.Errorf("empty-certificate-files dms-init log lacks %q:\n%s", w, l)
		}
	}
	if l := logOf(t, cs, ns, dpf.PodName(empty), dpf.ContainerDMS); !strings.Contains(l, sim.DMSEmptyCertificate) {
		t.Errorf("dms log:\n%s", l)
	}
	// certificate-not-ready cannot come from a script: nothing ran.
	if b, err := cs.CoreV1().Pods(ns).GetLogs(dpf.PodName(notReady), &corev1.PodLogOptions{Container: dpf.ContainerDMSInit}).DoRaw(context.Background()); err == nil {
		t.Errorf("certificate-not-ready: dms-init has a log: %s", b)
	}
	p, err := cs.CoreV1().Pods(ns).Get(context.Background(), dpf.PodName(notReady), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range p.Status.InitContainerStatuses {
		if st.RestartCount != 0 || st.State.Waiting == nil || st.LastTerminationState.Terminated != nil {
			t.Errorf("certificate-not-ready: init container %s ran: %+v", st.Name, st)
		}
	}
	if l := logOf(t, cs, ns, dpf.PodName(healthy), dpf.ContainerDMSInit); !strings.Contains(l, "DPUDevice "+healthy+"-0000-3b-00 applied successfully") {
		t.Errorf("healthy (script B) log:\n%s", l)
	}

	code, out, errOut := runCLI(t, "diagnose", "--kubeconfig", c.KubeconfigPath, "-o", "json")
	var d diagnose.Diagnosis
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("diagnose: exit %d: %v\n%s", code, err, errOut)
	}
	for _, f := range d.Findings {
		if (f.Class == diagnose.ClassEmptyCertificateFiles || f.Class == diagnose.ClassCertificateNotReady) && f.Fixable {
			t.Errorf("%s is fixable: %s", f.Class, f.NextStep)
		}
	}
	code, out, errOut = runCLI(t, "fix", "--kubeconfig", c.KubeconfigPath, "-o", "json")
	var pl plan.Plan
	if err := json.Unmarshal([]byte(out), &pl); err != nil || code != cli.ExitProblems {
		t.Fatalf("fix: exit %d: %v\n%s\n%s", code, err, out, errOut)
	}
	skipped := map[string]bool{}
	for _, s := range pl.Skipped {
		skipped[s.Class] = true
	}
	if len(pl.Changes) != 0 || len(pl.Restart) != 0 || !skipped[string(diagnose.ClassEmptyCertificateFiles)] || !skipped[string(diagnose.ClassCertificateNotReady)] {
		t.Errorf("fix plan: changes %d, restarts %d, skipped %+v", len(pl.Changes), len(pl.Restart), pl.Skipped)
	}
}

// hypothetical-secrets-forbidden through the fixture as the widely shared
// story (a visible Forbidden Secret read retried until it times out) on
// v25.4.0: diagnose reads RBACForbidden from the script's log, and fix's
// Secret grant lets the next run through.
func TestSimSecretsForbiddenStory(t *testing.T) {
	t.Parallel()
	c, cs := startScriptSim(t, "", fixtureAs(t, "story"), sim.Options{Version: "v25.4.0", Nodes: 2, Scenario: string(sim.HypotheticalSecretsForbidden)})
	waitPods(t, c, cs, 2, "crashing", crashing)
	l := logOf(t, cs, c.Namespace, dpf.PodName(c.Nodes[0]), dpf.ContainerDMSInit)
	for _, w := range []string{`cannot get resource "secrets"`, dpf.MsgWaitingSecretB, "Error (create_certificate:", dpf.MsgSecretTimeoutB} {
		if !strings.Contains(l, w) {
			t.Errorf("dms-init log lacks %q:\n%s", w, l)
		}
	}
	wantClasses(t, c, map[string]diagnose.Class{c.Nodes[0]: diagnose.ClassRBACForbidden, c.Nodes[1]: diagnose.ClassRBACForbidden})
	fixToReady(t, c, cs, 2)
}

// hypothetical-secrets-forbidden-quiet through the fixture as script C on
// v25.7.0: the Secret reads' errors are hidden, so only the timeout shows;
// diagnose still finds the denied Secret read (RBACForbidden) and fix
// brings the pods to Ready.
func TestSimSecretsForbiddenQuiet(t *testing.T) {
	t.Parallel()
	c, cs := startScriptSim(t, "", fixtureAs(t, "C"), sim.Options{Version: "v25.7.0", Nodes: 2, Scenario: string(sim.HypotheticalSecretsForbiddenQuiet)})
	waitPods(t, c, cs, 2, "crashing", crashing)
	l := logOf(t, cs, c.Namespace, dpf.PodName(c.Nodes[0]), dpf.ContainerDMSInit)
	if !strings.Contains(l, dpf.MsgSecretTimeoutC+dpf.SecretName(c.Nodes[0])+" to be fully populated") || strings.Contains(l, "Forbidden") {
		t.Errorf("dms-init log:\n%s", l)
	}
	wantClasses(t, c, map[string]diagnose.Class{c.Nodes[0]: diagnose.ClassRBACForbidden, c.Nodes[1]: diagnose.ClassRBACForbidden})
	fixToReady(t, c, cs, 2)
}

// twoDevices checks that the script on each host found the BlueField-3 at
// 0000:3b:00.0 and the BlueField-2 at 0000:4b:00.0 in sysfs, and
// registered both: a DPUDevice each, with its PCI address in the status,
// and a DPUNode naming both.
func twoDevices(t *testing.T, c *sim.Cluster, cs kubernetes.Interface) {
	t.Helper()
	ctx := context.Background()
	dyn := dynamic.NewForConfigOrDie(c.Config)
	devices, err := dyn.Resource(dpf.MustGVR(dpf.GroupProvisioning, "DPUDevice")).Namespace(c.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pci := map[string]string{}
	for _, d := range devices.Items {
		pci[d.GetName()], _, _ = unstructured.NestedString(d.Object, "status", "pciAddress")
	}
	for _, node := range c.Nodes {
		l := logOf(t, cs, c.Namespace, dpf.PodName(node), dpf.ContainerDMSInit)
		for _, w := range []string{"PCI Address: 0000-3b-00", "Device ID: " + sim.DeviceBlueField3, "PF0 Name: ens1f0np0",
			"PCI Address: 0000-4b-00", "Device ID: " + sim.DeviceBlueField2, "PF0 Name: ens2f0np0", "Total DPUs discovered: 2", dpf.MsgCompleted} {
			if !strings.Contains(l, w) {
				t.Errorf("%s: dms-init log lacks %q:\n%s", node, w, l)
			}
		}
		dn, err := dyn.Resource(dpf.MustGVR(dpf.GroupProvisioning, "DPUNode")).Namespace(c.Namespace).Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		dpus, _, _ := unstructured.NestedSlice(dn.Object, "spec", "dpus")
		if len(dpus) != 2 {
			t.Errorf("DPUNode %s: dpus %v, want two", node, dpus)
		}
		for _, d := range dpus {
			name, _ := d.(map[string]any)["name"].(string)
			if p, ok := pci[name]; !ok || (p != "0000-3b-00" && p != "0000-4b-00") {
				t.Errorf("DPUNode %s names DPUDevice %q: PCI address %q, found %t", node, name, p, ok)
			}
		}
	}
	if len(pci) != 2*len(c.Nodes) {
		t.Errorf("DPUDevices: %v, want two per node", pci)
	}
}
