package apply

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
	"github.com/dpfdoctor/dpfdoctor/internal/policy"
)

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
