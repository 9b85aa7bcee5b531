package guard

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/dpfdoctor/dpfdoctor/internal/apply"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
)

// The grant: dpfdoctor's Roles and RoleBindings as the guard reads,
// compares and remembers them.

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
		sa := podServiceAccount(s, ref.Name)
		if sa == "" {
			continue
		}
		rb := &rbacv1.RoleBinding{
			TypeMeta: metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "RoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: ref.Name, Namespace: ref.Namespace, Labels: role.GetLabels(),
				Annotations: role.GetAnnotations()},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: ref.Name},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ref.Namespace}},
		}
		data, err := runtime.DefaultUnstructuredConverter.ToUnstructured(rb)
		if err != nil {
			continue
		}
		u := &unstructured.Unstructured{Object: data}
		unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
		rp.desired[rbRef] = u
	}
}

// podServiceAccount is the DMS pods' ServiceAccount whose dpfdoctor grant
// is named name, or "".
func podServiceAccount(s *snapshot, name string) string {
	for i := range s.pods {
		sa := s.pods[i].Spec.ServiceAccountName
		if sa != "" && plan.NamePrefix+sa == name {
			return sa
		}
	}
	return ""
}

// contentHash identifies a plan by its objects' content.
func contentHash(p *plan.Plan) string {
	data, _ := json.Marshal(p.Changes)
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])[:16]
}

// liveObjects turns the cached RBAC objects into unstructured objects with
// their kind set (informers drop it).
func liveObjects(m managedRBAC) (map[plan.ObjectRef]*unstructured.Unstructured, error) {
	out := map[plan.ObjectRef]*unstructured.Unstructured{}
	add := func(kind string, obj runtime.Object) error {
		data, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return fmt.Errorf("convert %s: %w", kind, err)
		}
		u := &unstructured.Unstructured{Object: data}
		u.SetAPIVersion(rbacv1.SchemeGroupVersion.String())
		u.SetKind(kind)
		out[plan.RefOf(u)] = u
		return nil
	}
	for i := range m.roles {
		if err := add("Role", &m.roles[i]); err != nil {
			return nil, err
		}
	}
	for i := range m.roleBindings {
		if err := add("RoleBinding", &m.roleBindings[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// foreign reports whether a field manager other than dpfdoctor's (fix's or
// the guard's) owns the object's payload: someone else changed it.
func foreign(obj *unstructured.Unstructured) bool { return apply.AlteredByOthers(obj) }

// covers reports whether live holds what want sets.
func covers(live, want *unstructured.Unstructured) bool {
	ok, err := plan.Covers(live, want)
	return err == nil && ok
}
