package apply

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/dpfdoctor/dpfdoctor/internal/plan"
	"github.com/dpfdoctor/dpfdoctor/internal/policy"
)

// GuardFieldManager is the field manager the guard applies as; `fix`
// applies as plan.FieldManager. Both are dpfdoctor's.
const GuardFieldManager = "dpfdoctor-guard"

// ours reports whether a field manager is one of dpfdoctor's writers.
func ours(manager string) bool { return manager == plan.FieldManager || manager == GuardFieldManager }

// AlteredByOthers reports whether a field manager other than dpfdoctor's
// owns the rules, subjects or roleRef of obj: someone else changed what it
// grants.
func AlteredByOthers(obj *unstructured.Unstructured) bool {
	for _, mf := range obj.GetManagedFields() {
		if ours(mf.Manager) || mf.FieldsV1 == nil {
			continue
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(mf.FieldsV1.GetRawBytes(), &fields); err != nil {
			return true
		}
		for _, f := range []string{"f:rules", "f:subjects", "f:roleRef", "f:aggregationRule"} {
			if _, ok := fields[f]; ok {
				return true
			}
		}
	}
	return false
}

// mergeOurs resolves a server-side apply conflict between dpfdoctor's own
// writers: `fix --apply` and the guard writing the same grant at once, as
// distinct field managers. Rules are an atomic list, so either side's apply
// conflicts with the other's. When only dpfdoctor's managers own the live
// object's grant, mergeOurs returns p's change i with the live object's
// grants and answers added (plan.Merged), for the caller to apply with force: neither
// side loses the other's names. The merged plan passes the policy again.
// Anyone else's change stays a conflict (nil).
func (a *Applier) mergeOurs(ctx context.Context, p *plan.Plan, i int) (*unstructured.Unstructured, error) {
	want := p.Changes[i].Object
	live, found, err := get(ctx, a.Clients.Dynamic, plan.RefOf(want))
	if err != nil || !found || AlteredByOthers(live) {
		return nil, err
	}
	var merged *unstructured.Unstructured
	switch want.GetKind() {
	case "Role", "ClusterRole":
		if merged, err = plan.Merged(p, want, live); err != nil {
			return nil, err
		}
	default: // a binding: the same subject and role; the answers of both
		merged = want.DeepCopy()
		var all []string
		for _, u := range []*unstructured.Unstructured{want, live} {
			all = append(all, strings.Split(u.GetAnnotations()[plan.AnswersAnnotation], "; ")...)
		}
		slices.Sort(all)
		if all = slices.DeleteFunc(slices.Compact(all), func(s string) bool { return s == "" }); len(all) > 0 {
			anns := merged.GetAnnotations()
			if anns == nil {
				anns = map[string]string{}
			}
			anns[plan.AnswersAnnotation] = strings.Join(all, "; ")
			merged.SetAnnotations(anns)
		}
	}
	q := *p
	q.Changes = slices.Clone(p.Changes)
	q.Changes[i].Object = merged
	if err := policy.Check(&q, policy.Observed{}); err != nil {
		return nil, err
	}
	return merged, nil
}

// conflictErr is the error of a conflict mergeOurs could not resolve.
func conflictErr(err error) error {
	if apierrors.IsConflict(err) {
		return fmt.Errorf("another field manager owns fields dpfdoctor would set (resolve by hand; dpfdoctor does not force): %w", err)
	}
	return err
}
