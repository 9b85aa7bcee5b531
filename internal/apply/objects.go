package apply

import (
	"context"
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
)

// gvr maps the RBAC kinds a plan may hold to their resources.
func gvr(ref plan.ObjectRef) (schema.GroupVersionResource, error) {
	if ref.Group != dpf.GroupRBAC {
		return schema.GroupVersionResource{}, fmt.Errorf("%s is not an RBAC object dpfdoctor writes", ref)
	}
	g, err := dpf.GVR(ref.Group, ref.Kind)
	if err != nil {
		return g, fmt.Errorf("%s is not an RBAC object dpfdoctor writes: %w", ref, err)
	}
	return g, nil
}

// resource returns the dynamic client for an object's kind and namespace.
func resource(dyn dynamic.Interface, ref plan.ObjectRef) (dynamic.ResourceInterface, error) {
	g, err := gvr(ref)
	if err != nil {
		return nil, err
	}
	return kube.Resource(dyn, g, ref.Namespace), nil
}

// get reads an object; found is false when it does not exist.
func get(ctx context.Context, dyn dynamic.Interface, ref plan.ObjectRef) (obj *unstructured.Unstructured, found bool, err error) {
	ri, err := resource(dyn, ref)
	if err != nil {
		return nil, false, err
	}
	obj, err = ri.Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, false, nil
	}
	return obj, err == nil, err
}

// annotate merge-patches one annotation on an object (value nil removes
// it), as field manager "dpfdoctor".
func annotate(ctx context.Context, dyn dynamic.Interface, g schema.GroupVersionResource, ref plan.ObjectRef, key string, value *string) error {
	var v any // nil removes the key
	if value != nil {
		v = *value
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{key: v}}})
	if err != nil {
		return err
	}
	_, err = kube.Resource(dyn, g, ref.Namespace).Patch(ctx, ref.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: plan.FieldManager})
	return err
}
