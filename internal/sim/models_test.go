package sim

// The three models of dms-init agree (issue 13 §3): the call table in
// internal/dpf, the fixture scripts under internal/lint/testdata as lint
// reads them, and this package's replay as the API server sees it. Every
// side is normalised to access.Requests: verb, group, resource,
// subresource, namespace and a name pattern with the node substituted and
// every part only the host knows (PCI address, serial number) as "*".
// create carries no name, as RBAC sees it.

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/lint"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
)

// modelVersions are every release the sim supports, with the fixture
// script lint reads for its pod shape. Lint does not apply where script is
// empty: v25.1 runs no dmsinit.sh (an inline bash check, no API request)
// and v25.10's host agent is a Go program, not a script; there the call
// table and the sim's replay are compared alone.
var modelVersions = []struct{ version, script string }{
	{"v25.1.0", ""},
	{"v25.4.0", "dmsinit-v25.4.0.sh"},
	{"v25.7.0", "dmsinit-v25.7.sh"},
	{"v25.10.0", ""},
}

// TestModelVersionsCoverTheSim keeps modelVersions in step with the
// releases the sim supports.
func TestModelVersionsCoverTheSim(t *testing.T) {
	var got []string
	for _, mv := range modelVersions {
		got = append(got, mv.version)
	}
	if want := dpf.Versions(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("modelVersions %v, want every release %v", got, want)
	}
}

// modelNode is the sim's first node with the default prefix.
const modelNode = "dpu-worker-1"

type requestSet map[string]bool

func (s requestSet) add(r access.Request) { s[r.String()] = true }

// diff fails the test with the requests only one side has, sorted.
func diff(t *testing.T, what string, a, b requestSet, aName, bName string) {
	t.Helper()
	var onlyA, onlyB []string
	for k := range a {
		if !b[k] {
			onlyA = append(onlyA, k)
		}
	}
	for k := range b {
		if !a[k] {
			onlyB = append(onlyB, k)
		}
	}
	if len(onlyA)+len(onlyB) == 0 {
		return
	}
	sort.Strings(onlyA)
	sort.Strings(onlyB)
	var msg strings.Builder
	fmt.Fprintf(&msg, "%s: the models disagree", what)
	for _, side := range []struct {
		name string
		rs   []string
	}{{aName, onlyA}, {bName, onlyB}} {
		for _, r := range side.rs {
			fmt.Fprintf(&msg, "\n  only in %s: %s", side.name, r)
		}
	}
	t.Error(msg.String())
}

// tableRequests are the call table's requests for a release in the
// operator's Kubernetes mode, filtered by keep.
func tableRequests(t *testing.T, rel dpf.Release, node string, keep func(dpf.Call) bool) requestSet {
	t.Helper()
	args := dpf.ParseArgs(dpf.OperatorArgs(node, "127.0.0.2", ""))
	names := strings.NewReplacer(dpf.PatternNode, node, dpf.PatternPCI, "*", dpf.PatternSerial, "*")
	out := requestSet{}
	for _, c := range dpf.Calls(rel.Script, args.CertPath()) {
		if keep(c) {
			r := c.Request(args.Namespace, node)
			r.Name = names.Replace(c.Name)
			out.add(r)
		}
	}
	if len(out) == 0 && rel.Script != dpf.ScriptNone {
		t.Fatalf("%s: the call table has no calls", rel.Version)
	}
	return out
}

// shellExpansion is what lint leaves in a name it cannot resolve.
var shellExpansion = regexp.MustCompile(`\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*`)

