package doctor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/doctor"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// benchScale is the sim's time scale: every simulated delay (operator
// resync 10 s, kubelet back-off 10 s … 5 min, dms-init sleeps) times 0.05.
const benchScale = 0.05

// fixBench is one benchmark result, written to bench/fix-<nodes>.json.
type fixBench struct {
	Nodes     int     `json:"nodes"`
	TimeScale float64 `json:"timeScale"`
	Version   string  `json:"dpfVersion"`
	// Load is `uptime` before the runs: other work shares the CPU.
	Load string `json:"load"`
	// Dpfdoctor is fix --apply --restart=delete; RestartNone the same with
	// --restart=none; V257Delete --restart=delete on DPF v25.7.0, whose
	// operator re-creates a deleted pod by itself.
	Dpfdoctor    benchRun   `json:"dpfdoctor"`
	RestartNone  *benchRun  `json:"restartNone,omitempty"`
	V257Delete   *benchRun  `json:"v25.7.0Delete,omitempty"`
	WidelyShared *sharedRun `json:"widelyShared,omitempty"`
}

// sharedRun is the widely shared approach, measured.
type sharedRun struct {
	Requests       int64   `json:"requests"`
	Seconds        float64 `json:"seconds"`
	Ready          int     `json:"ready"`
	Polls          int     `json:"polls"`
	PatchReverted  bool    `json:"patchReverted"`
	SecretsReadAll bool    `json:"everySecretReadableWhilePatched"`
}

// benchRun is one dpfdoctor fix, measured.
type benchRun struct {
	Restart       string  `json:"restart"`
	Requests      int64   `json:"requests"`
	Reviews       int     `json:"subjectAccessReviews"`
	Seconds       float64 `json:"seconds"`
	WaitedSeconds float64 `json:"waitedSeconds"` // on 429 Retry-After; client-side limiting is off
	Ready         int     `json:"ready"`
	Outcome       string  `json:"outcome"`
	GrantSurvive  bool    `json:"grantSurvivesReconcile"`
	// ByKind counts the requests by method and resource.
	ByKind map[string]int `json:"byKind"`
	// Phases are the report's phase times.
	Phases *doctor.Timings `json:"phaseSeconds,omitempty"`
}

// BenchmarkFix1000 measures fix-to-all-Ready on 1,000 failing v25.4.0
// nodes (DPFDOCTOR_BENCH_NODES overrides the count), each on a fresh sim:
// --restart=delete and --restart=none, --restart=delete on v25.7.0, and
// the widely shared approach: patch the operator's ClusterRole with
// get,list on every Secret, list the pods, delete each, and list every
// 10 s (scaled) for 10 minutes (scaled), two node status report periods.
func BenchmarkFix1000(b *testing.B) {
	nodes := benchNodes(b, 1000)
	for i := 0; i < b.N; i++ {
		res := fixBench{Nodes: nodes, TimeScale: benchScale, Version: "v25.4.0", Load: uptime()}
		res.Dpfdoctor = benchDpfdoctor(b, nodes, "v25.4.0", plan.RestartDelete)
		none := benchDpfdoctor(b, nodes, "v25.4.0", plan.RestartNone)
		v257 := benchDpfdoctor(b, nodes, "v25.7.0", plan.RestartDelete)
		res.RestartNone, res.V257Delete = &none, &v257
		benchWidelyShared(b, nodes, &res)
		b.ReportMetric(float64(res.Dpfdoctor.Requests), "requests/op")
		b.ReportMetric(res.Dpfdoctor.Seconds, "s-to-all-ready/op")
		reportPhases(b, "", res.Dpfdoctor.Phases)
		b.ReportMetric(float64(res.Dpfdoctor.Ready), "ready/op")
		b.ReportMetric(float64(none.Requests), "none-requests/op")
		b.ReportMetric(none.Seconds, "none-s-to-all-ready/op")
		reportPhases(b, "none-", none.Phases)
		b.ReportMetric(float64(none.Ready), "none-ready/op")
		b.ReportMetric(float64(v257.Requests), "v25.7-requests/op")
		b.ReportMetric(v257.Seconds, "v25.7-s-to-all-ready/op")
		reportPhases(b, "v25.7-", v257.Phases)
		b.ReportMetric(float64(res.WidelyShared.Requests), "shared-requests/op")
		b.ReportMetric(float64(res.WidelyShared.Ready), "shared-ready/op")
		writeBench(b, res)
	}
}

