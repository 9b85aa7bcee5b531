// Package apply writes a fix plan to the cluster and takes it back: it
// checks the user's rights, asks the policy, backs up every target (or
// records its absence) with the plan, server-side dry-runs, then
// server-side applies as field manager "dpfdoctor". A failure midway rolls
// back what was written. Rollback restores a backup exactly and is
// idempotent.
package apply

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
	"github.com/dpfdoctor/dpfdoctor/internal/policy"
)

// ErrApplyFailed wraps a failure while writing; the message says whether
// what was written has been rolled back.
var ErrApplyFailed = errors.New("apply failed")

// Applier writes plans and rolls them back.
type Applier struct {
	Clients *kube.Clients
	Log     io.Writer // receives one line per step; nil discards
	// Retries is how often a rollback step is retried on a transient
	// error (default 5), with Backoff doubling from 200 ms.
	Retries int
	Backoff time.Duration
	// BeforeWrite, when set, runs once the backup is written and before
	// the first write; an error stops the apply with nothing written.
	BeforeWrite func(context.Context) error
	// FieldManager is the field manager Apply writes as (default
	// plan.FieldManager; the guard's is GuardFieldManager).
	FieldManager string
}

func (a *Applier) logf(format string, args ...any) {
	if a.Log != nil {
		fmt.Fprintf(a.Log, format+"\n", args...)
	}
}

// Result is what Apply did.
type Result struct {
	NoOp    bool // true when every object was already in place
	Applied []Applied
}

// Count returns how many objects were created or updated.
func (r Result) Count() int {
	n := 0
	for _, a := range r.Applied {
		if a.Action != ActionUnchanged {
			n++
		}
	}
	return n
}

