package apply

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/yaml"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
)

// Loaded is a validated backup.
type Loaded struct {
	Dir      string
	Manifest Manifest
	Receipt  Receipt
	Plan     *plan.Plan
	// Pre holds the pre-state of each target that existed.
	Pre map[plan.ObjectRef]*unstructured.Unstructured
}

// Load reads and validates a backup directory. Anything missing, altered
// or naming objects dpfdoctor does not manage yields ErrBadBackup.
func Load(dir string) (*Loaded, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w %s: %s", ErrBadBackup, dir, fmt.Sprintf(format, a...))
	}
	l := &Loaded{Dir: dir, Pre: map[plan.ObjectRef]*unstructured.Unstructured{}}
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, bad("%v", err)
	}
	if err := json.Unmarshal(data, &l.Manifest); err != nil {
		return nil, bad("%s: %v", ManifestFile, err)
	}
	if l.Manifest.SchemaVersion != backupSchema {
		return nil, bad("%s: schema %q, want %q", ManifestFile, l.Manifest.SchemaVersion, backupSchema)
	}
	planYAML, err := os.ReadFile(filepath.Join(dir, PlanFile))
	if err != nil {
		return nil, bad("%v", err)
	}
	if sum(planYAML) != l.Manifest.PlanSHA256 {
		return nil, bad("%s was changed after the backup was taken", PlanFile)
	}
	l.Plan = &plan.Plan{}
	if err := yaml.Unmarshal(planYAML, l.Plan); err != nil {
		return nil, bad("%s: %v", PlanFile, err)
	}
	for _, e := range l.Manifest.Objects {
		if _, err := gvr(e.Ref); err != nil || !strings.HasPrefix(e.Ref.Name, plan.NamePrefix) {
			return nil, bad("%s is not an object dpfdoctor manages", e.Ref)
		}
		if !e.Existed {
			continue
		}
		if filepath.IsAbs(e.File) || strings.Contains(e.File, "..") {
			return nil, bad("pre-state path %q leaves the backup", e.File)
		}
		data, err := os.ReadFile(filepath.Join(dir, e.File))
		if err != nil {
			return nil, bad("%v", err)
		}
		if sum(data) != e.SHA256 {
			return nil, bad("%s was changed after the backup was taken", e.File)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil {
			return nil, bad("%s: %v", e.File, err)
		}
		if plan.RefOf(u) != e.Ref || u.GetLabels()[plan.ManagedByLabel] != plan.ManagedByValue {
			return nil, bad("%s does not hold a dpfdoctor-managed %s", e.File, e.Ref)
		}
		l.Pre[e.Ref] = u
	}
	data, err = os.ReadFile(filepath.Join(dir, ReceiptFile))
	if err != nil {
		return nil, bad("%v", err)
	}
	if err := json.Unmarshal(data, &l.Receipt); err != nil {
		return nil, bad("%s: %v", ReceiptFile, err)
	}
	for _, a := range l.Receipt.Annotations {
		if _, err := annotationGVR(a.Ref); err != nil || !strings.HasPrefix(a.Key, plan.AnnotationPrefix) {
			return nil, bad("annotation %s on %s is not one dpfdoctor sets", a.Key, a.Ref)
		}
	}
	return l, nil
}

// annotationGVR maps the kinds dpfdoctor annotates (Nodes and the
// DPFOperatorConfig) to their resources.
func annotationGVR(ref plan.ObjectRef) (schema.GroupVersionResource, error) {
	if (ref.Kind == "Node" && ref.Group == "") || (ref.Kind == "DPFOperatorConfig" && ref.Group == dpf.GroupOperator) {
		return dpf.GVR(ref.Group, ref.Kind)
	}
	return schema.GroupVersionResource{}, fmt.Errorf("dpfdoctor does not annotate %s", ref)
}

// RollbackResult is what a rollback did.
type RollbackResult struct {
	Dir string
	// Already is true when nothing needed undoing.
	Already     bool
	Deleted     []plan.ObjectRef
	Restored    []plan.ObjectRef
	Annotations []AnnotationChange
	// Left lists what was left alone because someone changed it since.
	Left []string
}

// Rollback restores the state a backup recorded: it removes the
// annotations dpfdoctor set (or restores their previous values), deletes
// the objects that were absent and restores those that existed. It only
// ever touches dpfdoctor-managed RBAC objects and dpfdoctor.dev/
// annotations. Running it again changes nothing and reports Already.
func (a *Applier) Rollback(ctx context.Context, dir string) (RollbackResult, error) {
	return a.rollback(ctx, dir, nil)
}

