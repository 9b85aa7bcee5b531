package doctor_test

import (
	"context"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// env is one simulated cluster for one test.
type env struct {
	t   *testing.T
	c   *sim.Cluster
	cs  kubernetes.Interface
	dyn dynamic.Interface
}

// plane is an API server that the package's tests share, started on first
// use (so that -short starts none) and stopped by TestMain. Its tests take
// turns: startSim holds it until the test's sim has stopped and reset it.
type plane struct {
	sim.SharedControlPlane
	turn sync.Mutex
}

// shared serves every test but TestFixRequestBudget, which has its own
// (budgetPlane), so that its 500-node sim, mostly waiting on back-off
// timers, runs while the other tests run (they are all t.Parallel).
var shared, budgetPlane plane

// startSim starts a sim on the package's shared API server for one test
// and stops it at the end.
func startSim(t *testing.T, o sim.Options) *env {
	t.Helper()
	return startSimOn(t, &shared, o)
}

// startSimOn starts a sim on p for one test, once p is free, and stops it
// at the end.
func startSimOn(t *testing.T, p *plane, o sim.Options) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("starts an API server (envtest); skipped under -short")
	}
	if sim.Assets() == "" {
		t.Fatal("envtest binaries not found: run `make test`, or `export KUBEBUILDER_ASSETS=$(hack/envtest.sh)`")
	}
	if o.TimeScale == 0 {
		o.TimeScale = 0.05
	}
	if o.SecretWaitAttempts == 0 {
		o.SecretWaitAttempts = 2
	}
	if o.KubectlMaxNodes == 0 {
		o.KubectlMaxNodes = -1
	}
	if os.Getenv("SIM_LOG") != "" {
		o.Log = testLog{t}
	}
	asked := time.Now()
	p.turn.Lock()
	t.Cleanup(p.turn.Unlock) // after the sim's Stop below: cleanups run last first
	if w := time.Since(asked); w > time.Second {
		t.Logf("waited %.1fs for the API server", w.Seconds())
	}
	cp, err := p.Get()
	if err != nil {
		t.Fatalf("start the shared control plane: %v", err)
	}
	o.ControlPlane = cp
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := sim.Start(ctx, o)
	if err != nil {
		t.Fatalf("sim.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop sim: %v", err)
		}
	})
	return &env{t: t, c: c, cs: kubernetes.NewForConfigOrDie(c.Config), dyn: dynamic.NewForConfigOrDie(c.Config)}
}

// clients are admin clients with a fresh request counter.
func (e *env) clients() *kube.Clients {
	e.t.Helper()
	cl, err := kube.New(e.c.Config, e.c.Namespace, kube.NewBudget(0))
	if err != nil {
		e.t.Fatal(err)
	}
	return cl
}

// waitFailing waits until n DMS pods exist and none is Ready, and each has
// failed at least once, watching the pods (a LIST of 500 pods every few
// hundred milliseconds costs the API server more than the sim does).
func (e *env) waitFailing(n int) {
	e.t.Helper()
	// A deadline, not a target: on two busy cores 500 pods took more than
	// 90 s to reach their first failure beside the guard's API servers.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second+time.Duration(n)*300*time.Millisecond)
	defer cancel()
	lw := cache.NewFilteredListWatchFromClient(e.cs.CoreV1().RESTClient(), "pods", e.c.Namespace,
		func(o *metav1.ListOptions) { o.LabelSelector = dpf.ComponentLabel })
	failing := map[string]bool{} // pod → failing
	count := 0                   // failing pods
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.Pod{}, nil, func(ev watch.Event) (bool, error) {
		p, ok := ev.Object.(*corev1.Pod)
		if !ok {
			return false, nil
		}
		if failing[p.Name] {
			count--
		}
		delete(failing, p.Name)
		if ev.Type != watch.Deleted {
			s := dpf.PodState(p)
			failing[p.Name] = strings.Contains(s, "CrashLoopBackOff") || strings.Contains(s, "Error") || strings.HasPrefix(s, "Init:0/")
			if failing[p.Name] {
				count++
			}
		}
		return len(failing) == n && count == n, nil
	})
	if err != nil {
		e.t.Fatalf("pods did not all fail in time: %d of %d failing, %d pods: %v", count, n, len(failing), err)
	}
}

