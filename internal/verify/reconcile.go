package verify

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/metadata"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
)

// OperatorRole reads the operator's DMS ClusterRole; nil when it is absent
// or the plan names none.
func OperatorRole(ctx context.Context, cl *kube.Clients, p *plan.Plan) (*rbacv1.ClusterRole, error) {
	if p.OperatorClusterRole == "" {
		return nil, nil
	}
	cr, err := cl.Kube.RbacV1().ClusterRoles().Get(ctx, p.OperatorClusterRole, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read ClusterRole %s: %w", p.OperatorClusterRole, kube.Classify(err))
	}
	return cr, nil
}

// ReconcileResult is what happened around one operator reconcile.
type ReconcileResult struct {
	// RequestedAt is when the reconcile was requested (the annotation's
	// value); empty when the operator is paused.
	RequestedAt string `json:"requestedAt,omitempty"`
	// Paused is true when the DPFOperatorConfig is paused: no reconcile
	// runs until it is resumed.
	Paused        bool    `json:"paused"`
	WaitedSeconds float64 `json:"waitedSeconds"` // how long dpfdoctor watched
	// Events are the changes seen on dpfdoctor's objects and the
	// operator's ClusterRole while watching.
	Events []string `json:"events,omitempty"`
	// ObjectsIntact is true when every object the plan applied still holds
	// what the plan set; Drifted names those that do not.
	ObjectsIntact bool     `json:"objectsIntact"`
	Drifted       []string `json:"drifted,omitempty"`
	OperatorRole  string   `json:"operatorRole,omitempty"` // the operator's ClusterRole
	// OperatorRoleUntouched is true when its rules are what they were
	// before the fix.
	OperatorRoleUntouched bool `json:"operatorRoleUntouched"`
	// OperatorRoleMatchesRelease is true when its rules are exactly what
	// the release ships.
	OperatorRoleMatchesRelease bool `json:"operatorRoleMatchesRelease"`
}

// ReconcileWatch watches dpfdoctor's objects and the operator's
// ClusterRole while the operator reconciles (apply.RequestReconcile asks it
// to), then checks that the objects still hold what the plan set and that
// the operator's ClusterRole is untouched.
type ReconcileWatch struct {
	cl *kube.Clients
	p  *plan.Plan
	w  *watches
	// Live are the plan's objects as Result read them back.
	Live []*unstructured.Unstructured
}

// WatchReconcile starts the watches. Stop them with Result or Stop.
func WatchReconcile(ctx context.Context, cl *kube.Clients, p *plan.Plan) (*ReconcileWatch, error) {
	w, err := startWatches(ctx, cl, p)
	if err != nil {
		return nil, err
	}
	return &ReconcileWatch{cl: cl, p: p, w: w}, nil
}

// Stop ends the watches.
func (rw *ReconcileWatch) Stop() { rw.w.stop() }

// Result stops the watches and reads back the plan's objects and the
// operator's ClusterRole; before is that ClusterRole as it was before the
// fix. It fills everything but the request's fields.
func (rw *ReconcileWatch) Result(ctx context.Context, before *rbacv1.ClusterRole) (ReconcileResult, error) {
	p := rw.p
	res := ReconcileResult{OperatorRole: p.OperatorClusterRole, Events: rw.w.stop(), ObjectsIntact: true}
	var err error
	if rw.Live, err = ReadBack(ctx, rw.cl, p); err != nil {
		return res, err
	}
	for i, c := range p.Changes {
		ok := false
		if live := rw.Live[i]; live != nil {
			if ok, err = plan.Covers(live, c.Object); err != nil {
				return res, err
			}
		}
		if !ok {
			res.ObjectsIntact = false
			res.Drifted = append(res.Drifted, c.Ref().String())
		}
	}
	after, err := OperatorRole(ctx, rw.cl, p)
	if err != nil {
		return res, err
	}
	if after != nil {
		res.OperatorRoleUntouched = before != nil && plan.SameRules(before.Rules, after.Rules)
		res.OperatorRoleMatchesRelease = len(p.OperatorRules) > 0 && plan.SameRules(p.OperatorRules, after.Rules)
	}
	return res, nil
}

func getObject(ctx context.Context, cl *kube.Clients, ref plan.ObjectRef) (*unstructured.Unstructured, error) {
	g, err := dpf.GVR(ref.Group, ref.Kind)
	if err != nil {
		return nil, err
	}
	u, err := kube.Resource(cl.Dynamic, g, ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ref, kube.Classify(err))
	}
	return u, nil
}

// watches follow dpfdoctor's objects and the operator's ClusterRole.
type watches struct {
	mu     sync.Mutex
	ws     []watch.Interface
	events []string
	wg     sync.WaitGroup
}

func startWatches(ctx context.Context, cl *kube.Clients, p *plan.Plan) (*watches, error) {
	w := &watches{}
	managed := metav1.ListOptions{LabelSelector: plan.ManagedByLabel + "=" + plan.ManagedByValue}
	type source struct {
		kind string
		opts metav1.ListOptions
	}
	var sources []source
	if p.OperatorClusterRole != "" {
		sources = append(sources, source{"ClusterRole", metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", p.OperatorClusterRole).String()}})
	}
	kinds := map[string]bool{}
	for _, c := range p.Changes {
		kinds[c.Ref().Kind] = true
	}
	for _, kind := range []string{"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"} {
		if kinds[kind] {
			sources = append(sources, source{kind, managed})
		}
	}
	for _, s := range sources {
		ri := metadata.ResourceInterface(cl.Metadata.Resource(dpf.MustGVR(dpf.GroupRBAC, s.kind)))
		if !strings.HasPrefix(s.kind, "Cluster") {
			ri = cl.Metadata.Resource(dpf.MustGVR(dpf.GroupRBAC, s.kind)).Namespace(p.Namespace)
		}
		wi, err := watchFromNow(ctx, ri, s.opts)
		if err != nil {
			w.stop()
			return nil, fmt.Errorf("watch %s: %w", s.kind, kube.Classify(err))
		}
		w.ws = append(w.ws, wi)
		w.wg.Go(func() { w.follow(s.kind, wi) })
	}
	return w, nil
}

// watchFromNow lists (for the resource version) and watches from there.
func watchFromNow(ctx context.Context, ri metadata.ResourceInterface, opts metav1.ListOptions) (watch.Interface, error) {
	l, err := ri.List(ctx, opts)
	if err != nil {
		return nil, err
	}
	opts.ResourceVersion = l.ResourceVersion
	return ri.Watch(ctx, opts)
}

// follow records a watch's events until it is stopped, which closes its
// result channel.
func (w *watches) follow(kind string, wi watch.Interface) {
	for ev := range wi.ResultChan() {
		m, err := meta.Accessor(ev.Object)
		if err != nil || ev.Type == watch.Bookmark || ev.Type == watch.Error {
			continue
		}
		w.mu.Lock()
		w.events = append(w.events, fmt.Sprintf("%s %s %s (resourceVersion %s)", kind, m.GetName(), ev.Type, m.GetResourceVersion()))
		w.mu.Unlock()
	}
}

// stop ends the watches (again, harmlessly) and returns the events seen,
// sorted.
func (w *watches) stop() []string {
	for _, wi := range w.ws {
		wi.Stop()
	}
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Sorted(slices.Values(w.events))
}
