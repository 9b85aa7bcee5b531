package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
)

// Recorder journals an annotation before it is set, so that rollback can
// remove it (apply.Backup implements it).
type Recorder interface {
	RecordAnnotations(changes ...plan.AnnotationChange) error
}

// GVROperatorConfig is the DPFOperatorConfig resource.
var GVROperatorConfig = schema.GroupVersionResource{Group: dpf.GroupOperator, Version: "v1alpha1", Resource: "dpfoperatorconfigs"}

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

// ReconcileOptions configure Reconcile.
type ReconcileOptions struct {
	Plan *plan.Plan
	// Wait is how long to give the operator after requesting a reconcile.
	Wait time.Duration
	// Before is the operator's ClusterRole as it was before the fix.
	Before *rbacv1.ClusterRole
	// Recorder journals the trigger annotation; required.
	Recorder Recorder
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// ReconcileResult is what happened around one operator reconcile.
type ReconcileResult struct {
	// RequestedAt is when the reconcile was requested (the annotation's
	// value); empty when the operator is paused.
	RequestedAt string `json:"requestedAt,omitempty"`
	// Paused is true when the DPFOperatorConfig is paused: no reconcile
	// runs until it is resumed.
	Paused bool `json:"paused"`
	// WaitedSeconds is how long dpfdoctor watched.
	WaitedSeconds float64 `json:"waitedSeconds"`
	// Events are the changes seen on dpfdoctor's objects and the
	// operator's ClusterRole while watching.
	Events []string `json:"events,omitempty"`
	// ObjectsIntact is true when every object the plan applied still holds
	// what the plan set; Drifted names those that do not.
	ObjectsIntact bool     `json:"objectsIntact"`
	Drifted       []string `json:"drifted,omitempty"`
	// OperatorRole is the operator's ClusterRole.
	OperatorRole string `json:"operatorRole,omitempty"`
	// OperatorRoleUntouched is true when its rules are what they were
	// before the fix.
	OperatorRoleUntouched bool `json:"operatorRoleUntouched"`
	// OperatorRoleMatchesRelease is true when its rules are exactly what
	// the release ships.
	OperatorRoleMatchesRelease bool `json:"operatorRoleMatchesRelease"`
}

// Reconcile requests an operator reconcile by annotating the
// DPFOperatorConfig (plan.ReconcileRequestedAnnotation; journalled first,
// removed again afterwards), watches dpfdoctor's objects and the operator's
// ClusterRole for Wait, then checks that the objects still hold what the
// plan set and that the operator's ClusterRole is untouched.
func Reconcile(ctx context.Context, cl *kube.Clients, o ReconcileOptions) (ReconcileResult, error) {
	p := o.Plan
	now := o.Now
	if now == nil {
		now = time.Now
	}
	res := ReconcileResult{OperatorRole: p.OperatorClusterRole}
	cfgs := cl.Dynamic.Resource(GVROperatorConfig).Namespace(p.Namespace)
	cfg, err := cfgs.Get(ctx, p.OperatorConfig, metav1.GetOptions{})
	if err != nil {
		return res, fmt.Errorf("read DPFOperatorConfig %s: %w", p.OperatorConfig, kube.Classify(err))
	}
	res.Paused, _, _ = unstructured.NestedBool(cfg.Object, "spec", "overrides", "paused")

	w, err := startWatches(ctx, cl, p)
	if err != nil {
		return res, err
	}
	defer w.stop()

	start := now()
	if !res.Paused {
		ref := plan.ObjectRef{Group: dpf.GroupOperator, Kind: "DPFOperatorConfig", Namespace: p.Namespace, Name: p.OperatorConfig}
		value := start.UTC().Format(time.RFC3339Nano)
		prev, had := cfg.GetAnnotations()[plan.ReconcileRequestedAnnotation]
		var previous *string
		if had {
			previous = &prev
		}
		if err := o.Recorder.RecordAnnotations(plan.AnnotationChange{Ref: ref, Key: plan.ReconcileRequestedAnnotation, Value: value, Previous: previous}); err != nil {
			return res, fmt.Errorf("journal the reconcile request: %w", err)
		}
		if err := annotate(ctx, cl, p, plan.ReconcileRequestedAnnotation, &value); err != nil {
			return res, err
		}
		res.RequestedAt = value
		defer func() {
			// Leave the DPFOperatorConfig as it was; this is one more
			// harmless reconcile trigger.
			_ = annotate(context.WithoutCancel(ctx), cl, p, plan.ReconcileRequestedAnnotation, previous)
		}()
	}
	t := time.NewTimer(o.Wait)
	select {
	case <-ctx.Done():
		t.Stop()
		return res, ctx.Err()
	case <-t.C:
	}
	res.WaitedSeconds = now().Sub(start).Seconds()
	res.Events = w.stop()

	res.ObjectsIntact = true
	for _, c := range p.Changes {
		ref := c.Ref()
		live, err := getObject(ctx, cl, ref)
		if err != nil {
			return res, err
		}
		ok := false
		if live != nil {
			if ok, err = plan.Covers(live, c.Object); err != nil {
				return res, err
			}
		}
		if !ok {
			res.ObjectsIntact = false
			res.Drifted = append(res.Drifted, ref.String())
		}
	}
	after, err := OperatorRole(ctx, cl, p)
	if err != nil {
		return res, err
	}
	if after != nil {
		res.OperatorRoleUntouched = o.Before != nil && plan.SameRules(o.Before.Rules, after.Rules)
		res.OperatorRoleMatchesRelease = len(p.OperatorRules) > 0 && plan.SameRules(p.OperatorRules, after.Rules)
	}
	return res, nil
}

// annotate sets (value non-nil) or removes the annotation on the
// DPFOperatorConfig.
func annotate(ctx context.Context, cl *kube.Clients, p *plan.Plan, key string, value *string) error {
	var v any
	if value != nil {
		v = *value
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{key: v}}})
	_, err := cl.Dynamic.Resource(GVROperatorConfig).Namespace(p.Namespace).Patch(ctx, p.OperatorConfig, types.MergePatchType, patch,
		metav1.PatchOptions{FieldManager: plan.FieldManager})
	if err != nil {
		return fmt.Errorf("annotate DPFOperatorConfig %s: %w", p.OperatorConfig, kube.Classify(err))
	}
	return nil
}

