package plan

import (
	"fmt"
	"maps"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
)

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
	obj, err := typed(u)
	switch o := obj.(type) {
	case *rbacv1.Role:
		c.Rules = o.Rules
	case *rbacv1.ClusterRole:
		c.Rules, c.Aggregation = o.Rules, o.AggregationRule
	case *rbacv1.RoleBinding:
		c.RoleRef, c.Subjects = o.RoleRef, o.Subjects
	case *rbacv1.ClusterRoleBinding:
		c.RoleRef, c.Subjects = o.RoleRef, o.Subjects
	}
	return c, err
}

// typed converts one of the four RBAC kinds to its typed object.
func typed(u *unstructured.Unstructured) (runtime.Object, error) {
	obj, ok := rbac.NewObject(u.GetKind())
	if !ok {
		return nil, fmt.Errorf("read %s: unexpected kind %q", RefOf(u), u.GetKind())
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, obj); err != nil {
		return nil, fmt.Errorf("read %s: %w", RefOf(u), err)
	}
	return obj, nil
}

// Covers reports whether live already holds everything desired sets: the
// same payload, and desired's labels and annotations among live's.
func Covers(live, desired *unstructured.Unstructured) (bool, error) {
	return compare(live, desired, subset)
}

// Identical reports whether live is exactly like a backed-up version.
func Identical(live, backup *unstructured.Unstructured) (bool, error) {
	return compare(live, backup, maps.Equal[map[string]string])
}

// compare compares payloads, and labels and annotations with meta.
func compare(live, other *unstructured.Unstructured, meta func(other, live map[string]string) bool) (bool, error) {
	l, err := contentOf(live)
	if err != nil {
		return false, err
	}
	o, err := contentOf(other)
	if err != nil {
		return false, err
	}
	return samePayload(l, o) && meta(o.Labels, l.Labels) && meta(o.Annotations, l.Annotations), nil
}

// samePayload compares what an object grants or binds; Semantic.DeepEqual
// counts nil and empty lists as equal.
func samePayload(a, b content) bool {
	return SameRules(a.Rules, b.Rules) && equality.Semantic.DeepEqual(a.Aggregation, b.Aggregation) &&
		a.RoleRef == b.RoleRef && equality.Semantic.DeepEqual(a.Subjects, b.Subjects)
}

// SameRules reports whether two rule lists grant the same, rule by rule.
func SameRules(a, b []rbacv1.PolicyRule) bool { return equality.Semantic.DeepEqual(a, b) }

func subset(small, big map[string]string) bool {
	for k, v := range small {
		if bv, ok := big[k]; !ok || bv != v {
			return false
		}
	}
	return true
}