// lintRequests lints a fixture script with the operator's arguments and
// returns its certain and possible requests.
func lintRequests(t *testing.T, rel dpf.Release, script, node string) (certain, possible requestSet) {
	t.Helper()
	s, err := lint.LoadScript(filepath.Join("..", "lint", "testdata", script))
	if err != nil {
		t.Fatal(err)
	}
	argv := dpf.OperatorArgs(node, "127.0.0.2", "")[1:] // after the script's path
	r := lint.Lint([]*lint.Script{s}, &rbac.Set{}, lint.Options{Args: lint.ArgsFromArgv(argv), DefaultNamespace: dpf.DefaultNamespace,
		Subject: access.ServiceAccount(dpf.DefaultNamespace, rel.ServiceAccount)})
	certain, possible = requestSet{}, requestSet{}
	for _, f := range r.Findings {
		req := f.Request
		if f.NamePattern != "" {
			req.Name = shellExpansion.ReplaceAllString(f.NamePattern, "*")
		}
		if f.NamespacePattern != "" {
			req.Namespace = f.NamespacePattern
		}
		if f.Certainty == lint.Certain {
			certain.add(req)
		} else {
			possible.add(req)
		}
	}
	if len(certain) == 0 {
		t.Fatalf("lint found no certain calls in %s: the operator's arguments were not followed", script)
	}
	return certain, possible
}

func everyRun(c dpf.Call) bool { return !c.IfAbsent }
func anyCall(dpf.Call) bool    { return true }

// lint's certain calls are the calls the table makes on every run; the
// calls it makes only on a first run (IfAbsent) lint finds as possible.
func TestModelsLintAgreesWithCallTable(t *testing.T) {
	for _, mv := range modelVersions {
		if mv.script == "" {
			continue // not a script (see modelVersions)
		}
		t.Run(mv.version, func(t *testing.T) {
			rel, err := dpf.Lookup(mv.version)
			if err != nil {
				t.Fatal(err)
			}
			certain, possible := lintRequests(t, rel, mv.script, modelNode)
			diff(t, mv.version+" "+mv.script+", calls made on every run", tableRequests(t, rel, modelNode, everyRun), certain, "call table", "lint (certain)")
			for r := range tableRequests(t, rel, modelNode, func(c dpf.Call) bool { return c.IfAbsent }) {
				if !possible[r] && !certain[r] {
					t.Errorf("%s: the call table makes %q when the object is absent; lint does not find it in %s", mv.version, r, mv.script)
				}
			}
		})
	}
}

// auditRequests reads the requests user (any ServiceAccount when "") made from the audit log
// (sim.ReadAudit, the one reader lint --dynamic uses too) from offset on,
// leaving out kubectl's incidental ones, with the host's parts of names (PCI
// address, serial number) as "*" and no name on create, and returns the
// offset of the log's end.
func auditRequests(t *testing.T, path string, offset int64, user, node string) (requestSet, int64) {
	t.Helper()
	events, end, err := ReadAudit(path, offset, user)
	if err != nil {
		t.Fatal(err)
	}
	names := strings.NewReplacer((&dmsInit{pci: PCIAddress}).pciLabel(), "*", strings.ToLower(serialNumber(node)), "*")
	out := requestSet{}
	for _, ev := range events {
		if ev.Incidental() {
			continue
		}
		r := ev.Request()
		r.Name = names.Replace(r.Name)
		if r.Verb == "create" {
			r.Name = ""
		}
		out.add(r)
	}
	return out, end
}

