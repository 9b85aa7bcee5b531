package guard

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/dpfdoctor/dpfdoctor/internal/diagnose"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
)

// reconciler is the guard's one controller. Every watched change maps to
// the same key, so bursts (5,000 pods starting) collapse into a few
// reconciles, each over the whole cached state.
type reconciler struct {
	opts     Options
	cache    client.Reader
	clients  *kube.Clients
	recorder recorder.EventRecorder
	metrics  *metrics
	log      logr.Logger
	key      reconcile.Request

	pods    *podIndex
	fetch   *fetcher
	tracker *tracker
	repair  *repairer
	crd     crdInfo
	paused  string // the pause annotation's value last acknowledged
	// checkedVersion is the DPF version checkUpgrade last checked.
	checkedVersion string
}

func newReconciler(g *Guard, cl *kube.Clients) (*reconciler, error) {
	o := g.opts
	r := &reconciler{
		opts:     o,
		cache:    g.mgr.GetClient(),
		clients:  cl,
		recorder: g.mgr.GetEventRecorder(ControllerName), // events.k8s.io/v1
		metrics:  g.metrics,
		log:      o.Logger,
		key:      reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.Namespace, Name: "dms"}},
		fetch:    newFetcher(cl.Kube, o.Namespace, o.MaxLogsPerSignature),
		tracker:  newTracker(),
	}
	r.repair = newRepairer(r)
	return r, nil
}

// setup registers the controller and its watches, each through the shared
// cache, each with a predicate that drops changes the guard does not read.
func (r *reconciler) setup(mgr manager.Manager) error {
	var err error
	if r.pods, err = newPodIndex(context.Background(), mgr.GetCache(), r.opts.Namespace); err != nil {
		return err
	}
	all := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{r.key}
	})
	skip := true
	return builder.ControllerManagedBy(mgr).
		Named(ControllerName).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: 1,
			SkipNameValidation:      &skip,
			RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](time.Second, 5*time.Minute),
		}).
		WithLogConstructor(func(*reconcile.Request) logr.Logger { return r.log }).
		WatchesRawSource(source.Channel(r.pods.trigger, all)).
		Watches(&corev1.Node{}, all, builder.WithPredicates(predicate.LabelChangedPredicate{})).
		Watches(&rbacv1.Role{}, all, builder.WithPredicates(predicate.ResourceVersionChangedPredicate{})).
		Watches(&rbacv1.RoleBinding{}, all, builder.WithPredicates(predicate.ResourceVersionChangedPredicate{})).
		Watches(newOperatorConfig(), all, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{},
			predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Complete(r)
}

// podChanged passes pod updates that change what the guard reads: the
// state kubectl shows, readiness, restarts, or the pod itself.
type podChanged struct{ predicate.Funcs }

func (podChanged) Update(e event.UpdateEvent) bool {
	a, okA := e.ObjectOld.(*corev1.Pod)
	b, okB := e.ObjectNew.(*corev1.Pod)
	if !okA || !okB {
		return true
	}
	return a.UID != b.UID || dpf.PodState(a) != dpf.PodState(b) || dpf.PodReady(a) != dpf.PodReady(b) ||
		restarts(a) != restarts(b) || (a.DeletionTimestamp == nil) != (b.DeletionTimestamp == nil)
}

func restarts(p *corev1.Pod) int32 {
	var n int32
	for _, c := range p.Status.InitContainerStatuses {
		n += c.RestartCount
	}
	for _, c := range p.Status.ContainerStatuses {
		n += c.RestartCount
	}
	return n
}

