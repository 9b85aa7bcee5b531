package guard

import (
	"context"
	"fmt"
	"sort"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/component-helpers/auth/rbac/validation"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
)

// probeNode stands in for a node when every failing node's name is granted
// by name, so the review answers for names nobody granted.
const probeNode = "dpfdoctor-probe"

// pattern is one access question the failing pods' call tables ask.
type pattern struct {
	key       string
	subject   access.Subject
	call      dpf.Call
	namespace string
	pods      []string
	nodes     []string
}

// fillAccess answers each distinct call pattern of the failing pods with one
// SubjectAccessReview for a representative node, remembered until
// dpfdoctor's RBAC changes, and derives per-node answers from dpfdoctor's
// name-restricted grants, as the collector does.
func (f *fetcher) fillAccess(ctx context.Context, b *evidence.Bundle) error {
	for _, p := range patterns(b) {
		named := nameGrants(b.RBAC, p.subject, p.call, p.namespace)
		pat := namePattern(p.call)
		rep := probeNode
		if len(p.nodes) > 0 {
			rep = p.nodes[0]
		}
		if strings.Contains(pat, dpf.PatternNode) && len(named) > 0 {
			rep = probeNode
			for _, n := range p.nodes {
				if _, ok := granted(named, p.call, p.namespace, n); !ok {
					rep = n
					break
				}
			}
		}
		check := evidence.AccessCheck{Subject: p.subject, Request: p.call.Request(p.namespace, rep), NamePattern: pat, Pods: p.pods}
		ans, err := f.review(ctx, p.key, check)
		if err != nil {
			return err
		}
		check.Allowed, check.Reason, check.Error = ans.allowed, ans.reason, ans.err
		if strings.Contains(pat, dpf.PatternNode) && len(named) > 0 && !check.Allowed {
			for _, n := range p.nodes {
				if src, ok := granted(named, p.call, p.namespace, n); ok {
					check.NodeOverrides = append(check.NodeOverrides, evidence.NodeOverride{
						Node: n, Name: p.call.Request(p.namespace, n).Name, Allowed: true, Source: src})
				}
			}
		}
		b.Access = append(b.Access, check)
	}
	if f.reviewsDenied {
		req := access.Request{Verb: "create", Group: authorizationv1.GroupName, Resource: "subjectaccessreviews"}
		b.Gaps = append(b.Gaps, evidence.Gap{What: "subjectaccessreviews", Request: &req, Reason: "forbidden: " + req.String(),
			Impact: "what the pods' ServiceAccount may do is not checked; RBAC problems are found only from Forbidden lines in logs"})
	}
	return nil
}

// review asks the API server once per question and RBAC state.
func (f *fetcher) review(ctx context.Context, checkKey string, c evidence.AccessCheck) (review, error) {
	key := checkKey + "|" + c.Request.Name
	if r, ok := f.reviews[key]; ok {
		return r, nil
	}
	if f.reviewsDenied {
		return review{err: "not asked: creating SubjectAccessReviews is forbidden"}, nil
	}
	req := c.Request
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: c.Subject.User, Groups: c.Subject.Groups,
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: req.Namespace, Verb: req.Verb, Group: req.Group,
			Resource: req.Resource, Subresource: req.Subresource, Name: req.Name},
	}}
	res, err := f.kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	var r review
	switch {
	case apierrors.IsForbidden(err):
		f.reviewsDenied = true
		return review{err: "forbidden: create subjectaccessreviews.authorization.k8s.io"}, nil
	case err != nil && fatal(err):
		return review{}, fmt.Errorf("review %s: %w", req, kube.Classify(err))
	case err != nil:
		r.err = err.Error()
	default:
		r.allowed, r.reason = res.Status.Allowed, res.Status.Reason
		if res.Status.EvaluationError != "" {
			r.reason = strings.TrimSpace(r.reason + " (evaluation error: " + res.Status.EvaluationError + ")")
		}
	}
	f.reviews[key] = r
	return r, nil
}

