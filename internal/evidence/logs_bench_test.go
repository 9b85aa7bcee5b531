package evidence_test

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dpfdoctor/dpfdoctor/internal/diagnose"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

var benchNodes = flag.Int("bench-nodes", 5000, "DPU hosts in BenchmarkLogsByCause's sims")

// BenchmarkLogsByCause measures the log strategy above the log budget on
// -bench-nodes failing nodes (5,000 by default): one cause (the failure
// signature's sample agrees: at most 3 pods' logs and 15 other requests),
// and two log-only causes with one failure signature, alternating node by
// node (the sample disagrees: every pod's log is read). It reports
// requests, pods whose logs were read and wall time per diagnosis.
func BenchmarkLogsByCause(b *testing.B) {
	if testing.Short() {
		b.Skip("large sims")
	}
	n := *benchNodes
	for _, bc := range []struct {
		name   string
		causes []sim.Scenario
	}{
		{"one-cause", []sim.Scenario{sim.APIServerUnreachable}},
		{"two-causes-interleaved", []sim.Scenario{sim.APIServerUnreachable, sim.NoDPUFound}},
	} {
		b.Run(fmt.Sprintf("%s-%d", bc.name, n), func(b *testing.B) {
			var mix []string
			for i := 0; i < n; i++ {
				mix = append(mix, string(bc.causes[i%len(bc.causes)])+"=1")
			}
			c, err := startSimFailed(sim.Options{Nodes: n, Scenario: strings.Join(mix, ","), TimeScale: 30, SecretWaitAttempts: 1,
				KubectlMaxNodes: -1, Resync: time.Hour, Workers: 32}, 1)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = c.Stop() })
			var requests, logPods int
			var wall time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				budget := kube.NewBudget(0).Recording()
				cl, err := kube.New(c.Config, "", budget)
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				bundle, err := (&evidence.Collector{Clients: cl}).Collect(context.Background(), evidence.Options{})
				if err != nil {
					b.Fatal(err)
				}
				d := diagnose.Diagnose(bundle)
				wall = time.Since(start)
				for cls, k := range d.Summary.ByClass {
					if cls == diagnose.ClassUnknown {
						b.Errorf("%d pods Unknown", k)
					}
				}
				logs, other := splitLogs(budget)
				requests, logPods = other, podsRead(bundle)
				if len(bc.causes) == 1 && n > evidence.DefaultLogBudget && (logPods > 3 || other > 15) {
					b.Errorf("one cause on %d nodes: %d pods' logs (%d reads) and %d other requests, want ≤ 3 and ≤ 15", n, logPods, logs, other)
				}
			}
			b.ReportMetric(float64(requests), "requests/op")
			b.ReportMetric(float64(logPods), "log-pods/op")
			b.ReportMetric(wall.Seconds(), "wall-s/op")
		})
	}
}

// podsRead counts the pods whose logs were read.
func podsRead(b *evidence.Bundle) int {
	n := 0
	for _, g := range b.LogGroups {
		n += len(g.Fetched)
	}
	return n
}