// rollback is Rollback; wrote, when not nil, is the plan as the apply wrote
// it (objects merged with dpfdoctor's other writer replace the planned
// ones), for the rollback of a half-written apply.
func (a *Applier) rollback(ctx context.Context, dir string, wrote *plan.Plan) (RollbackResult, error) {
	l, err := Load(dir)
	if err != nil {
		return RollbackResult{Dir: dir}, err
	}
	if wrote != nil {
		l.Plan = wrote
	}
	res := RollbackResult{Dir: dir}
	for _, c := range slices.Backward(l.Receipt.Annotations) {
		done, left, err := a.undoAnnotation(ctx, c)
		if err != nil {
			return res, a.rollbackErr(l, err)
		}
		if done {
			res.Annotations = append(res.Annotations, c)
		}
		if left != "" {
			res.Left = append(res.Left, left)
		}
	}
	later := laterFixes(l)
	for _, e := range slices.Backward(l.Manifest.Objects) {
		var (
			changed bool
			left    string
		)
		if d, ok := later[e.Ref]; ok {
			res.Left = append(res.Left, fmt.Sprintf("%s is also part of a later fix that is not rolled back; left alone: roll that back first (dpfdoctor rollback --backup %s)", e.Ref, d))
			continue
		}
		written := l.written(e.Ref)
		err := a.retry(ctx, func() error {
			var err error
			if e.Existed {
				changed, left, err = a.restore(ctx, l.Pre[e.Ref], written)
			} else {
				changed, left, err = a.remove(ctx, e.Ref, written)
			}
			return err
		})
		if err != nil {
			return res, a.rollbackErr(l, fmt.Errorf("%s: %w", e.Ref, err))
		}
		switch {
		case changed && e.Existed:
			res.Restored = append(res.Restored, e.Ref)
			a.logf("restored %s", e.Ref)
		case changed:
			res.Deleted = append(res.Deleted, e.Ref)
			a.logf("deleted %s", e.Ref)
		}
		if left != "" {
			res.Left = append(res.Left, left)
		}
	}
	res.Already = len(res.Deleted)+len(res.Restored)+len(res.Annotations) == 0
	status := StatusRolledBack
	if l.Receipt.Status == StatusFailedRolledBack || l.Receipt.Status == StatusApplying || l.Receipt.Status == StatusRollbackFailed {
		status = StatusFailedRolledBack
	}
	l.Receipt.Status = status
	l.Receipt.UpdatedAt = time.Now().UTC().Format(time.RFC3339)
	return res, saveReceipt(dir, l.Receipt)
}

func (a *Applier) rollbackErr(l *Loaded, err error) error {
	err = kube.Classify(err)
	l.Receipt.Status = StatusRollbackFailed
	_ = saveReceipt(l.Dir, l.Receipt)
	return fmt.Errorf("roll back %s: %w", l.Dir, err)
}

// laterFixes maps each object that a later fix in the same backup root, on
// the same API server and still applied, wrote or relied on unchanged, to
// that fix's backup directory (the newest). Undoing it here would undo
// part of that fix too.
func laterFixes(l *Loaded) map[plan.ObjectRef]string {
	root, self := filepath.Dir(l.Dir), filepath.Base(l.Dir)
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	out := map[plan.ObjectRef]string{}
	slices.SortFunc(entries, func(a, b os.DirEntry) int { return compareBackupNames(a.Name(), b.Name()) })
	for _, e := range entries {
		if !e.IsDir() || compareBackupNames(e.Name(), self) <= 0 {
			continue
		}
		o, err := Load(filepath.Join(root, e.Name()))
		if err != nil || o.Manifest.Server != l.Manifest.Server || o.Receipt.Status != StatusApplied {
			continue
		}
		for _, ap := range o.Receipt.Applied {
			out[ap.Ref] = o.Dir
		}
	}
	return out
}

// written is what the fix wrote to ref: the plan's object.
func (l *Loaded) written(ref plan.ObjectRef) *unstructured.Unstructured {
	for _, c := range l.Plan.Changes {
		if c.Ref() == ref {
			return c.Object
		}
	}
	return nil
}

// changedSince says why live is no longer what the fix wrote, "" when it
// is: someone else (a later fix, a person, a GitOps tool) changed it, and
// rollback leaves it alone.
func changedSince(ref plan.ObjectRef, live, written *unstructured.Unstructured) (string, error) {
	if live.GetLabels()[plan.ManagedByLabel] != plan.ManagedByValue {
		return fmt.Sprintf("%s is no longer labelled %s=%s; left alone", ref, plan.ManagedByLabel, plan.ManagedByValue), nil
	}
	if written == nil {
		return "", nil
	}
	same, err := plan.Covers(live, written)
	if err != nil || same {
		return "", err
	}
	return fmt.Sprintf("%s was changed since this fix wrote it (by a later fix, the guard, or by hand); left alone: roll back later fixes first, newest first", ref), nil
}