// patterns groups the bundle's pods' call tables into distinct questions,
// in a stable order. GET /version is open to everyone and skipped.
func patterns(b *evidence.Bundle) []*pattern {
	byKey := map[string]*pattern{}
	for _, p := range b.Pods {
		if p.Ready {
			continue
		}
		subject := p.Subject()
		ns := p.ScriptNamespace()
		for _, c := range p.Calls(b.Install.Version) {
			if c.NonResourceURL != "" {
				continue
			}
			k := evidence.CheckKey(subject.User, c, ns)
			pt, ok := byKey[k]
			if !ok {
				pt = &pattern{key: k, subject: subject, call: c, namespace: ns}
				byKey[k] = pt
			}
			if len(pt.pods) == 0 || pt.pods[len(pt.pods)-1] != p.Name {
				pt.pods = append(pt.pods, p.Name)
				pt.nodes = append(pt.nodes, p.Node)
			}
		}
	}
	out := make([]*pattern, 0, len(byKey))
	for _, pt := range byKey {
		sort.Strings(pt.nodes)
		out = append(out, pt)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

// namePattern is the call's name pattern when only the node varies in it,
// else "" (evidence's rule).
func namePattern(c dpf.Call) string {
	if c.Name == "" || strings.Contains(strings.ReplaceAll(c.Name, dpf.PatternNode, ""), "{") {
		return ""
	}
	return c.Name
}

type nameGrant struct {
	rule   rbacv1.PolicyRule
	source string
}

// nameGrants are the name-restricted rules of dpfdoctor's roles that the
// subject holds in namespace.
func nameGrants(rb evidence.RBAC, who access.Subject, c dpf.Call, namespace string) []nameGrant {
	var out []nameGrant
	add := func(rules []rbacv1.PolicyRule, source string) {
		for _, r := range rules {
			if len(r.ResourceNames) > 0 {
				out = append(out, nameGrant{rule: r, source: source})
			}
		}
	}
	clusterRole := func(name string) []rbacv1.PolicyRule {
		for _, cr := range rb.ClusterRoles {
			if cr.Name == name {
				return cr.Rules
			}
		}
		return nil
	}
	for _, b := range rb.ClusterRoleBindings {
		if binds(b.Subjects, who) {
			add(clusterRole(b.RoleRef.Name), "ClusterRole "+b.RoleRef.Name+" via ClusterRoleBinding "+b.Name)
		}
	}
	for _, b := range rb.RoleBindings {
		if b.Namespace != namespace || !binds(b.Subjects, who) {
			continue
		}
		if b.RoleRef.Kind == "ClusterRole" {
			add(clusterRole(b.RoleRef.Name), "ClusterRole "+b.RoleRef.Name+" via RoleBinding "+namespace+"/"+b.Name)
			continue
		}
		for _, ro := range rb.Roles {
			if ro.Name == b.RoleRef.Name && ro.Namespace == namespace {
				add(ro.Rules, "Role "+namespace+"/"+ro.Name+" via RoleBinding "+namespace+"/"+b.Name)
			}
		}
	}
	return out
}

// granted reports whether a name-restricted rule covers the call for node.
func granted(grants []nameGrant, c dpf.Call, namespace, node string) (string, bool) {
	req := c.Request(namespace, node)
	if req.Name == "" {
		return "", false
	}
	want := []rbacv1.PolicyRule{{Verbs: []string{req.Verb}, APIGroups: []string{req.Group}, Resources: []string{req.RBACResource()}, ResourceNames: []string{req.Name}}}
	for _, g := range grants {
		if ok, _ := validation.Covers([]rbacv1.PolicyRule{g.rule}, want); ok {
			return g.source, true
		}
	}
	return "", false
}

// binds reports whether subjects include who.
func binds(subjects []rbacv1.Subject, who access.Subject) bool {
	ns, name, isSA := access.ParseServiceAccountUser(who.User)
	for _, s := range subjects {
		switch s.Kind {
		case rbacv1.ServiceAccountKind:
			if isSA && s.Name == name && s.Namespace == ns {
				return true
			}
		case rbacv1.UserKind:
			if s.Name == who.User {
				return true
			}
		case rbacv1.GroupKind:
			for _, g := range who.Groups {
				if s.Name == g {
					return true
				}
			}
		}
	}
	return false
}
