package apply

import (
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/dpfdoctor/dpfdoctor/internal/plan"
)

// gvr maps the RBAC kinds a plan may hold to their resources.
func gvr(ref plan.ObjectRef) (schema.GroupVersionResource, error) {
	res := map[string]string{"Role": "roles", "RoleBinding": "rolebindings", "ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings"}[ref.Kind]
	if ref.Group != rbacv1.GroupName || res == "" {
		return schema.GroupVersionResource{}, fmt.Errorf("%s is not an RBAC object dpfdoctor writes", ref)
	}
	return rbacv1.SchemeGroupVersion.WithResource(res), nil
}

// resource returns the dynamic client for an object's kind and namespace.
func resource(dyn dynamic.Interface, ref plan.ObjectRef) (dynamic.ResourceInterface, error) {
	g, err := gvr(ref)
	if err != nil {
		return nil, err
	}
	if ref.Namespace != "" {
		return dyn.Resource(g).Namespace(ref.Namespace), nil
	}
	return dyn.Resource(g), nil
}

// clean strips server-set fields so a backed-up object can be re-created.
func clean(u *unstructured.Unstructured) *unstructured.Unstructured {
	c := u.DeepCopy()
	c.SetResourceVersion("")
	c.SetUID("")
	c.SetCreationTimestamp(metav1Zero)
	c.SetManagedFields(nil)
	c.SetGeneration(0)
	unstructured.RemoveNestedField(c.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(c.Object, "status")
	return c
}

// get reads an object; found is false when it does not exist.
func get(ctx context.Context, dyn dynamic.Interface, ref plan.ObjectRef) (obj *unstructured.Unstructured, found bool, err error) {
	ri, err := resource(dyn, ref)
	if err != nil {
		return nil, false, err
	}
	obj, err = ri.Get(ctx, ref.Name, getOpts)
	if notFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return obj, true, nil
}

var secretsGVR = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
