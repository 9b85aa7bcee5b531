package faultproxy

import (
	"context"
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

func TestProxyFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an API server (envtest); skipped under -short")
	}
	if sim.Assets() == "" {
		t.Fatal("envtest binaries not found: run `make test`, or `export KUBEBUILDER_ASSETS=$(hack/envtest.sh)`")
	}
	ctx := context.Background()
	// A bare API server: the proxy needs no DPF objects.
	env := &envtest.Environment{}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	p, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const ns = metav1.NamespaceDefault
	cs := kubernetes.NewForConfigOrDie(p.Config)
	if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		t.Fatalf("clean proxying failed: %v", err)
	}

	// 429 with Retry-After: client-go waits and retries, the call succeeds.
	p.SetRules(&Rule{Match: Nth(1), Action: Action{Status: http.StatusTooManyRequests, RetryAfter: 1}, Times: 1})
	start := time.Now()
	if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		t.Fatalf("429 was not retried: %v", err)
	}
	if waited := time.Since(start); waited < 900*time.Millisecond || p.Requests() != 2 {
		t.Fatalf("Retry-After not honoured: waited %v over %d requests", waited, p.Requests())
	}

	// The same through dpfdoctor's clients (client-side limiting off):
	// the wait the API server asked for is counted.
	b := kube.NewBudget(0)
	cl, err := kube.New(p.Config, ns, b)
	if err != nil {
		t.Fatal(err)
	}
	p.SetRules(&Rule{Match: Nth(1), Action: Action{Status: http.StatusTooManyRequests, RetryAfter: 1}, Times: 1})
	if _, err := cl.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		t.Fatalf("429 was not retried: %v", err)
	}
	if b.Used() != 2 || b.Waited() != time.Second || cl.Config.QPS >= 0 {
		t.Fatalf("budget: %d requests, waited %v (want 2, 1s), QPS %v", b.Used(), b.Waited(), cl.Config.QPS)
	}

	// A dropped connection is an error to the caller.
	p.SetRules(&Rule{Match: AfterN(0), Action: Action{Drop: true}})
	if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err == nil {
		t.Fatal("a dropped request succeeded")
	}
	// 500 on writes only: reads pass.
	p.SetRules(&Rule{Match: Writes(), Action: Action{Status: http.StatusInternalServerError}})
	if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		t.Fatalf("read failed under a write-only rule: %v", err)
	}
	if p.Injected() < 2 {
		t.Fatalf("injected %d faults, want ≥ 2", p.Injected())
	}
}
