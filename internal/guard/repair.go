package guard

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/apply"
	"github.com/dpfdoctor/dpfdoctor/internal/diagnose"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
	"github.com/dpfdoctor/dpfdoctor/internal/policy"
)

// settle is how long after its own write the guard waits for the cache to
// show it before it would consider writing the same objects again.
const settle = 10 * time.Second

// repairer keeps dpfdoctor's grant in place: "desired", as dpfdoctor last
// wrote it (or found it at start, or `dpfdoctor fix` rewrote it). Each repair
// goes the way `dpfdoctor fix` does: plan.Build (keeping desired, plus the
// grant for failing pods RBAC can fix), policy.CheckWith (namespaced objects
// only, never the operator's inventory), then apply. So a desired object
// deleted or altered by anyone but dpfdoctor is put back, rate-limited.
type repairer struct {
	r       *reconciler
	applier *apply.Applier
	desired map[plan.ObjectRef]*unstructured.Unstructured
	// written holds, for each object of the last write, the
	// resourceVersion the cache showed before it ("" = absent), and when.
	written   map[plan.ObjectRef]string
	writtenAt time.Time
	refused   map[string]bool // plans the policy refused, by content hash
	window    []time.Time     // writes in the last minute
}

func newRepairer(r *reconciler) *repairer {
	return &repairer{r: r, applier: &apply.Applier{Clients: r.clients, Log: logWriter{r.log}, FieldManager: apply.GuardFieldManager},
		desired: map[plan.ObjectRef]*unstructured.Unstructured{}, refused: map[string]bool{}}
}

// work is what one repair is to write.
type work struct {
	plan    *plan.Plan
	built   bool                         // the plan came from plan.Build for failing pods
	deletes []*unstructured.Unstructured // altered by someone else: delete, then re-create
	changed []plan.ObjectRef             // objects absent or different in the cache
}

// run repairs what needs repairing and returns when to look again.
func (rp *repairer) run(ctx context.Context, s *snapshot, b *evidence.Bundle, d *diagnose.Diagnosis) (time.Duration, error) {
	live, err := liveObjects(s.rbac)
	if err != nil {
		return 0, err
	}
	rp.adopt(live)
	rp.completeBindings(s)
	w, err := rp.plan(b, d, live)
	if err != nil || w == nil {
		return 0, err
	}
	if wait := rp.settling(live, w, s.now); wait > 0 {
		return wait, nil
	}
	key := contentHash(w.plan)
	if rp.refused[key] {
		return 0, nil
	}
	if wait := rp.allow(s.now); wait > 0 {
		rp.r.log.Info("repair deferred: too many repairs in the last minute", "max", rp.r.opts.MaxRepairsPerMinute, "retryIn", wait)
		return wait, nil
	}
	return 0, rp.write(ctx, s, w, live, key)
}

// adopt takes in what the cache shows when dpfdoctor wrote it: objects seen
// for the first time, and whatever only dpfdoctor's field managers wrote
// (a `dpfdoctor fix` run, or the guard's own write merged with one).
// Changes by anyone else are drift.
func (rp *repairer) adopt(live map[plan.ObjectRef]*unstructured.Unstructured) {
	for ref, obj := range live {
		if _, ok := rp.desired[ref]; !ok || !apply.AlteredByOthers(obj) {
			rp.desired[ref] = obj
		}
	}
}

// plan decides what to write; nil when everything is in place. plan.Build
// keeps the desired objects: a fix for failing pods merges with them, and
// those it does not touch are written back as desired.
func (rp *repairer) plan(b *evidence.Bundle, d *diagnose.Diagnosis, live map[plan.ObjectRef]*unstructured.Unstructured) (*work, error) {
	// Keep is never nil: the plan keeps desired even when it is empty.
	keep := slices.AppendSeq(make([]*unstructured.Unstructured, 0, len(rp.desired)), maps.Values(rp.desired))
	in := plan.Input{Diagnosis: &diagnose.Diagnosis{}, Bundle: b, Keep: keep}
	w := &work{built: fixable(d)}
	if w.built {
		in.Diagnosis = d
	}
	p, err := plan.Build(in)
	if err != nil {
		return nil, fmt.Errorf("plan the repair: %w", err)
	}
	p.Restart = nil // the guard restarts nothing: pods recover at their next back-off retry
	for _, c := range p.Changes {
		if l, ok := live[c.Ref()]; ok {
			if same, err := plan.Covers(l, c.Object); err == nil && same {
				continue
			}
			if apply.AlteredByOthers(l) {
				w.deletes = append(w.deletes, l)
			}
		}
		w.changed = append(w.changed, c.Ref())
	}
	if len(w.changed) == 0 {
		return nil, nil
	}
	sort.Slice(w.changed, func(i, j int) bool { return w.changed[i].String() < w.changed[j].String() })
	w.plan = p
	return w, nil
}

