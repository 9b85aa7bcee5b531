// Package rbac is dpfdoctor's pure RBAC toolkit: it reads Role, ClusterRole,
// RoleBinding and ClusterRoleBinding manifests, answers "may this subject make
// this request?" with the Kubernetes rule-matching code
// (k8s.io/component-helpers/auth/rbac/validation.Covers), and renders the
// least-privilege Role/RoleBinding objects that close a gap. Nothing here
// talks to a cluster.
package rbac

import (
	"fmt"
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
)

// Set holds the RBAC objects one evaluation sees. The zero value is an empty
// set ready to use.
type Set struct {
	Roles               []rbacv1.Role
	ClusterRoles        []rbacv1.ClusterRole
	RoleBindings        []rbacv1.RoleBinding
	ClusterRoleBindings []rbacv1.ClusterRoleBinding
}

// Add appends one RBAC object, given by value or by pointer. Other kinds are
// an error, so a loader notices what it passes by mistake.
func (s *Set) Add(obj runtime.Object) error {
	switch o := obj.(type) {
	case *rbacv1.Role:
		s.Roles = append(s.Roles, *o.DeepCopy())
	case *rbacv1.ClusterRole:
		s.ClusterRoles = append(s.ClusterRoles, *o.DeepCopy())
	case *rbacv1.RoleBinding:
		s.RoleBindings = append(s.RoleBindings, *o.DeepCopy())
	case *rbacv1.ClusterRoleBinding:
		s.ClusterRoleBindings = append(s.ClusterRoleBindings, *o.DeepCopy())
	case *rbacv1.RoleList:
		s.Roles = append(s.Roles, o.DeepCopy().Items...)
	case *rbacv1.ClusterRoleList:
		s.ClusterRoles = append(s.ClusterRoles, o.DeepCopy().Items...)
	case *rbacv1.RoleBindingList:
		s.RoleBindings = append(s.RoleBindings, o.DeepCopy().Items...)
	case *rbacv1.ClusterRoleBindingList:
		s.ClusterRoleBindings = append(s.ClusterRoleBindings, o.DeepCopy().Items...)
	case nil:
		return fmt.Errorf("add nil object to RBAC set")
	default:
		return fmt.Errorf("add %T to RBAC set: not a Role, ClusterRole, RoleBinding or ClusterRoleBinding", obj)
	}
	return nil
}

// NewObject returns an empty object of one of the four RBAC kinds; ok is
// false for any other kind.
func NewObject(kind string) (obj runtime.Object, ok bool) {
	obj, ok = map[string]runtime.Object{"Role": &rbacv1.Role{}, "ClusterRole": &rbacv1.ClusterRole{},
		"RoleBinding": &rbacv1.RoleBinding{}, "ClusterRoleBinding": &rbacv1.ClusterRoleBinding{}}[kind]
	return obj, ok
}

// Merge appends every object of o.
func (s *Set) Merge(o *Set) {
	if o == nil {
		return
	}
	s.Roles = append(s.Roles, o.Roles...)
	s.ClusterRoles = append(s.ClusterRoles, o.ClusterRoles...)
	s.RoleBindings = append(s.RoleBindings, o.RoleBindings...)
	s.ClusterRoleBindings = append(s.ClusterRoleBindings, o.ClusterRoleBindings...)
}

// Len is the number of objects in the set.
func (s *Set) Len() int {
	return len(s.Roles) + len(s.ClusterRoles) + len(s.RoleBindings) + len(s.ClusterRoleBindings)
}

// SetDefaultNamespace places Roles and RoleBindings that name no namespace
// in ns, as `kubectl apply -n ns` (or `helm install -n ns`) would.
func (s *Set) SetDefaultNamespace(ns string) {
	for i := range s.Roles {
		if s.Roles[i].Namespace == "" {
			s.Roles[i].Namespace = ns
		}
	}
	for i := range s.RoleBindings {
		if s.RoleBindings[i].Namespace == "" {
			s.RoleBindings[i].Namespace = ns
		}
	}
}

// RewriteNamespace moves Roles, RoleBindings and ServiceAccount subjects
// from namespace from to namespace to, as the DPF operator rewrites its
// manifests' placeholder namespace. Subject lists are copied first, so a
// set merged into s keeps its own.
func (s *Set) RewriteNamespace(from, to string) {
	move := func(ns *string) {
		if *ns == from {
			*ns = to
		}
	}
	subjects := func(ss []rbacv1.Subject) []rbacv1.Subject {
		ss = slices.Clone(ss)
		for i := range ss {
			move(&ss[i].Namespace)
		}
		return ss
	}
	for i := range s.Roles {
		move(&s.Roles[i].Namespace)
	}
	for i := range s.RoleBindings {
		move(&s.RoleBindings[i].Namespace)
		s.RoleBindings[i].Subjects = subjects(s.RoleBindings[i].Subjects)
	}
	for i := range s.ClusterRoleBindings {
		s.ClusterRoleBindings[i].Subjects = subjects(s.ClusterRoleBindings[i].Subjects)
	}
}

// ResourceNames returns every resourceName any rule of the set mentions,
// sorted and without duplicates. Lint uses it to tell "denied for every
// name" from "allowed for some names" when a name is not known.
func (s *Set) ResourceNames() []string {
	seen := sets.New[string]()
	for _, r := range s.Roles {
		for _, rule := range r.Rules {
			seen.Insert(rule.ResourceNames...)
		}
	}
	for _, r := range s.ClusterRoles {
		for _, rule := range r.Rules {
			seen.Insert(rule.ResourceNames...)
		}
	}
	return sets.List(seen)
}

// BindingNamespaces returns the namespaces of the set's RoleBindings, sorted
// and without duplicates.
func (s *Set) BindingNamespaces() []string {
	seen := sets.New[string]()
	for _, b := range s.RoleBindings {
		seen.Insert(b.Namespace)
	}
	return sets.List(seen)
}