// The requests the replay makes as the ServiceAccount, recorded by the API
// server's audit log, are the call table's: all of them on a first run
// (nothing exists yet), only the every-run ones, lint's certain calls, when
// the pod runs again.
// Both callers run: the real kubectl and client-go (large sims).
func TestModelsSimReplayAgreesWithCallTable(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts API servers (envtest); skipped under -short")
	}
	for _, mv := range modelVersions {
		for _, kubectl := range []bool{true, false} {
			if mv.script == "" && !kubectl {
				continue // no kubectl either way: one run says it all
			}
			caller := map[bool]string{true: "kubectl", false: "client-go"}[kubectl]
			if mv.script == "" {
				caller = "no script"
			}
			t.Run(mv.version+"/"+caller, func(t *testing.T) {
				rel, err := dpf.Lookup(mv.version)
				if err != nil {
					t.Fatal(err)
				}
				user := "" // v25.1: no ServiceAccount of its own; no ServiceAccount may make a request
				if rel.ServiceAccount != "" {
					user = access.ServiceAccount(dpf.DefaultNamespace, rel.ServiceAccount).User
				}
				o := Options{Version: mv.version, Nodes: 1, TimeScale: 0.05, Resync: time.Hour, Audit: true}
				if !kubectl {
					o.KubectlMaxNodes = -1
				}
				c, cs := startSim(t, o)
				if c.useKubectl != kubectl {
					t.Fatalf("useKubectl = %v, want %v", c.useKubectl, kubectl)
				}
				node := c.Nodes[0]
				if rel.PodPerDPU { // unlabelled pods, which waitPods does not list
					deadline := time.Now().Add(time.Minute)
					for {
						list, err := cs.CoreV1().Pods(c.Namespace).List(context.Background(), metav1.ListOptions{})
						if err != nil {
							t.Fatal(err)
						}
						if len(list.Items) == 1 && dpf.PodState(&list.Items[0]) == "Running" {
							break
						}
						if time.Now().After(deadline) {
							t.Fatalf("the v25.1 pod is not Running: %d pods", len(list.Items))
						}
						time.Sleep(100 * time.Millisecond)
					}
					got, _ := auditRequests(t, c.AuditLog, c.AuditStart, user, node)
					diff(t, mv.version+" (any ServiceAccount)", tableRequests(t, rel, node, anyCall), got, "call table", "sim")
					return
				}
				first := waitPods(t, cs, time.Minute, "Ready", allState(1, "Running"))[0].UID
				what := fmt.Sprintf("%s first run (%s)", mv.version, caller)
				got, end := auditRequests(t, c.AuditLog, c.AuditStart, user, node)
				diff(t, what, tableRequests(t, rel, node, anyCall), got, "call table", "sim")
				if !rel.RecreatesDeletedPod {
					return
				}
				// Run again: the DPUDevice and DPUNode exist now.
				if err := cs.CoreV1().Pods(c.Namespace).Delete(context.Background(), dpf.PodName(node), metav1.DeleteOptions{}); err != nil {
					t.Fatal(err)
				}
				waitPods(t, cs, time.Minute, "re-created pod Ready", func(ps []corev1.Pod) bool {
					return allState(1, "Running")(ps) && ps[0].UID != first
				})
				got, _ = auditRequests(t, c.AuditLog, end, user, node)
				what = fmt.Sprintf("%s second run (%s)", mv.version, caller)
				diff(t, what, tableRequests(t, rel, node, everyRun), got, "call table", "sim")
				if mv.script != "" {
					certain, _ := lintRequests(t, rel, mv.script, node)
					diff(t, what, certain, got, "lint (certain)", "sim")
				}
			})
		}
	}
}

// A container in back-off restarts at the first pod sync after its
// back-off ends, as a v1.37 kubelet's pod worker spaces them: never early,
// and at most half a sync period late (30 s after a 5-minute cap).
func TestRestartAfterBackoff(t *testing.T) {
	for _, tc := range []struct {
		backoff, maxLate time.Duration
	}{
		{10 * time.Second, 5 * time.Second},
		{40 * time.Second, 20 * time.Second},
		{backoffMax, syncFrequency / 2},
	} {
		for _, r := range []float64{0, 0.25, 0.5, 0.999} {
			late := restartAfter(tc.backoff, syncFrequency, func() float64 { return r }) - tc.backoff
			if late < 0 || late >= tc.maxLate {
				t.Errorf("back-off %v, r=%v: restart %v late, want [0, %v)", tc.backoff, r, late, tc.maxLate)
			}
			if want := time.Duration(0.5 * r * float64(tc.backoff)); tc.backoff <= syncFrequency && late != want {
				t.Errorf("back-off %v, r=%v: restart %v late, want %v (one jittered sync)", tc.backoff, r, late, want)
			}
		}
		if tc.backoff != backoffMax {
			continue
		}
		// r=0.5: four syncs of 75 s end at 5 minutes exactly. r=0.999:
		// three syncs of 89.97 s, then 30.09 s jittered to 45.12 s.
		for r, want := range map[float64]time.Duration{0.5: backoffMax, 0.999: 315030 * time.Millisecond} {
			if got := restartAfter(tc.backoff, syncFrequency, func() float64 { return r }); (got - want).Abs() > 10*time.Millisecond {
				t.Errorf("r=%v: restart after a 5-minute back-off at %v, want %v", r, got, want)
			}
		}
	}
}