// settling reports how long to wait when the cache has not yet shown the
// guard's own last write to the objects it would write again.
func (rp *repairer) settling(live map[plan.ObjectRef]*unstructured.Unstructured, w *work, now time.Time) time.Duration {
	if rp.written == nil || now.Sub(rp.writtenAt) > settle {
		return 0
	}
	for _, ref := range w.changed {
		if before, ok := rp.written[ref]; !ok || resourceVersion(live, ref) != before {
			return 0
		}
	}
	return time.Second
}

func resourceVersion(live map[plan.ObjectRef]*unstructured.Unstructured, ref plan.ObjectRef) string {
	if l := live[ref]; l != nil {
		return l.GetResourceVersion()
	}
	return ""
}

// allow applies the per-minute cap; it returns how long to wait when the
// cap is reached.
func (rp *repairer) allow(now time.Time) time.Duration {
	rp.window = slices.DeleteFunc(rp.window, func(t time.Time) bool { return now.Sub(t) >= time.Minute })
	if len(rp.window) >= rp.r.opts.MaxRepairsPerMinute {
		return rp.window[0].Add(time.Minute).Sub(now) + time.Second
	}
	rp.window = append(rp.window, now)
	return 0
}

// write checks the plan against the cluster as apply observes it (the
// operator's inventory included) under the guard's policy, deletes what
// someone else altered, then applies the plan.
func (rp *repairer) write(ctx context.Context, s *snapshot, w *work, live map[plan.ObjectRef]*unstructured.Unstructured, key string) error {
	r := rp.r
	_, observed, err := rp.applier.Observe(ctx, w.plan)
	if err != nil {
		return rp.failed(s, err)
	}
	if err := policy.CheckWith(w.plan, observed, policy.Options{NamespacedOnly: true}); err != nil {
		return rp.refusedPlan(s, key, err)
	}
	for _, obj := range w.deletes {
		if err := rp.applier.DeleteAltered(ctx, obj); err != nil {
			return rp.failed(s, err)
		}
		r.log.Info("deleted an altered grant to re-create it", "object", plan.RefOf(obj).String())
	}
	rp.written = map[plan.ObjectRef]string{}
	for _, c := range w.plan.Changes {
		rp.written[c.Ref()] = resourceVersion(live, c.Ref())
	}
	for _, obj := range w.deletes {
		rp.written[plan.RefOf(obj)] = ""
	}
	rp.writtenAt = s.now
	backup := apply.NewBackup(r.opts.BackupDir, w.plan, r.clients.Config.Host, time.Now)
	res, err := rp.applier.Apply(ctx, backup)
	switch {
	case errors.Is(err, policy.ErrRefused):
		return rp.refusedPlan(s, key, err)
	case err != nil:
		return rp.failed(s, err)
	}
	for _, c := range w.plan.Changes {
		rp.desired[c.Ref()] = c.Object
	}
	if res.NoOp {
		r.metrics.repairs.WithLabelValues(ResultNoOp).Inc()
		return nil
	}
	r.metrics.repairs.WithLabelValues(ResultApplied).Inc()
	r.log.Info("repaired", "changed", refs(w.changed), "backup", backup.Dir)
	rp.announce(s, w)
	pruneBackups(r.opts.BackupDir, r.opts.KeepBackups, r.log)
	return nil
}

func (rp *repairer) refusedPlan(s *snapshot, key string, err error) error {
	rp.refused[key] = true
	rp.r.metrics.repairs.WithLabelValues(ResultRefused).Inc()
	rp.r.log.Info("repair refused by policy", "reason", err.Error())
	rp.r.event(s.config, corev1.EventTypeWarning, ReasonRepairRefused, "Repair", err.Error())
	return nil
}

func (rp *repairer) failed(s *snapshot, err error) error {
	rp.r.metrics.repairs.WithLabelValues(ResultFailed).Inc()
	rp.r.event(s.config, corev1.EventTypeWarning, ReasonRepairFailed, "Repair", err.Error())
	return fmt.Errorf("repair: %w", err)
}

// announce records what the write did: DPFDoctorRepaired on each pod the
// plan answers, DPFDoctorRestored for objects put back.
func (rp *repairer) announce(s *snapshot, w *work) {
	r := rp.r
	changed := refs(w.changed)
	if w.built {
		for _, a := range w.plan.Addresses {
			answered := sets.New(a.Pods...)
			for _, p := range s.pods {
				if answered.Has(p.Name) {
					r.event(p, corev1.EventTypeNormal, ReasonRepaired, "Repair", fmt.Sprintf(
						"%s answered by %s (%s); the pod recovers at its next back-off retry", a.Code, changed, missingFor(a, p.Spec.NodeName)))
				}
			}
		}
		return
	}
	for _, ref := range w.changed {
		on := s.config
		if obj := rp.desired[ref]; ref.Namespace != "" && obj != nil {
			on = obj
		}
		r.event(on, corev1.EventTypeNormal, ReasonRestored, "Restore", fmt.Sprintf("dpfdoctor's grant %s was deleted or altered; restored", ref))
	}
}

