package evidence

import (
	"context"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// lastApplied is stripped from RBAC objects with managedFields.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

const rbacImpact = "per-node grants (resourceNames) are not taken into account; access comes from SubjectAccessReviews only"

func rbacList(res, namespace string) access.Request {
	return access.Request{Verb: "list", Group: rbacv1.GroupName, Resource: res, Namespace: namespace}
}

// rbacBindings lists ClusterRoleBindings and the namespace's RoleBindings.
func (r *run) rbacBindings(ctx context.Context) error {
	ns := r.o.Namespace
	return parallel(
		func() error {
			l, err := r.cl.Kube.RbacV1().ClusterRoleBindings().List(ctx, fromCache)
			if err == nil {
				r.crbs = l.Items
			}
			r.crbFailed = err != nil
			return r.optional("clusterrolebindings", rbacList("clusterrolebindings", ""), rbacImpact, err)
		},
		func() error {
			l, err := r.cl.Kube.RbacV1().RoleBindings(ns).List(ctx, fromCache)
			if err == nil {
				r.rbs = l.Items
			}
			r.rbFailed = err != nil
			return r.optional("rolebindings", rbacList("rolebindings", ns), rbacImpact, err)
		},
	)
}

// rbacRoles lists the roles the bindings of the pods' ServiceAccounts
// reference (zero to two LISTs) and keeps what is relevant to them, plus
// every object dpfdoctor manages.
func (r *run) rbacRoles(ctx context.Context) error {
	ns := r.o.Namespace
	subjects := r.subjects()
	crbs, rbs := r.crbs, r.rbs
	var (
		crs   []rbacv1.ClusterRole
		roles []rbacv1.Role
	)
	// Roles are listed only when a kept binding references one: most
	// clusters have no RoleBinding for the DMS ServiceAccount until a fix.
	needCR, needRole := r.crbFailed || r.rbFailed, r.rbFailed
	for _, b := range crbs {
		needCR = needCR || managed(b.ObjectMeta) || bindsAny(b.Subjects, "", subjects)
	}
	for _, b := range rbs {
		if managed(b.ObjectMeta) || bindsAny(b.Subjects, b.Namespace, subjects) {
			needCR = needCR || b.RoleRef.Kind == "ClusterRole"
			needRole = needRole || b.RoleRef.Kind == "Role"
		}
	}
	var fns []func() error
	if needCR {
		fns = append(fns, func() error {
			l, err := r.cl.Kube.RbacV1().ClusterRoles().List(ctx, fromCache)
			if err == nil {
				crs = l.Items
			}
			return r.optional("clusterroles", rbacList("clusterroles", ""), rbacImpact, err)
		})
	}
	if needRole {
		fns = append(fns, func() error {
			l, err := r.cl.Kube.RbacV1().Roles(ns).List(ctx, fromCache)
			if err == nil {
				roles = l.Items
			}
			return r.optional("roles", rbacList("roles", ns), rbacImpact, err)
		})
	}
	if err := parallel(fns...); err != nil {
		return err
	}
	var out RBAC
	wantCR, wantRole := map[string]bool{}, map[string]bool{}
	for _, b := range crbs {
		// Bootstrap bindings (system:discovery, ...) grant every
		// authenticated user the same; they are left out as noise.
		if managed(b.ObjectMeta) || (bindsAny(b.Subjects, "", subjects) && !strings.HasPrefix(b.Name, "system:")) {
			strip(&b.ObjectMeta)
			out.ClusterRoleBindings = append(out.ClusterRoleBindings, b)
			wantCR[b.RoleRef.Name] = true
		}
	}
	for _, b := range rbs {
		if managed(b.ObjectMeta) || bindsAny(b.Subjects, b.Namespace, subjects) {
			strip(&b.ObjectMeta)
			out.RoleBindings = append(out.RoleBindings, b)
			if b.RoleRef.Kind == "ClusterRole" {
				wantCR[b.RoleRef.Name] = true
			} else {
				wantRole[b.RoleRef.Name] = true
			}
		}
	}
	for _, c := range crs {
		if managed(c.ObjectMeta) || wantCR[c.Name] {
			strip(&c.ObjectMeta)
			out.ClusterRoles = append(out.ClusterRoles, c)
		}
	}
	for _, ro := range roles {
		if managed(ro.ObjectMeta) || wantRole[ro.Name] {
			strip(&ro.ObjectMeta)
			out.Roles = append(out.Roles, ro)
		}
	}
	sort.Slice(out.ClusterRoles, func(i, j int) bool { return out.ClusterRoles[i].Name < out.ClusterRoles[j].Name })
	sort.Slice(out.ClusterRoleBindings, func(i, j int) bool { return out.ClusterRoleBindings[i].Name < out.ClusterRoleBindings[j].Name })
	sort.Slice(out.Roles, func(i, j int) bool { return out.Roles[i].Name < out.Roles[j].Name })
	sort.Slice(out.RoleBindings, func(i, j int) bool { return out.RoleBindings[i].Name < out.RoleBindings[j].Name })
	r.mu.Lock()
	r.b.RBAC = out
	r.mu.Unlock()
	return nil
}

// subjects are the identities the pods run as.
func (r *run) subjects() []access.Subject {
	seen := map[string]bool{}
	var out []access.Subject
	for _, p := range r.b.Pods {
		s := p.Subject()
		if !seen[s.User] {
			seen[s.User] = true
			out = append(out, s)
		}
	}
	return out
}

func managed(m metav1.ObjectMeta) bool { return m.Labels[ManagedByLabel] == ManagedByValue }

func strip(m *metav1.ObjectMeta) {
	m.ManagedFields = nil
	if _, ok := m.Annotations[lastApplied]; ok {
		m.Annotations = maps.Clone(m.Annotations) // the caller's map stays as it was
		delete(m.Annotations, lastApplied)
	}
}

// bindsAny reports whether a binding in namespace ("" for a
// ClusterRoleBinding) applies to one of who.
func bindsAny(subjects []rbacv1.Subject, namespace string, who []access.Subject) bool {
	return slices.ContainsFunc(who, func(w access.Subject) bool { return rbac.AppliesTo(w, subjects, namespace) })
}

// ManagedRBAC is the RBAC section for dpfdoctor's own Roles and
// RoleBindings held elsewhere (the guard's cache), stripped as the
// collector keeps them.
func ManagedRBAC(roles []rbacv1.Role, bindings []rbacv1.RoleBinding) RBAC {
	var out RBAC
	for _, o := range roles {
		strip(&o.ObjectMeta)
		out.Roles = append(out.Roles, o)
	}
	for _, o := range bindings {
		strip(&o.ObjectMeta)
		out.RoleBindings = append(out.RoleBindings, o)
	}
	return out
}