// BenchmarkFix5000 is fix --apply --restart=delete on 5,000 failing
// v25.4.0 nodes: requests and time to all Ready.
func BenchmarkFix5000(b *testing.B) {
	nodes := benchNodes(b, 5000)
	for i := 0; i < b.N; i++ {
		res := fixBench{Nodes: nodes, TimeScale: benchScale, Version: "v25.4.0", Load: uptime()}
		res.Dpfdoctor = benchDpfdoctor(b, nodes, "v25.4.0", plan.RestartDelete)
		b.ReportMetric(float64(res.Dpfdoctor.Requests), "requests/op")
		b.ReportMetric(res.Dpfdoctor.Seconds, "s-to-all-ready/op")
		reportPhases(b, "", res.Dpfdoctor.Phases)
		b.ReportMetric(float64(res.Dpfdoctor.Ready), "ready/op")
		writeBench(b, res)
	}
}

// reportPhases reports the times from the grant and from the first
// restart to all Ready; the other phases are in the log line and the JSON.
func reportPhases(b *testing.B, prefix string, t *doctor.Timings) {
	if t == nil {
		return
	}
	b.ReportMetric(t.GrantToAllReady, prefix+"s-grant-to-all-ready/op")
	if t.RestartToAllReady > 0 {
		b.ReportMetric(t.RestartToAllReady, prefix+"s-restart-to-all-ready/op")
	}
}

func benchNodes(b *testing.B, def int) int {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		b.Skip("KUBEBUILDER_ASSETS is not set")
	}
	if v, err := strconv.Atoi(os.Getenv("DPFDOCTOR_BENCH_NODES")); err == nil && v > 0 {
		return v
	}
	return def
}

func uptime() string {
	out, err := exec.Command("uptime").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func benchSim(b *testing.B, nodes int, version string) (*sim.Cluster, kubernetes.Interface) {
	b.Helper()
	// Ten minutes per 1,000 nodes to start the sim and see every pod fail:
	// on a slower two-core machine 5,000 nodes took more than ten.
	wait := 10 * time.Minute * time.Duration(max(1, nodes/1000))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	scen := sim.HypotheticalSecretsForbidden
	if version != "v25.4.0" {
		scen = sim.HypotheticalSecretsForbiddenQuiet // the same failure; the scenario's name for later releases
	}
	// One Secret poll a run: a failing run sleeps 2 s (scaled) per poll on
	// one of the sim kubelet's 16 workers, and with two polls 1,000 pods
	// at the back-off cap need more worker time than 16 have, so the
	// pool, not the kubelet's schedule, decided when pods retried
	// (bench/fix.md). The fix's requests do not depend on the polls.
	c, err := sim.Start(ctx, sim.Options{Nodes: nodes, Version: version, Scenario: string(scen), TimeScale: benchScale,
		SecretWaitAttempts: 1, KubectlMaxNodes: -1})
	if err != nil {
		b.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(c.Config)
	failing := 0
	for ; ctx.Err() == nil; time.Sleep(2 * time.Second) {
		pods, err := cs.CoreV1().Pods(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: dpf.ComponentLabel})
		if err != nil {
			continue
		}
		failing = 0
		for i := range pods.Items {
			if strings.Contains(dpf.PodState(&pods.Items[i]), "CrashLoopBackOff") {
				failing++
			}
		}
		if failing == nodes {
			return c, cs
		}
	}
	_ = c.Stop() // b.Fatalf skips the caller's deferred Stop
	b.Fatalf("%d of %d pods failing after %s", failing, nodes, wait)
	return nil, nil
}

func benchDpfdoctor(b *testing.B, nodes int, version, restart string) benchRun {
	c, _ := benchSim(b, nodes, version)
	defer func() { _ = c.Stop() }()
	cl, err := kube.New(c.Config, c.Namespace, kube.NewBudget(0).Recording())
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	rep, err := doctor.Fix(context.Background(), doctor.FixOptions{
		PlanOptions:   doctor.PlanOptions{Clients: cl, Restart: restart},
		BackupRoot:    b.TempDir(),
		ReconcileWait: time.Duration(float64(15*time.Second) * benchScale),
		// Two minutes (scaled) per 1,000 nodes: the restarts of a large
		// fleet outlast the default.
		Timeout: time.Duration(float64(10*time.Minute)*benchScale*4) * time.Duration(max(1, nodes/1000)),
	})
	b.StopTimer()
	res := benchRun{Restart: restart, Seconds: time.Since(start).Seconds(), Requests: cl.Budget.Used(), ByKind: byKind(cl.Budget.Records())}
	res.Reviews = res.ByKind["POST subjectaccessreviews"]
	if err != nil {
		b.Logf("fix %s --restart=%s: %v", version, restart, err)
	}
	res.Outcome, res.WaitedSeconds, res.Phases = rep.Outcome, rep.WaitedSeconds, rep.Seconds
	if rep.Recovery != nil {
		res.Ready = rep.Recovery.Ready
	}
	res.GrantSurvive = rep.Reconcile != nil && rep.Reconcile.ObjectsIntact && rep.AfterReconcile != nil && len(rep.AfterReconcile.Problems) == 0
	b.Logf("fix %s --restart=%s on %d nodes: %d requests (%d access reviews), %d Ready in %.1fs (%s); phases: %v; by kind %v",
		version, restart, nodes, res.Requests, res.Reviews, res.Ready, res.Seconds, res.Outcome, res.Phases, res.ByKind)
	return res
}

func benchWidelyShared(b *testing.B, nodes int, res *fixBench) {
	res.WidelyShared = &sharedRun{}
	c, _ := benchSim(b, nodes, "v25.4.0")
	defer func() { _ = c.Stop() }()
	budget := kube.NewBudget(0)
	cl, err := kube.New(c.Config, c.Namespace, budget)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	cs, ns := cl.Kube, c.Namespace
	start := time.Now()
	patch := `[{"op":"add","path":"/rules/-","value":{"apiGroups":[""],"resources":["secrets"],"verbs":["get","list"]}}]`
	if _, err := cs.RbacV1().ClusterRoles().Patch(ctx, c.Release.ClusterRole, types.JSONPatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		b.Fatal(err)
	}
	// The patched role lets the SA list every Secret (until the operator's
	// next reconcile; the sim's resync is 10 s × the time scale).
	if allowed, err := canI(ctx, cs, ns, c.Release.ServiceAccount, "list", "secrets"); err == nil {
		res.WidelyShared.SecretsReadAll = allowed
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: dpf.ComponentLabel})
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range pods.Items {
		if err := cs.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	poll := time.Duration(float64(10*time.Second) * benchScale)
	// Watch for two node status report periods (the kubelet's 5 min, ±10 %,
	// scaled): on v25.4.0 a deleted pod whose node has no DPUNode comes back
	// only at its node's next report, so a shorter window would count pods
	// as gone that a real cluster would have re-created.
	window := time.Duration(float64(10*time.Minute) * benchScale)
	for deadline := time.Now().Add(window); time.Now().Before(deadline); time.Sleep(poll) {
		res.WidelyShared.Polls++
		l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: dpf.ComponentLabel})
		if err != nil {
			b.Fatal(err)
		}
		res.WidelyShared.Ready = ready(l.Items)
		if res.WidelyShared.Ready == nodes {
			break
		}
	}
	res.WidelyShared.Seconds = time.Since(start).Seconds()
	res.WidelyShared.Requests = budget.Used() - 1 // the SubjectAccessReview above is ours, not the approach's
	cr, err := kubernetes.NewForConfigOrDie(c.Config).RbacV1().ClusterRoles().Get(ctx, c.Release.ClusterRole, metav1.GetOptions{})
	if err == nil {
		res.WidelyShared.PatchReverted = len(cr.Rules) == len(c.Release.Rules)
	}
}