// Apply writes b's plan. The caller has checked the user's rights
// (CheckRights). Apply reads each target and the operator's inventory, asks
// the policy, and when something is to change backs up every target into
// b, dry-runs and applies. On an error midway it rolls back what it wrote
// and returns an error wrapping ErrApplyFailed and the cause's kube
// sentinel.
func (a *Applier) Apply(ctx context.Context, b *Backup) (Result, error) {
	p := b.plan
	pre, observed, err := a.Observe(ctx, p)
	if err != nil {
		return Result{}, err
	}
	if err := policy.Check(p, observed); err != nil {
		return Result{}, err
	}
	b.mu.Lock()
	b.pre = pre
	b.mu.Unlock()

	var res Result
	var todo []int // the changes to write, by index in p.Changes and res.Applied
	for i, c := range p.Changes {
		ref := c.Ref()
		action := ActionCreated
		if live := pre[ref]; live != nil {
			same, err := plan.Covers(live, c.Object)
			if err != nil {
				return Result{}, err
			}
			action = ActionUpdated
			if same {
				action = ActionUnchanged
			}
		}
		res.Applied = append(res.Applied, Applied{Ref: ref, Action: action})
		if action != ActionUnchanged {
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		res.NoOp = true
		a.logf("nothing to do: all %d objects are already in place", len(p.Changes))
		return res, nil
	}
	// A server-side dry run catches validation, admission and escalation
	// refusals before anything is written.
	for _, i := range todo {
		if err := a.ssa(ctx, p, i, true); err != nil {
			return Result{}, fmt.Errorf("dry run %s: %w", res.Applied[i].Ref, kube.Classify(err))
		}
	}
	b.mu.Lock()
	err = b.create(pre)
	b.mu.Unlock()
	if err != nil {
		return Result{}, err
	}
	a.logf("backup: %s", b.Dir)
	if err := b.setStatus(StatusApplying, ""); err != nil {
		return Result{}, err
	}
	if a.BeforeWrite != nil {
		if err := a.BeforeWrite(ctx); err != nil {
			_ = b.setStatus(StatusFailedRolledBack, err.Error())
			return Result{}, err
		}
	}
	for _, ap := range res.Applied {
		if ap.Action == ActionUnchanged {
			if err := b.update(func(r *Receipt) { r.Applied = append(r.Applied, ap) }); err != nil {
				return Result{}, err
			}
		}
	}
	for _, i := range todo {
		ap := res.Applied[i]
		if err := a.ssa(ctx, p, i, false); err != nil {
			return res, a.failed(ctx, b, ap.Ref, err)
		}
		if err := b.update(func(r *Receipt) { r.Applied = append(r.Applied, ap) }); err != nil {
			return res, a.failed(ctx, b, ap.Ref, err)
		}
		a.logf("%s %s", ap.Action, ap.Ref)
	}
	return res, b.setStatus(StatusApplied, "")
}

// failed rolls back after a write failed and returns the error to report.
func (a *Applier) failed(ctx context.Context, b *Backup, ref plan.ObjectRef, cause error) error {
	cause = kube.Classify(cause)
	a.logf("apply %s failed: %v; rolling back", ref, cause)
	// The caller's context may be what failed; the rollback gets its own.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	res, rbErr := a.rollback(rctx, b.Dir, b.plan)
	if rbErr == nil && len(res.Left) > 0 {
		rbErr = fmt.Errorf("it left %s", strings.Join(res.Left, "; "))
	}
	if rbErr != nil {
		_ = b.setStatus(StatusRollbackFailed, cause.Error())
		return fmt.Errorf("%w: %s: %w; the rollback did not complete either (%v): run `dpfdoctor rollback --backup %s`",
			ErrApplyFailed, ref, cause, rbErr, b.Dir)
	}
	_ = b.setStatus(StatusFailedRolledBack, cause.Error())
	return fmt.Errorf("%w: %s: %w; everything written was rolled back (backup %s)", ErrApplyFailed, ref, cause, b.Dir)
}

// ssa server-side applies p's change i as a.FieldManager, without forcing:
// a field someone else owns is a conflict to report, not to take. Only a
// conflict with dpfdoctor's other writer is resolved, by merging (mergeOurs);
// the merged object then replaces the change's object in p.
func (a *Applier) ssa(ctx context.Context, p *plan.Plan, i int, dryRun bool) error {
	obj := p.Changes[i].Object
	ri, err := resource(a.Clients.Dynamic, plan.RefOf(obj))
	if err != nil {
		return err
	}
	opts := metav1.ApplyOptions{FieldManager: cmp.Or(a.FieldManager, plan.FieldManager)}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	for try := 0; ; try++ {
		_, err = ri.Apply(ctx, obj.GetName(), obj, opts)
		if !apierrors.IsConflict(err) || try == 3 {
			return conflictErr(err)
		}
		merged, merr := a.mergeOurs(ctx, p, i)
		if merr != nil || merged == nil {
			return errors.Join(conflictErr(err), merr)
		}
		a.logf("%s: merged with what dpfdoctor's other writer granted meanwhile", plan.RefOf(obj))
		obj, opts.Force = merged, true
		if !dryRun {
			p.Changes[i].Object = merged // what is written, for verify and the report
		}
	}
}

// Observe reads what the policy decides on: each target as it is now (nil
// when absent) and the operator's applyset inventory, from the metadata of
// its parent Secret (listed by name through the metadata API: never the
// Secret's data). An absent or unreadable parent leaves the check to the
// part-of label on existing objects.
func (a *Applier) Observe(ctx context.Context, p *plan.Plan) (map[plan.ObjectRef]*unstructured.Unstructured, policy.Observed, error) {
	pre := map[plan.ObjectRef]*unstructured.Unstructured{}
	observed := policy.Observed{Existing: map[plan.ObjectRef]map[string]string{}}
	for _, c := range p.Changes {
		ref := c.Ref()
		live, found, err := get(ctx, a.Clients.Dynamic, ref)
		if err != nil {
			return nil, observed, fmt.Errorf("read %s: %w", ref, kube.Classify(err))
		}
		if pre[ref] = live; found {
			observed.Existing[ref] = live.GetLabels()
		}
	}
	if len(p.Changes) == 0 {
		return pre, observed, nil
	}
	parent := dpf.ApplySetParentName(dpf.ProvisioningComponent)
	list, err := a.Clients.Metadata.Resource(dpf.MustGVR("", "Secret")).Namespace(p.Namespace).List(ctx,
		metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", parent).String()})
	switch {
	case apierrors.IsForbidden(err):
		a.logf("note: the applyset parent Secret %s/%s is not readable (%v); relying on the %s label", p.Namespace, parent, reasonOf(err), dpf.ApplySetPartOfLabel)
		return pre, observed, nil
	case err != nil:
		return nil, observed, fmt.Errorf("read the operator's applyset: %w", kube.Classify(err))
	case len(list.Items) == 0:
		a.logf("note: no applyset parent Secret %s/%s; relying on the %s label", p.Namespace, parent, dpf.ApplySetPartOfLabel)
		return pre, observed, nil
	}
	inv, perr := policy.ParseInventory(list.Items[0].GetAnnotations()[dpf.ApplySetInventoryAnnotation])
	if perr != nil {
		a.logf("note: %v", perr)
	}
	observed.Inventory = inv
	return pre, observed, nil
}

// DeleteAltered deletes one of dpfdoctor's objects that another field
// manager altered, so that Apply re-creates it: apply never forces a field
// someone else owns. Only an object labelled managed-by dpfdoctor with
// dpfdoctor's name prefix is deleted, and only in the version given (UID
// and resourceVersion preconditions); one already gone is no error.
func (a *Applier) DeleteAltered(ctx context.Context, obj *unstructured.Unstructured) error {
	ref := plan.RefOf(obj)
	if obj.GetLabels()[plan.ManagedByLabel] != plan.ManagedByValue || !strings.HasPrefix(ref.Name, plan.NamePrefix) {
		return fmt.Errorf("%w: %s is not dpfdoctor's", policy.ErrRefused, ref)
	}
	ri, err := resource(a.Clients.Dynamic, ref)
	if err != nil {
		return err
	}
	uid, rv := obj.GetUID(), obj.GetResourceVersion()
	err = ri.Delete(ctx, ref.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete altered %s: %w", ref, kube.Classify(err))
	}
	return nil
}

func reasonOf(err error) string {
	if r := apierrors.ReasonForError(err); r != metav1.StatusReasonUnknown {
		return string(r)
	}
	return err.Error()
}
