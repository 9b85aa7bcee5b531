package faultproxy

import (
	"context"
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

func TestProxyFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an API server (envtest); skipped under -short")
	}
	ctx := context.Background()
	c, err := sim.Start(ctx, sim.Options{Nodes: 1, TimeScale: 0.05, KubectlMaxNodes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	p, err := Start(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cs := kubernetes.NewForConfigOrDie(p.Config)
	if _, err := cs.CoreV1().Namespaces().Get(ctx, c.Namespace, metav1.GetOptions{}); err != nil {
		t.Fatalf("clean proxying failed: %v", err)
	}

	// 429 with Retry-After: client-go waits and retries, the call succeeds.
	p.SetRules(&Rule{Match: Nth(1), Action: Action{Status: http.StatusTooManyRequests, RetryAfter: 1}, Times: 1})
	start := time.Now()
	if _, err := cs.CoreV1().Namespaces().Get(ctx, c.Namespace, metav1.GetOptions{}); err != nil {
		t.Fatalf("429 was not retried: %v", err)
	}
	if waited := time.Since(start); waited < 900*time.Millisecond || p.Requests() != 2 {
		t.Fatalf("Retry-After not honoured: waited %v over %d requests", waited, p.Requests())
	}

	// The same through dpfdoctor's clients (client-side limiting off):
	// the wait the API server asked for is counted.
	b := kube.NewBudget(0)
	cl, err := kube.New(p.Config, c.Namespace, b)
	if err != nil {
		t.Fatal(err)
	}
	p.SetRules(&Rule{Match: Nth(1), Action: Action{Status: http.StatusTooManyRequests, RetryAfter: 1}, Times: 1})
	if _, err := cl.Kube.CoreV1().Namespaces().Get(ctx, c.Namespace, metav1.GetOptions{}); err != nil {
		t.Fatalf("429 was not retried: %v", err)
	}
	if b.Used() != 2 || b.Waited() != time.Second || cl.Config.QPS >= 0 {
		t.Fatalf("budget: %d requests, waited %v (want 2, 1s), QPS %v", b.Used(), b.Waited(), cl.Config.QPS)
	}

	// A dropped connection is an error to the caller.
	p.SetRules(&Rule{Match: AfterN(0), Action: Action{Drop: true}})
	if _, err := cs.CoreV1().Namespaces().Get(ctx, c.Namespace, metav1.GetOptions{}); err == nil {
		t.Fatal("a dropped request succeeded")
	}
	// 500 on writes only: reads pass.
	p.SetRules(&Rule{Match: Writes(), Action: Action{Status: http.StatusInternalServerError}})
	if _, err := cs.CoreV1().Namespaces().Get(ctx, c.Namespace, metav1.GetOptions{}); err != nil {
		t.Fatalf("read failed under a write-only rule: %v", err)
	}
	if p.Injected() < 2 {
		t.Fatalf("injected %d faults, want ≥ 2", p.Injected())
	}
}