// Reconcile reads the cache, updates the metrics, diagnoses the failing
// pods, records events and, in repair mode, repairs.
func (r *reconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	start := time.Now()
	defer func() {
		if r.opts.OnReconcile != nil {
			r.opts.OnReconcile(time.Since(start))
		}
	}()
	s, err := r.read(ctx)
	if errors.Is(err, errNotSynced) {
		return reconcile.Result{RequeueAfter: time.Second}, nil
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	var polled bool
	if s.config != nil {
		if polled, err = r.addPerDPUPods(ctx, s); err != nil {
			return reconcile.Result{}, err
		}
	}
	r.metrics.setPods(s)
	r.recordRecovered(r.tracker.update(s))
	if s.config == nil {
		setCounts(r.metrics.findings, nil)
		r.log.Info("no DPFOperatorConfig in the namespace: DPF is not installed here, nothing to guard", "namespace", r.opts.Namespace)
		return reconcile.Result{}, nil
	}
	paused := r.notePause(s.config)
	var (
		fails []failingPod
		next  time.Time
	)
	for i := range s.pods {
		p := s.pods[i]
		bad, until := failing(p, s.now, r.opts.StartupGrace)
		if bad {
			ev := evidence.PodFrom(p)
			fails = append(fails, failingPod{obj: p, ev: ev, sig: ev.Signature(), restarts: restarts(p)})
		} else if !until.IsZero() && (next.IsZero() || until.Before(next)) {
			next = until
		}
	}
	r.tracker.failing(fails, s.now)
	fresh, waiting := r.tracker.split(fails, rbacState(s.rbac), s.now)
	b, err := r.bundle(ctx, s, fresh)
	if err != nil {
		return reconcile.Result{}, err
	}
	if err := r.checkUpgrade(ctx, s, b); err != nil {
		return reconcile.Result{}, err
	}
	d := diagnose.Diagnose(b)
	r.metrics.setFindings(d, s, r.waitingClasses(waiting))
	r.recordDiagnoses(fresh, d)

	res := reconcile.Result{}
	if !next.IsZero() {
		res.RequeueAfter = next.Sub(s.now) + time.Second
	}
	if polled && (res.RequeueAfter == 0 || perDPUPoll < res.RequeueAfter) {
		res.RequeueAfter = perDPUPoll
	}
	if r.opts.Mode != ModeRepair || paused {
		return res, nil
	}
	after, err := r.repair.run(ctx, s, b, d)
	if err != nil {
		return reconcile.Result{}, err
	}
	if after > 0 && (res.RequeueAfter == 0 || after < res.RequeueAfter) {
		res.RequeueAfter = after
	}
	return res, nil
}

// waitingClasses are the last reported classes of pods awaiting a retry.
func (r *reconciler) waitingClasses(waiting []failingPod) []string {
	out := make([]string, 0, len(waiting))
	for _, f := range waiting {
		out = append(out, r.tracker.class(f.obj.UID))
	}
	return out
}

// bundle builds the evidence for the failing pods from the cache, plus what
// the fetcher remembers or reads.
func (r *reconciler) bundle(ctx context.Context, s *snapshot, fails []failingPod) (*evidence.Bundle, error) {
	b := &evidence.Bundle{
		SchemaVersion: evidence.SchemaVersion,
		CollectedAt:   s.now.UTC().Format(time.RFC3339),
		Install:       evidence.InstallFrom(r.opts.Namespace, s.config, s.pods),
		RBAC:          evidence.ManagedRBAC(s.rbac.roles, s.rbac.roleBindings),
		Gaps: []evidence.Gap{{What: "secrets", Reason: "the guard never reads Secrets",
			Impact: "whether a node's server Secret exists is judged from FailedMount events"}},
	}
	r.crd.fill(ctx, r.clients, &b.Install, r.log)
	names := map[string]bool{}
	for _, f := range fails {
		b.Pods = append(b.Pods, f.ev)
		if f.ev.Node != "" {
			names[f.ev.Node] = true
		}
	}
	nodes, err := r.nodes(ctx, names)
	if err != nil {
		return nil, err
	}
	for i := range nodes {
		b.Nodes = append(b.Nodes, evidence.NodeFrom(&nodes[i]))
	}
	if len(fails) == 0 {
		return b, nil
	}
	start := r.clients.Budget.Used()
	if err := r.fetch.fill(ctx, b, fails, rbacState(s.rbac)); err != nil {
		return nil, fmt.Errorf("read evidence: %w", err)
	}
	b.Requests = r.clients.Budget.Used() - start
	return b, nil
}

// rbacState identifies the state of dpfdoctor's RBAC objects: what access
// reviews and logs were read against.
func rbacState(m managedRBAC) string {
	var parts []string
	for _, o := range m.roles {
		parts = append(parts, "Role/"+o.Name+"@"+o.ResourceVersion)
	}
	for _, o := range m.roleBindings {
		parts = append(parts, "RoleBinding/"+o.Name+"@"+o.ResourceVersion)
	}
	sort.Strings(parts)
	return strings.Join(parts, ";")
}
