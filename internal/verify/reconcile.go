package verify

import (
	"context"
	"fmt"
	"slices"
	"sync"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

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

// ReconcileWatch follows the operator's ClusterRole from before the fix
// and dpfdoctor's objects from their read-back after the apply
// (apply.RequestReconcile asks the operator to reconcile meanwhile), then
// checks that the objects still hold what the plan set and that the
// operator's ClusterRole is untouched. Each watch starts at the
// resourceVersion of the object it follows, so the read that gave the
// object is also the watch's start: no LIST, and no read again at the end
// while the watch is unbroken.
type ReconcileWatch struct {
	cl   *kube.Clients
	p    *plan.Plan
	role *follower   // the operator's ClusterRole; nil when the plan names none
	objs []*follower // the plan's objects, by index in p.Changes
	// Live are the plan's objects and Role the operator's ClusterRole
	// (nil when absent) as Result saw them last.
	Live []*unstructured.Unstructured
	Role *rbacv1.ClusterRole
}

// WatchReconcile starts following the operator's ClusterRole from before,
// as read before any change (nil when absent or the plan names none).
// Stop it with Stop.
func WatchReconcile(ctx context.Context, cl *kube.Clients, p *plan.Plan, before *rbacv1.ClusterRole) (*ReconcileWatch, error) {
	rw := &ReconcileWatch{cl: cl, p: p}
	if p.OperatorClusterRole == "" {
		return rw, nil
	}
	var from *unstructured.Unstructured
	if before != nil {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(before)
		if err != nil {
			return nil, err
		}
		from = &unstructured.Unstructured{Object: m}
	}
	var err error
	rw.role, err = follow(ctx, cl, plan.ObjectRef{Group: rbacv1.GroupName, Kind: "ClusterRole", Name: p.OperatorClusterRole}, from)
	return rw, err
}

// Follow starts following the plan's objects from live, as read back after
// the apply (ReadBack).
func (rw *ReconcileWatch) Follow(ctx context.Context, live []*unstructured.Unstructured) error {
	for i, c := range rw.p.Changes {
		f, err := follow(ctx, rw.cl, c.Ref(), live[i])
		if err != nil {
			return err
		}
		rw.objs = append(rw.objs, f)
	}
	return nil
}

// Stop ends the watches.
func (rw *ReconcileWatch) Stop() {
	for _, f := range rw.all() {
		f.stop()
	}
}

func (rw *ReconcileWatch) all() []*follower {
	if rw.role == nil {
		return rw.objs
	}
	return append([]*follower{rw.role}, rw.objs...)
}

// Result stops the watches and takes the plan's objects and the operator's
// ClusterRole as the watches saw them last (read again only where a watch
// broke); before is that ClusterRole as it was before the fix. It fills
// everything but the request's fields.
func (rw *ReconcileWatch) Result(ctx context.Context, before *rbacv1.ClusterRole) (ReconcileResult, error) {
	p := rw.p
	res := ReconcileResult{OperatorRole: p.OperatorClusterRole, ObjectsIntact: true}
	rw.Stop()
	for _, f := range rw.all() {
		res.Events = append(res.Events, f.events...)
	}
	slices.Sort(res.Events)
	rw.Live = make([]*unstructured.Unstructured, len(p.Changes))
	for i, c := range p.Changes {
		var err error
		if rw.Live[i], err = rw.objs[i].last(ctx, rw.cl); err != nil {
			return res, err
		}
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
	if rw.role == nil {
		return res, nil
	}
	u, err := rw.role.last(ctx, rw.cl)
	if err != nil || u == nil {
		return res, err
	}
	after := &rbacv1.ClusterRole{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, after); err != nil {
		return res, err
	}
	rw.Role = after
	res.OperatorRoleUntouched = before != nil && plan.SameRules(before.Rules, after.Rules)
	res.OperatorRoleMatchesRelease = len(p.OperatorRules) > 0 && plan.SameRules(p.OperatorRules, after.Rules)
	return res, nil
}

// follower is one object followed by a watch on its name.
type follower struct {
	ref     plan.ObjectRef
	wi      watch.Interface
	done    chan struct{}
	mu      sync.Mutex
	obj     *unstructured.Unstructured // as last seen; nil when absent
	broken  bool                       // the watch failed or ended by itself
	stopped bool
	events  []string
}

// follow watches ref from from's resourceVersion, or, when from is nil or
// that version is too old, from a LIST of that one name.
func follow(ctx context.Context, cl *kube.Clients, ref plan.ObjectRef, from *unstructured.Unstructured) (*follower, error) {
	g, err := dpf.GVR(ref.Group, ref.Kind)
	if err != nil {
		return nil, err
	}
	ri := kube.Resource(cl.Dynamic, g, ref.Namespace)
	opts := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", ref.Name).String()}
	f := &follower{ref: ref, obj: from, done: make(chan struct{})}
	if from != nil {
		opts.ResourceVersion = from.GetResourceVersion()
		f.wi, err = ri.Watch(ctx, opts)
	}
	if from == nil || apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
		var l *unstructured.UnstructuredList
		if l, err = ri.List(ctx, metav1.ListOptions{FieldSelector: opts.FieldSelector}); err == nil {
			f.obj = nil
			if len(l.Items) > 0 {
				f.obj = &l.Items[0]
			}
			opts.ResourceVersion = l.GetResourceVersion()
			f.wi, err = ri.Watch(ctx, opts)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", ref, kube.Classify(err))
	}
	go f.run()
	return f, nil
}

// run records the watch's events until it is stopped, which closes its
// result channel.
func (f *follower) run() {
	defer close(f.done)
	for ev := range f.wi.ResultChan() {
		f.mu.Lock()
		u, ok := ev.Object.(*unstructured.Unstructured)
		switch {
		case ev.Type == watch.Error || !ok:
			// Stopping a watch can end its stream with an error event.
			f.broken = f.broken || !f.stopped
		case ev.Type == watch.Added || ev.Type == watch.Modified:
			f.obj = u
		case ev.Type == watch.Deleted:
			f.obj = nil
		}
		if ok && ev.Type != watch.Bookmark && ev.Type != watch.Error {
			f.events = append(f.events, fmt.Sprintf("%s %s %s (resourceVersion %s)", f.ref.Kind, u.GetName(), ev.Type, u.GetResourceVersion()))
		}
		f.mu.Unlock()
	}
	f.mu.Lock()
	f.broken = f.broken || f.wi != nil && !f.stopped
	f.mu.Unlock()
}

// stop ends the watch (again, harmlessly) and waits for run to return.
func (f *follower) stop() {
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
	f.wi.Stop()
	<-f.done
}

// last is the object as the watch saw it last, or as read now when the
// watch broke.
func (f *follower) last(ctx context.Context, cl *kube.Clients) (*unstructured.Unstructured, error) {
	f.mu.Lock()
	obj, broken := f.obj, f.broken
	f.mu.Unlock()
	if !broken {
		return obj, nil
	}
	return getObject(ctx, cl, f.ref)
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
