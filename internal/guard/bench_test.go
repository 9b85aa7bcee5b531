package guard

import (
	"context"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// BenchmarkGuardSteadyState5000 runs the guard (repair mode, deploy/'s
// RBAC, no leader election) on a 5,000-node sim with a few failing hosts:
// it repairs them (warm-up), then runs a minute at steady state with a Node
// label changing every half second. Reported: the guard's heap (the
// in-process sim's heap subtracted), reconcile latency p50/p99 at steady
// state and the slowest warm-up reconcile, and API requests per minute at
// steady state other than watches (targets: < 200 MiB, p99 < 100 ms, 0).
func BenchmarkGuardSteadyState5000(b *testing.B) {
	const nodes, failing = 5000, 5
	for i := 0; i < b.N; i++ {
		benchSteadyState(b, nodes, failing)
	}
}

// BenchmarkGuardSteadyState500 is the same at a tenth of the size, to show
// how the numbers scale.
func BenchmarkGuardSteadyState500(b *testing.B) {
	for i := 0; i < b.N; i++ {
		benchSteadyState(b, 500, 5)
	}
}

func benchSteadyState(b *testing.B, nodes, failing int) {
	ctx := context.Background()
	e := startEnv(b, sim.Options{Nodes: nodes, Scenario: "hypothetical-secrets-forbidden=" + strconv.Itoa(failing) + ",healthy", TimeScale: 0.2})
	e.waitSummary(20*time.Minute, "pods settled", func(s sim.Summary) bool { return s.Total == nodes && s.Ready >= nodes-failing })
	heapBefore := heapInUse()

	var (
		mu        sync.Mutex
		latencies []time.Duration
	)
	budget := kube.NewBudget(0).Recording()
	g, err := New(e.guardCfg, Options{Mode: ModeRepair, Namespace: e.c.Namespace, MetricsAddr: "0", ProbeAddr: "0",
		Budget: budget, BackupDir: b.TempDir(), Logger: testLogger("guard"), Registry: prometheus.NewRegistry(),
		OnReconcile: func(d time.Duration) {
			mu.Lock()
			latencies = append(latencies, d)
			mu.Unlock()
		}})
	if err != nil {
		b.Fatal(err)
	}
	gctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- g.Start(gctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Logf("guard stopped: %v", err)
		}
	}()
	e.waitSummary(10*time.Minute, "every pod Ready after the guard's repair", func(s sim.Summary) bool { return s.Total == nodes && s.Ready == nodes })
	repaired := time.Since(start)

	// Warm-up over. Steady state for a minute: nothing fails; a Node label
	// changes every half second, so the guard reconciles the whole
	// 5,000-pod state each time, from its cache alone.
	time.Sleep(10 * time.Second)
	mu.Lock()
	warmup := append([]time.Duration(nil), latencies...)
	latencies = nil
	mu.Unlock()
	budget.Reset()
	window := 60 * time.Second
	for i, end := 0, time.Now().Add(window); time.Now().Before(end); i++ {
		node := e.c.Nodes[i%len(e.c.Nodes)]
		patch := []byte(`{"metadata":{"labels":{"bench.dpfdoctor.dev/touch":"` + strconv.Itoa(i) + `"}}}`)
		if _, err := e.cs.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			b.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(time.Second)
	var nonWatch []kube.Record
	for _, r := range budget.Records() {
		if !strings.Contains(r.Query, "watch=true") {
			nonWatch = append(nonWatch, r)
		}
	}
	heapAfter := heapInUse()

	mu.Lock()
	lat := append([]time.Duration(nil), latencies...)
	mu.Unlock()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	sort.Slice(warmup, func(i, j int) bool { return warmup[i] < warmup[j] })
	b.ReportMetric(float64(heapAfter-heapBefore)/(1<<20), "MiB-guard-heap")
	b.ReportMetric(pct(lat, 50).Seconds()*1000, "ms-reconcile-p50")
	b.ReportMetric(pct(lat, 99).Seconds()*1000, "ms-reconcile-p99")
	b.ReportMetric(float64(len(lat)), "steady-reconciles")
	b.ReportMetric(pct(warmup, 100).Seconds()*1000, "ms-warmup-reconcile-max")
	b.ReportMetric(float64(len(warmup)), "warmup-reconciles")
	b.ReportMetric(float64(len(nonWatch))/window.Minutes(), "api-requests/min-steady")
	b.ReportMetric(repaired.Seconds(), "s-to-all-ready")
	for _, r := range nonWatch {
		b.Logf("steady-state request: %s %s?%s", r.Method, r.Path, r.Query)
	}
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	if i > 0 {
		i--
	}
	return sorted[i]
}

// heapInUse is the Go heap in use after a full collection.
func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

// waitSummary polls the sim's pod summary every two seconds.
func (e *env) waitSummary(timeout time.Duration, what string, cond func(sim.Summary) bool) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s, err := e.c.Summary(context.Background())
		if err == nil && cond(s) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %s waiting for %s: %v %v", timeout, what, s, err)
		}
		time.Sleep(2 * time.Second)
	}
}
