package apply

import (
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
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

// content is what dpfdoctor compares between two versions of an object:
// its payload (rules, or roleRef and subjects), labels and annotations.
type content struct {
	Rules       []rbacv1.PolicyRule
	Aggregation *rbacv1.AggregationRule
	RoleRef     rbacv1.RoleRef
	Subjects    []rbacv1.Subject
	Labels      map[string]string
	Annotations map[string]string
}

func contentOf(u *unstructured.Unstructured) (content, error) {
	c := content{Labels: u.GetLabels(), Annotations: u.GetAnnotations()}
	var err error
	switch u.GetKind() {
	case "Role":
		var r rbacv1.Role
		err = runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &r)
		c.Rules = r.Rules
	case "ClusterRole":
		var r rbacv1.ClusterRole
		err = runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &r)
		c.Rules, c.Aggregation = r.Rules, r.AggregationRule
	case "RoleBinding":
		var b rbacv1.RoleBinding
		err = runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &b)
		c.RoleRef, c.Subjects = b.RoleRef, b.Subjects
	case "ClusterRoleBinding":
		var b rbacv1.ClusterRoleBinding
		err = runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &b)
		c.RoleRef, c.Subjects = b.RoleRef, b.Subjects
	default:
		err = fmt.Errorf("unexpected kind %q", u.GetKind())
	}
	if err != nil {
		return content{}, fmt.Errorf("read %s: %w", plan.RefOf(u), err)
	}
	return c, nil
}

// covers reports whether live already holds everything desired sets: the
// same payload, and desired's labels and annotations among live's.
func covers(live, desired *unstructured.Unstructured) (bool, error) {
	l, err := contentOf(live)
	if err != nil {
		return false, err
	}
	d, err := contentOf(desired)
	if err != nil {
		return false, err
	}
	return samePayload(l, d) && subset(d.Labels, l.Labels) && subset(d.Annotations, l.Annotations), nil
}

// identical reports whether live is exactly like a backed-up version.
func identical(live, backup *unstructured.Unstructured) (bool, error) {
	l, err := contentOf(live)
	if err != nil {
		return false, err
	}
	b, err := contentOf(backup)
	if err != nil {
		return false, err
	}
	return samePayload(l, b) && subset(l.Labels, b.Labels) && subset(b.Labels, l.Labels) &&
		subset(l.Annotations, b.Annotations) && subset(b.Annotations, l.Annotations), nil
}

func samePayload(a, b content) bool {
	return equality.Semantic.DeepEqual(normRules(a.Rules), normRules(b.Rules)) &&
		equality.Semantic.DeepEqual(a.Aggregation, b.Aggregation) &&
		a.RoleRef == b.RoleRef && equality.Semantic.DeepEqual(normSubjects(a.Subjects), normSubjects(b.Subjects))
}

func normRules(rs []rbacv1.PolicyRule) []rbacv1.PolicyRule {
	if len(rs) == 0 {
		return nil
	}
	out := make([]rbacv1.PolicyRule, len(rs))
	for i, r := range rs {
		out[i] = rbacv1.PolicyRule{Verbs: nilIfEmpty(r.Verbs), APIGroups: nilIfEmpty(r.APIGroups), Resources: nilIfEmpty(r.Resources),
			ResourceNames: nilIfEmpty(r.ResourceNames), NonResourceURLs: nilIfEmpty(r.NonResourceURLs)}
	}
	return out
}

func normSubjects(ss []rbacv1.Subject) []rbacv1.Subject {
	if len(ss) == 0 {
		return nil
	}
	return ss
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func subset(small, big map[string]string) bool {
	for k, v := range small {
		if bv, ok := big[k]; !ok || bv != v {
			return false
		}
	}
	return true
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