// missingFor renders the permissions of a finding that concern one node:
// those naming one of its objects, by exact name (all when none does).
func missingFor(a plan.Addressed, node string) string {
	var all, mine []string
	for _, m := range a.Missing {
		all = append(all, m.String())
		if node == "" || forNode(m, node) {
			mine = append(mine, m.String())
		}
	}
	if len(mine) == 0 {
		mine = all
	}
	return strings.Join(mine, "; ")
}

// forNode reports whether a request names one of node's objects as the
// dms-init and host-agent call tables name them for the node.
func forNode(m access.Request, node string) bool {
	for _, v := range []dpf.ScriptVariant{dpf.ScriptB, dpf.ScriptF, dpf.ScriptHostAgent} {
		for _, c := range dpf.AllCalls(v) {
			r := c.Request(m.Namespace, node)
			if strings.Contains(c.Name, dpf.PatternNode) && r.Name == m.Name && r.Group == m.Group && r.Resource == m.Resource {
				return true
			}
		}
	}
	return false
}

func refs(rs []plan.ObjectRef) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.String()
	}
	return strings.Join(s, ", ")
}

// fixable reports whether a failing pod has a finding a grant answers.
func fixable(d *diagnose.Diagnosis) bool {
	return slices.ContainsFunc(d.Findings, func(f diagnose.Finding) bool { return f.Fixable && len(f.Missing) > 0 && len(f.Pods) > 0 })
}

// logWriter turns apply's step lines into log entries.
type logWriter struct{ log logr.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.V(1).Info(strings.TrimRight(string(p), "\n"), "step", "apply")
	return len(p), nil
}

// pruneBackups keeps the newest keep backup directories under root. Their
// names are UTC timestamps, and os.ReadDir sorts by name: oldest first.
func pruneBackups(root string, keep int, log logr.Logger) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	dirs := slices.DeleteFunc(entries, func(e os.DirEntry) bool { return !e.IsDir() })
	for _, d := range dirs[:max(len(dirs)-keep, 0)] {
		if err := os.RemoveAll(filepath.Join(root, d.Name())); err != nil {
			log.Info("could not remove an old backup", "dir", d.Name(), "error", err.Error())
		}
	}
}

// completeBindings gives every desired Role of dpfdoctor its RoleBinding
// when the binding was never seen (deleted before this replica started or
// took the lead): the binding is what rbac.Render makes for the Role, with
// the Role's metadata, bound to the DMS pods' ServiceAccount of that name.
func (rp *repairer) completeBindings(s *snapshot) {
	for ref, role := range rp.desired {
		if ref.Kind != "Role" {
			continue
		}
		rbRef := plan.ObjectRef{Group: rbacv1.GroupName, Kind: "RoleBinding", Namespace: ref.Namespace, Name: ref.Name}
		if _, ok := rp.desired[rbRef]; ok {
			continue
		}
		// The DMS pods' ServiceAccount whose dpfdoctor grant the Role is.
		i := slices.IndexFunc(s.pods, func(p *corev1.Pod) bool {
			return p.Spec.ServiceAccountName != "" && plan.NamePrefix+p.Spec.ServiceAccountName == ref.Name
		})
		if i < 0 {
			continue
		}
		sa := s.pods[i].Spec.ServiceAccountName
		u, err := toUnstructured("RoleBinding", &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: ref.Name, Namespace: ref.Namespace, Labels: role.GetLabels(),
				Annotations: role.GetAnnotations()},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: ref.Name},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ref.Namespace}},
		})
		if err != nil {
			continue
		}
		unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
		rp.desired[rbRef] = u
	}
}

// contentHash identifies a plan by its objects' content.
func contentHash(p *plan.Plan) string {
	data, _ := json.Marshal(p.Changes)
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])[:16]
}

func liveObjects(m evidence.RBAC) (map[plan.ObjectRef]*unstructured.Unstructured, error) {
	out := map[plan.ObjectRef]*unstructured.Unstructured{}
	var errs []error
	add := func(kind string, obj runtime.Object) {
		u, err := toUnstructured(kind, obj)
		if errs = append(errs, err); err == nil {
			out[plan.RefOf(u)] = u
		}
	}
	for i := range m.Roles {
		add("Role", &m.Roles[i])
	}
	for i := range m.RoleBindings {
		add("RoleBinding", &m.RoleBindings[i])
	}
	return out, errors.Join(errs...)
}

// toUnstructured converts a Role or RoleBinding, with its kind set
// (informers drop it).
func toUnstructured(kind string, obj runtime.Object) (*unstructured.Unstructured, error) {
	data, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("convert %s: %w", kind, err)
	}
	u := &unstructured.Unstructured{Object: data}
	u.SetAPIVersion(rbacv1.SchemeGroupVersion.String())
	u.SetKind(kind)
	return u, nil
}