// readyPods counts Ready DMS pods.
func (e *env) readyPods() (ready, total int) {
	pods, err := e.cs.CoreV1().Pods(e.c.Namespace).List(context.Background(), metav1.ListOptions{LabelSelector: dpf.ComponentLabel})
	if err != nil {
		e.t.Fatal(err)
	}
	for i := range pods.Items {
		if dpf.PodReady(&pods.Items[i]) {
			ready++
		}
	}
	return ready, len(pods.Items)
}

// sar asks as the DMS ServiceAccount.
func (e *env) sar(r access.Request) bool {
	e.t.Helper()
	s := access.ServiceAccount(e.c.Namespace, e.c.Release.ServiceAccount)
	res, err := e.cs.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{User: s.User, Groups: s.Groups, ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: r.Namespace, Verb: r.Verb, Group: r.Group, Resource: r.Resource, Subresource: r.Subresource, Name: r.Name}}}, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return res.Status.Allowed
}

// reconcile runs n operator inventory reconciles now, as n resyncs would,
// instead of waiting n resync periods for them.
func (e *env) reconcile(n int) {
	e.t.Helper()
	for range n {
		if err := e.c.Reconcile(context.Background()); err != nil {
			e.t.Fatalf("operator reconcile: %v", err)
		}
	}
}

// state is what a rollback must restore: dpfdoctor's objects, the
// dpfdoctor annotations on Nodes and the DPFOperatorConfig, and the
// operator's ClusterRole rules.
type state struct {
	Managed     []string
	Annotations []string
	OperatorCR  string
}

func (e *env) state() state {
	e.t.Helper()
	ctx := context.Background()
	var s state
	sel := metav1.ListOptions{LabelSelector: plan.ManagedByLabel + "=" + plan.ManagedByValue}
	rb := e.cs.RbacV1()
	if l, err := rb.Roles("").List(ctx, sel); err == nil {
		for _, o := range l.Items {
			s.Managed = append(s.Managed, "Role/"+o.Namespace+"/"+o.Name)
		}
	}
	if l, err := rb.RoleBindings("").List(ctx, sel); err == nil {
		for _, o := range l.Items {
			s.Managed = append(s.Managed, "RoleBinding/"+o.Namespace+"/"+o.Name)
		}
	}
	if l, err := rb.ClusterRoles().List(ctx, sel); err == nil {
		for _, o := range l.Items {
			s.Managed = append(s.Managed, "ClusterRole/"+o.Name)
		}
	}
	if l, err := rb.ClusterRoleBindings().List(ctx, sel); err == nil {
		for _, o := range l.Items {
			s.Managed = append(s.Managed, "ClusterRoleBinding/"+o.Name)
		}
	}
	nodes, err := e.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, n := range nodes.Items {
		for k, v := range n.Annotations {
			if strings.HasPrefix(k, plan.AnnotationPrefix) {
				s.Annotations = append(s.Annotations, "Node/"+n.Name+"/"+k+"="+v)
			}
		}
	}
	cfg, err := e.dyn.Resource(dpf.MustGVR(dpf.GroupOperator, "DPFOperatorConfig")).Namespace(e.c.Namespace).Get(ctx, dpf.OperatorConfigName, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range cfg.GetAnnotations() {
		s.Annotations = append(s.Annotations, "DPFOperatorConfig/"+k+"="+v)
	}
	cr, err := rb.ClusterRoles().Get(ctx, e.c.Release.ClusterRole, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	s.OperatorCR = cr.ResourceVersion
	for _, r := range cr.Rules {
		s.OperatorCR += "|" + strings.Join(r.Verbs, ",") + ":" + strings.Join(r.Resources, ",")
	}
	sort.Strings(s.Managed)
	sort.Strings(s.Annotations)
	return s
}

func (s state) String() string {
	return "managed=" + strings.Join(s.Managed, ",") + " annotations=" + strings.Join(s.Annotations, ",") + " operator=" + s.OperatorCR
}

// testLog is an io.Writer into t.Log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Helper()
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var _ io.Writer = testLog{}

var dpunodes = schema.GroupVersionResource{Group: dpf.GroupProvisioning, Version: "v1alpha1", Resource: "dpunodes"}

func unstructuredOf(m map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: m}
}
