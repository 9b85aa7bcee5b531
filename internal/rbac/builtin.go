package rbac

import (
	"sync"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// builtins is builtinSet, built once; it is never modified.
var builtins = sync.OnceValue(builtinSet)

// builtinSet is the part of the API server's bootstrap policy
// (plugin/pkg/auth/authorizer/rbac/bootstrappolicy) that every
// authenticated subject gets: discovery, version and health endpoints, and
// self access reviews. kubectl itself relies on these (kubectl version,
// discovery before apply, kubectl auth can-i).
func builtinSet() *Set {
	authenticated := []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "system:authenticated"}}
	role := func(name string, rules ...rbacv1.PolicyRule) rbacv1.ClusterRole {
		return rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}
	}
	binding := func(name string, subjects []rbacv1.Subject) rbacv1.ClusterRoleBinding {
		return rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
			Subjects:   subjects,
		}
	}
	get := []string{"get"}
	return &Set{
		ClusterRoles: []rbacv1.ClusterRole{
			role("system:discovery", rbacv1.PolicyRule{Verbs: get, NonResourceURLs: []string{
				"/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/",
			}}),
			role("system:public-info-viewer", rbacv1.PolicyRule{Verbs: get, NonResourceURLs: []string{
				"/healthz", "/livez", "/readyz", "/version", "/version/",
			}}),
			role("system:basic-user",
				rbacv1.PolicyRule{Verbs: []string{"create"}, APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"selfsubjectaccessreviews", "selfsubjectrulesreviews"}},
				rbacv1.PolicyRule{Verbs: []string{"create"}, APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"selfsubjectreviews"}},
			),
		},
		ClusterRoleBindings: []rbacv1.ClusterRoleBinding{
			binding("system:discovery", authenticated),
			binding("system:public-info-viewer", append(authenticated, rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "system:unauthenticated"})),
			binding("system:basic-user", authenticated),
		},
	}
}
