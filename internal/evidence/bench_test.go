package evidence_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/dpfdoctor/dpfdoctor/internal/diagnose"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// benchScenarios fails every pod. The Secret-waiting scenarios are left out:
// their scaled sleeps would hold the sim's kubelet workers for minutes.
const benchScenarios = "dpudevice-status-forbidden=1000,apiserver-unreachable=1000,certificate-not-ready=1000,rshim-occupied=1000,no-dpu-found=1000"

// BenchmarkDiagnose5000 diagnoses a 5,000-node sim where every pod fails:
// requests, wall time and peak heap per diagnosis, then the same cluster
// examined the naive way (per-pod GETs and a `kubectl auth can-i` per pod
// and call) for the ratio.
func BenchmarkDiagnose5000(b *testing.B) {
	if testing.Short() {
		b.Skip("5,000-node sim")
	}
	// A large time scale: after the first failure the next restart is
	// minutes away, so the sim is quiet while we measure.
	c, err := startSim(sim.Options{Nodes: 5000, Scenario: benchScenarios, TimeScale: 30, SecretWaitAttempts: 1,
		KubectlMaxNodes: -1, Resync: time.Hour, Workers: 32})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Stop() })

	var dpfdoctorRequests int64
	b.Run("dpfdoctor", func(b *testing.B) {
		var requests, logs int64
		var peak uint64 // heap in use above the baseline before each diagnosis
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			budget := kube.NewBudget(0).Recording()
			cl, err := kube.New(c.Config, "", budget)
			if err != nil {
				b.Fatal(err)
			}
			runtime.GC()
			stop := watchHeap(&peak)
			bundle, err := (&evidence.Collector{Clients: cl}).Collect(context.Background(), evidence.Options{})
			if err != nil {
				b.Fatal(err)
			}
			d := diagnose.Diagnose(bundle)
			stop()
			if d.Summary.Failing != 5000 {
				b.Fatalf("%d failing pods, want 5000", d.Summary.Failing)
			}
			l, _ := splitLogs(budget)
			requests, logs = bundle.Requests, int64(l)
		}
		dpfdoctorRequests = requests
		b.ReportMetric(float64(requests), "requests/op")
		b.ReportMetric(float64(logs), "log-requests/op")
		b.ReportMetric(float64(peak)/(1<<20), "peak-extra-heap-MiB")
	})

	// The naive way costs ~10 requests per pod, and its per-pod event LIST
	// scans every event of the namespace: it is measured on every tenth
	// node and scaled up (its cost is linear in the pods).
	b.Run("naive", func(b *testing.B) {
		const every = 10
		var sample []string
		for i, n := range c.Nodes {
			if i%every == 0 {
				sample = append(sample, n)
			}
		}
		var requests int64
		var elapsed time.Duration
		for i := 0; i < b.N; i++ {
			budget := kube.NewBudget(0)
			cl, err := kube.New(c.Config, "", budget)
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			if err := naive(context.Background(), cl.Kube, c.Namespace, sample); err != nil {
				b.Fatal(err)
			}
			elapsed, requests = time.Since(start), budget.Used()
		}
		scaled := float64(requests) * float64(len(c.Nodes)) / float64(len(sample))
		b.ReportMetric(scaled, "requests/op")
		b.ReportMetric(elapsed.Seconds()*float64(len(c.Nodes))/float64(len(sample)), "est-seconds/op")
		if dpfdoctorRequests > 0 {
			b.ReportMetric(scaled/float64(dpfdoctorRequests), "x-dpfdoctor-requests")
		}
		b.Logf("naive: %d requests for %d of %d pods in %s", requests, len(sample), len(c.Nodes), elapsed.Round(time.Millisecond))
	})
}

// naive examines every pod on its own, the way a script around kubectl
// would: get the pod, get its events, `kubectl auth can-i` for every call
// of its dmsinit.sh, and read its dms-init log.
func naive(ctx context.Context, cs kubernetes.Interface, ns string, nodes []string) error {
	sa := "system:serviceaccount:" + ns + ":dpf-provisioning-dms-service-account"
	var failed atomic.Value
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, node := range nodes {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := naivePod(ctx, cs, ns, sa, node); err != nil {
				failed.Store(err)
			}
		}()
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		return err
	}
	return nil
}

func naivePod(ctx context.Context, cs kubernetes.Interface, ns, sa, node string) error {
	name := dpf.PodName(node)
	pod, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get pod %s: %w", name, err)
	}
	if _, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name}); err != nil {
		return fmt.Errorf("events of %s: %w", name, err)
	}
	var argv []string
	for _, c := range pod.Spec.InitContainers {
		if c.Name == dpf.ContainerDMSInit {
			argv = append(append(argv, c.Command...), c.Args...)
		}
	}
	calls := dpf.Calls(dpf.ScriptForImageTag(dpf.ImageTag(pod.Spec.InitContainers[1].Image)), dpf.ParseArgs(argv).CertPath())
	for _, c := range calls {
		r := c.Request(ns, node)
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: sa}}
		if r.NonResourceURL != "" {
			sar.Spec.NonResourceAttributes = &authorizationv1.NonResourceAttributes{Verb: r.Verb, Path: r.NonResourceURL}
		} else {
			sar.Spec.ResourceAttributes = &authorizationv1.ResourceAttributes{Verb: r.Verb, Group: r.Group, Resource: r.Resource,
				Subresource: r.Subresource, Namespace: r.Namespace, Name: r.Name}
		}
		if _, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("can-i for %s: %w", name, err)
		}
	}
	// The log read fails for pods that never started; kubectl would too.
	_, _ = cs.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{Container: dpf.ContainerDMSInit}).DoRaw(ctx)
	return nil
}

// watchHeap samples the heap until stopped and keeps in *peak the most heap
// in use above what was in use when it started (the sim shares the process).
func watchHeap(peak *uint64) (stop func()) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > base && ms.HeapInuse-base > *peak {
				*peak = ms.HeapInuse - base
			}
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