func ready(pods []corev1.Pod) int {
	n := 0
	for i := range pods {
		if dpf.PodReady(&pods[i]) {
			n++
		}
	}
	return n
}

func canI(ctx context.Context, cs kubernetes.Interface, ns, sa, verb, resource string) (bool, error) {
	s := access.ServiceAccount(ns, sa)
	r, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: s.User, Groups: s.Groups, ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Resource: resource}}}, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	return r.Status.Allowed, nil
}

func writeBench(b *testing.B, res fixBench) {
	b.Helper()
	dir := filepath.Join("..", "..", "bench")
	if _, err := os.Stat(dir); err != nil {
		return
	}
	data, _ := json.MarshalIndent(res, "", "  ")
	file := filepath.Join(dir, fmt.Sprintf("fix-%d.json", res.Nodes))
	if err := os.WriteFile(file, append(data, '\n'), 0o644); err != nil {
		b.Logf("write %s: %v", file, err)
	}
	b.Logf("load: %s", res.Load)
}

// byKind groups requests as "METHOD resource[/subresource]" ("watch" for
// watches).
func byKind(recs []kube.Record) map[string]int {
	m := map[string]int{}
	for _, r := range recs {
		parts := strings.Split(strings.Trim(r.Path, "/"), "/")
		res := ""
		// /api/v1/[namespaces/ns/]res[/name[/sub]] or /apis/g/v/[namespaces/ns/]res[/name[/sub]]
		start := 2
		if parts[0] == "apis" {
			start = 3
		}
		rest := parts[min(start, len(parts)):]
		if len(rest) >= 2 && rest[0] == "namespaces" && len(rest) > 2 {
			rest = rest[2:]
		}
		if len(rest) > 0 {
			res = rest[0]
		}
		if len(rest) == 3 {
			res += "/" + rest[2]
		}
		verb := r.Method
		if strings.Contains(r.Query, "watch=true") {
			verb = "WATCH"
		}
		m[verb+" "+res]++
	}
	return m
}
