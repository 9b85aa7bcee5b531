// Package access names one Kubernetes API access: the attributes an
// authorizer decides on. It is the common currency between the DPF call
// tables, SubjectAccessReviews, RBAC evaluation and the fix plan.
package access

import (
	"fmt"
	"slices"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Request is one resource access: what a SubjectAccessReview asks and what a
// single RBAC rule must cover. Name is empty for list/create/collection calls.
// Namespace is empty for cluster-scoped resources.
type Request struct {
	Verb        string `json:"verb"`
	Group       string `json:"group"`
	Resource    string `json:"resource"`
	Subresource string `json:"subresource,omitempty"`
	Namespace   string `json:"namespace,omitempty"`
	Name        string `json:"name,omitempty"`
	// NonResourceURL is set instead of the resource fields for requests
	// such as GET /version.
	NonResourceURL string `json:"nonResourceURL,omitempty"`
}

// GroupResource is "resource.group", or "resource" for the core group, with
// "/subresource" appended when set: the form kubectl and RBAC messages use.
func (r Request) GroupResource() string {
	s := schema.GroupResource{Group: r.Group, Resource: r.Resource}.String()
	if r.Subresource != "" {
		return s + "/" + r.Subresource
	}
	return s
}

// RBACResource is the resource string as it appears in a PolicyRule:
// "resource" or "resource/subresource".
func (r Request) RBACResource() string {
	if r.Subresource != "" {
		return r.Resource + "/" + r.Subresource
	}
	return r.Resource
}

// String renders the request the way people read it:
// "get secrets/node-1-server-secret in dpf-operator-system".
func (r Request) String() string {
	if r.NonResourceURL != "" {
		return r.Verb + " " + r.NonResourceURL
	}
	s := r.Verb + " " + r.GroupResource()
	if r.Name != "" {
		s += " " + r.Name
	}
	if r.Namespace != "" {
		return s + " in " + r.Namespace
	}
	return s + " (cluster-scoped)"
}

// Key is a stable identity for de-duplication and sorting.
func (r Request) Key() string {
	return strings.Join([]string{r.Verb, r.Group, r.Resource, r.Subresource, r.Namespace, r.Name, r.NonResourceURL}, "|")
}

// Unique returns rs without duplicates, sorted.
func Unique(rs []Request) []Request {
	out := append(make([]Request, 0, len(rs)), rs...)
	slices.SortStableFunc(out, func(a, b Request) int { return strings.Compare(a.Key(), b.Key()) })
	return slices.CompactFunc(out, func(a, b Request) bool { return a.Key() == b.Key() })
}

// Subject is who makes a request: a user name and its groups, as the API
// server authenticates them.
type Subject struct {
	User   string   `json:"user"`
	Groups []string `json:"groups,omitempty"`
}

// ServiceAccount returns the subject the API server sees for a ServiceAccount
// token: its user name and the three groups every ServiceAccount belongs to.
func ServiceAccount(namespace, name string) Subject {
	return Subject{
		User:   fmt.Sprintf("system:serviceaccount:%s:%s", namespace, name),
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
	}
}

// attributes are the request as a review's attributes: exactly one of the
// two is set.
func (r Request) attributes() (*authorizationv1.ResourceAttributes, *authorizationv1.NonResourceAttributes) {
	if r.NonResourceURL != "" {
		return nil, &authorizationv1.NonResourceAttributes{Path: r.NonResourceURL, Verb: r.Verb}
	}
	return &authorizationv1.ResourceAttributes{Namespace: r.Namespace, Verb: r.Verb, Group: r.Group,
		Resource: r.Resource, Subresource: r.Subresource, Name: r.Name}, nil
}

// SubjectAccessReview is the review that asks whether s may make r: the one
// request → review builder every stage uses.
func (r Request) SubjectAccessReview(s Subject) *authorizationv1.SubjectAccessReview {
	res, non := r.attributes()
	return &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: s.User, Groups: s.Groups, ResourceAttributes: res, NonResourceAttributes: non}}
}

// SelfSubjectAccessReview is the review that asks whether the caller may
// make r.
func (r Request) SelfSubjectAccessReview() *authorizationv1.SelfSubjectAccessReview {
	res, non := r.attributes()
	return &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: res, NonResourceAttributes: non}}
}
