package sim

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkSimUp measures bringing up a large sim: envtest, DPF, N nodes,
// and every DMS pod through its first dms-init run. Memory is the sim's Go
// heap plus the kube-apiserver's and etcd's resident memory.
func BenchmarkSimUp(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				ctx := context.Background()
				start := time.Now()
				c, err := Start(ctx, Options{Nodes: n, Scenario: "hypothetical-secrets-forbidden=1,healthy", TimeScale: 1, KubectlMaxNodes: -1, SecretWaitAttempts: 1, Resync: time.Hour})
				if err != nil {
					b.Fatal(err)
				}
				up := time.Since(start)
				for {
					s, err := c.Summary(ctx)
					if err == nil && s.Total == n && s.Ready >= n-1 {
						break
					}
					if time.Since(start) > 20*time.Minute {
						b.Fatalf("pods did not settle: %v %v", s, err)
					}
					time.Sleep(500 * time.Millisecond)
				}
				settled := time.Since(start)
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				b.ReportMetric(up.Seconds(), "s-to-api-ready")
				b.ReportMetric(settled.Seconds(), "s-to-all-pods-settled")
				b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "MiB-sim-heap")
				b.ReportMetric(float64(rss("kube-apiserver")+rss("etcd"))/(1<<20), "MiB-apiserver+etcd-rss")
				_ = c.Stop()
			}
		})
	}
}

// rss sums VmRSS of this process's children whose command name is name.
func rss(name string) int64 {
	entries, _ := os.ReadDir("/proc")
	var total int64
	self := strconv.Itoa(os.Getpid())
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil || !strings.Contains(string(stat), "("+name+")") {
			continue
		}
		if f := strings.Fields(string(stat[strings.LastIndex(string(stat), ")")+1:])); len(f) < 2 || f[1] != self {
			continue
		}
		status, _ := os.ReadFile("/proc/" + e.Name() + "/status")
		for _, l := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(l, "VmRSS:") {
				f := strings.Fields(l)
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				total += kb * 1024
			}
		}
	}
	return total
}
