package sim

// The three models of dms-init agree (issue 13 §3): the call table in
// internal/dpf, the fixture scripts under internal/lint/testdata as lint
// reads them, and this package's replay as the API server sees it. Every
// side is normalised to access.Requests: verb, group, resource,
// subresource, namespace and a name pattern with the node substituted and
// every part only the host knows (PCI address, serial number) as "*".
// create carries no name, as RBAC sees it.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
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

// auditEvent is the part of an audit.k8s.io/v1 Event the test reads.
type auditEvent struct {
	Stage      string `json:"stage"`
	Verb       string `json:"verb"`
	RequestURI string `json:"requestURI"`
	User       struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		APIGroup    string `json:"apiGroup"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
}

// auditedAPIServer makes envtest start kube-apiserver with an audit log of
// every ServiceAccount's requests (level Metadata) and returns the log's
// path.
func auditedAPIServer(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	policy, log, wrapper := filepath.Join(dir, "policy.yaml"), filepath.Join(dir, "audit.log"), filepath.Join(dir, "kube-apiserver")
	writeFile(t, policy, `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  userGroups: ["system:serviceaccounts"]
- level: None
`)
	writeFile(t, wrapper, fmt.Sprintf("#!/bin/sh\nexec %q --audit-policy-file=%q --audit-log-path=%q \"$@\"\n",
		filepath.Join(Assets(), "kube-apiserver"), policy, log))
	if err := os.Chmod(wrapper, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_ASSET_KUBE_APISERVER", wrapper) // envtest's override of the binary
	return log
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// auditRequests reads the audit log from offset and returns the requests
// user made (any ServiceAccount when user is ""), and the offset of the
// log's end.
func auditRequests(t *testing.T, path string, offset int64, user, node string) (requestSet, int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if _, err := f.Seek(offset, 0); err != nil {
		t.Fatal(err)
	}
	names := strings.NewReplacer((&dmsInit{pci: PCIAddress}).pciLabel(), "*", strings.ToLower(serialNumber(node)), "*")
	out := requestSet{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		offset += int64(len(sc.Bytes())) + 1
		var ev auditEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("audit log: %v", err)
		}
		if ev.Stage != "ResponseComplete" || (user != "" && ev.User.Username != user) {
			continue
		}
		if ev.ObjectRef == nil {
			path, _, _ := strings.Cut(ev.RequestURI, "?")
			if path != "/version" && (strings.HasPrefix(path, "/api") || strings.HasPrefix(path, "/openapi/")) {
				continue // kubectl's discovery and OpenAPI reads, which system:discovery allows everyone
			}
			out.add(access.Request{Verb: ev.Verb, NonResourceURL: path})
			continue
		}
		o := ev.ObjectRef
		if ev.Verb == "get" && o.Resource == "namespaces" && o.APIGroup == "" && o.Subresource == "" {
			// kubectl's NotFound probe: after a NotFound in a namespace it
			// reads the namespace to tell "no such namespace" apart, and
			// returns the NotFound on any other answer (cli-runtime
			// resource.Info.Get). Its refusal changes nothing.
			continue
		}
		r := access.Request{Verb: ev.Verb, Group: o.APIGroup, Resource: o.Resource, Subresource: o.Subresource, Namespace: o.Namespace, Name: names.Replace(o.Name)}
		if r.Verb == "create" {
			r.Name = ""
		}
		out.add(r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out, offset
}

// The requests the replay makes as the ServiceAccount, recorded by the API
// server's audit log, are the call table's: all of them on a first run
// (nothing exists yet), only the every-run ones, lint's certain calls, when
// the pod runs again.
// Both callers run: the real kubectl and client-go (large sims).
func TestModelsSimReplayAgreesWithCallTable(t *testing.T) {
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
				log := auditedAPIServer(t)
				o := Options{Version: mv.version, Nodes: 1, TimeScale: 0.05, Resync: time.Hour}
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
					got, _ := auditRequests(t, log, 0, user, node)
					diff(t, mv.version+" (any ServiceAccount)", tableRequests(t, rel, node, anyCall), got, "call table", "sim")
					return
				}
				first := waitPods(t, cs, time.Minute, "Ready", allState(1, "Running"))[0].UID
				what := fmt.Sprintf("%s first run (%s)", mv.version, caller)
				got, end := auditRequests(t, log, 0, user, node)
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
				got, _ = auditRequests(t, log, end, user, node)
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