// remove deletes an object the apply created, unless it changed since.
func (a *Applier) remove(ctx context.Context, ref plan.ObjectRef, written *unstructured.Unstructured) (changed bool, left string, err error) {
	live, found, err := get(ctx, a.Clients.Dynamic, ref)
	if err != nil || !found {
		return false, "", err
	}
	if left, err := changedSince(ref, live, written); left != "" || err != nil {
		return false, left, err
	}
	ri, _ := resource(a.Clients.Dynamic, ref)
	err = ri.Delete(ctx, ref.Name, metav1.DeleteOptions{Preconditions: metav1.NewUIDPreconditions(string(live.GetUID()))})
	if apierrors.IsNotFound(err) {
		return false, "", nil
	}
	return err == nil, "", err
}

// restore puts a backed-up object back as it was, unless it changed since
// the fix wrote it; one deleted since is left deleted.
func (a *Applier) restore(ctx context.Context, backup, written *unstructured.Unstructured) (bool, string, error) {
	ref := plan.RefOf(backup)
	ri, err := resource(a.Clients.Dynamic, ref)
	if err != nil {
		return false, "", err
	}
	live, found, err := get(ctx, a.Clients.Dynamic, ref)
	if err != nil {
		return false, "", err
	}
	if !found {
		return false, fmt.Sprintf("%s was deleted since this fix; left deleted (its earlier state is in the backup)", ref), nil
	}
	same, err := plan.Identical(live, backup)
	if err != nil || same {
		return false, "", err
	}
	if left, err := changedSince(ref, live, written); left != "" || err != nil {
		return false, left, err
	}
	want := plan.Clean(backup)
	if lr, br := live.Object["roleRef"], want.Object["roleRef"]; lr != nil && !equality.Semantic.DeepEqual(lr, br) {
		// roleRef is immutable: replace the binding, re-created by
		// server-side apply, not POST: the API server authorizes that create
		// with the object's name, so a writer whose RBAC names its objects
		// (the guard) may do it too.
		if err := ri.Delete(ctx, ref.Name, metav1.DeleteOptions{Preconditions: metav1.NewUIDPreconditions(string(live.GetUID()))}); err != nil && !apierrors.IsNotFound(err) {
			return false, "", err
		}
		_, err := ri.Apply(ctx, ref.Name, want, metav1.ApplyOptions{FieldManager: cmp.Or(a.FieldManager, plan.FieldManager)})
		return err == nil, "", err
	}
	want.SetResourceVersion(live.GetResourceVersion())
	_, err = ri.Update(ctx, want, metav1.UpdateOptions{FieldManager: plan.FieldManager})
	return err == nil, "", err
}

// undoAnnotation restores one annotation dpfdoctor set, unless someone has
// changed it since.
func (a *Applier) undoAnnotation(ctx context.Context, c AnnotationChange) (done bool, left string, err error) {
	g, err := annotationGVR(c.Ref)
	if err != nil {
		return false, "", err
	}
	err = a.retry(ctx, func() error {
		done, left = false, ""
		m, err := a.Clients.Metadata.Resource(g).Namespace(c.Ref.Namespace).Get(ctx, c.Ref.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		cur, has := m.Annotations[c.Key]
		switch {
		case c.Previous == nil && !has, c.Previous != nil && has && cur == *c.Previous:
			return nil // already as before
		case !has || cur != c.Value:
			left = fmt.Sprintf("annotation %s on %s was changed since dpfdoctor set it; left alone", c.Key, c.Ref)
			return nil
		}
		err = annotate(ctx, a.Clients.Dynamic, g, c.Ref, c.Key, c.Previous)
		done = err == nil
		return err
	})
	if done {
		a.logf("removed annotation %s from %s", c.Key, c.Ref)
	}
	return done, left, err
}

// retry runs fn until it succeeds, fails for good, or the attempts run out
// (Retries, default 5), waiting Backoff (default 200 ms) and doubling.
func (a *Applier) retry(ctx context.Context, fn func() error) error {
	b := wait.Backoff{Steps: a.Retries, Duration: a.Backoff, Factor: 2}
	if b.Steps <= 0 {
		b.Steps = 5
	}
	if b.Duration <= 0 {
		b.Duration = 200 * time.Millisecond
	}
	return retry.OnError(b, func(err error) bool { return ctx.Err() == nil && transient(err) }, fn)
}

func transient(err error) bool {
	return errors.Is(kube.Classify(err), kube.ErrUnreachable) || apierrors.IsConflict(err) || apierrors.IsServerTimeout(err) ||
		apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) || apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err)
}