func getObject(ctx context.Context, cl *kube.Clients, ref plan.ObjectRef) (*unstructured.Unstructured, error) {
	g := rbacv1.SchemeGroupVersion.WithResource(map[string]string{"Role": "roles", "RoleBinding": "rolebindings",
		"ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings"}[ref.Kind])
	var (
		u   *unstructured.Unstructured
		err error
	)
	if ref.Namespace != "" {
		u, err = cl.Dynamic.Resource(g).Namespace(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	} else {
		u, err = cl.Dynamic.Resource(g).Get(ctx, ref.Name, metav1.GetOptions{})
	}
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
	mu      sync.Mutex
	ws      []watch.Interface
	events  []string
	done    chan struct{}
	wg      sync.WaitGroup
	stopped bool
}

func startWatches(ctx context.Context, cl *kube.Clients, p *plan.Plan) (*watches, error) {
	w := &watches{done: make(chan struct{})}
	managed := metav1.ListOptions{LabelSelector: plan.ManagedByLabel + "=" + plan.ManagedByValue}
	rb := cl.Kube.RbacV1()
	type source struct {
		kind string
		open func(metav1.ListOptions) (watch.Interface, error)
		rv   func() (string, error)
		opts metav1.ListOptions
	}
	var sources []source
	if p.OperatorClusterRole != "" {
		byName := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", p.OperatorClusterRole).String()}
		sources = append(sources, source{"ClusterRole", func(o metav1.ListOptions) (watch.Interface, error) { return rb.ClusterRoles().Watch(ctx, o) },
			func() (string, error) {
				l, err := rb.ClusterRoles().List(ctx, byName)
				if err != nil {
					return "", err
				}
				return l.ResourceVersion, nil
			}, byName})
	}
	kinds := map[string]bool{}
	for _, c := range p.Changes {
		kinds[c.Ref().Kind] = true
	}
	if kinds["Role"] {
		sources = append(sources, source{"Role", func(o metav1.ListOptions) (watch.Interface, error) { return rb.Roles(p.Namespace).Watch(ctx, o) },
			func() (string, error) {
				l, err := rb.Roles(p.Namespace).List(ctx, managed)
				if err != nil {
					return "", err
				}
				return l.ResourceVersion, nil
			}, managed})
	}
	if kinds["RoleBinding"] {
		sources = append(sources, source{"RoleBinding", func(o metav1.ListOptions) (watch.Interface, error) { return rb.RoleBindings(p.Namespace).Watch(ctx, o) },
			func() (string, error) {
				l, err := rb.RoleBindings(p.Namespace).List(ctx, managed)
				if err != nil {
					return "", err
				}
				return l.ResourceVersion, nil
			}, managed})
	}
	if kinds["ClusterRole"] {
		sources = append(sources, source{"ClusterRole", func(o metav1.ListOptions) (watch.Interface, error) { return rb.ClusterRoles().Watch(ctx, o) },
			func() (string, error) {
				l, err := rb.ClusterRoles().List(ctx, managed)
				if err != nil {
					return "", err
				}
				return l.ResourceVersion, nil
			}, managed})
	}
	if kinds["ClusterRoleBinding"] {
		sources = append(sources, source{"ClusterRoleBinding", func(o metav1.ListOptions) (watch.Interface, error) { return rb.ClusterRoleBindings().Watch(ctx, o) },
			func() (string, error) {
				l, err := rb.ClusterRoleBindings().List(ctx, managed)
				if err != nil {
					return "", err
				}
				return l.ResourceVersion, nil
			}, managed})
	}
	for _, s := range sources {
		rv, err := s.rv()
		if err != nil {
			w.stop()
			return nil, fmt.Errorf("watch %s: %w", s.kind, kube.Classify(err))
		}
		opts := s.opts
		opts.ResourceVersion = rv
		wi, err := s.open(opts)
		if err != nil {
			w.stop()
			return nil, fmt.Errorf("watch %s: %w", s.kind, kube.Classify(err))
		}
		w.ws = append(w.ws, wi)
		w.wg.Add(1)
		go w.follow(s.kind, wi)
	}
	return w, nil
}

func (w *watches) follow(kind string, wi watch.Interface) {
	defer w.wg.Done()
	for {
		select {
		case <-w.done:
			return
		case ev, ok := <-wi.ResultChan():
			if !ok {
				return
			}
			m, err := metaOf(ev.Object)
			if err != nil || ev.Type == watch.Bookmark || ev.Type == watch.Error {
				continue
			}
			w.mu.Lock()
			w.events = append(w.events, fmt.Sprintf("%s %s %s (resourceVersion %s)", kind, m.GetName(), ev.Type, m.GetResourceVersion()))
			w.mu.Unlock()
		}
	}
}

// stop ends the watches and returns the events seen, sorted.
func (w *watches) stop() []string {
	w.mu.Lock()
	if !w.stopped {
		w.stopped = true
		close(w.done)
		for _, wi := range w.ws {
			wi.Stop()
		}
	}
	w.mu.Unlock()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	out := append([]string(nil), w.events...)
	sort.Strings(out)
	return out
}
