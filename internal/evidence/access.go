package evidence

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/component-helpers/auth/rbac/validation"
)

// probeNode stands in for a node when every real node's concrete name is
// granted by name: the review then answers for names nobody granted.
const probeNode = "dpfdoctor-probe"

// pattern is one distinct access question: who, which call, which
// namespace, with the pods and nodes that need it.
type pattern struct {
	subject   access.Subject
	call      dpf.Call
	namespace string
	pods      []string
	nodes     []string
}

// access sends one SubjectAccessReview per distinct call pattern the pods
// need, for one representative node, and derives the other nodes' answers
// from the listed RBAC objects when a Role grants only some names.
func (r *run) access(ctx context.Context) error {
	patterns := r.patterns()
	if len(patterns) == 0 {
		return nil
	}
	checks := make([]AccessCheck, len(patterns))
	var (
		refused atomic.Bool
		fatal   error
		fatalMu sync.Mutex
		wg      sync.WaitGroup
		sem     = make(chan struct{}, r.o.Concurrency)
	)
	for i, p := range patterns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			check, err := r.review(ctx, p, &refused)
			if err != nil {
				fatalMu.Lock()
				if fatal == nil {
					fatal = err
				}
				fatalMu.Unlock()
			}
			checks[i] = check
		}()
	}
	wg.Wait()
	if fatal != nil {
		return fatal
	}
	if refused.Load() {
		req := access.Request{Verb: "create", Group: authorizationv1.GroupName, Resource: "subjectaccessreviews"}
		r.gap(Gap{What: "subjectaccessreviews", Request: &req, Reason: "forbidden: " + req.String(),
			Impact: "what the pods' ServiceAccount may do is not checked; RBAC problems are found only from Forbidden lines in logs"})
	}
	r.b.Access = checks
	return nil
}

// patterns groups every pod's call table into distinct access questions,
// in a stable order.
func (r *run) patterns() []*pattern {
	byKey := map[string]*pattern{}
	var keys []string
	for _, p := range r.b.Pods {
		subject := p.Subject()
		ns := p.ScriptNamespace()
		for _, c := range p.Calls(r.b.Install.Version) {
			if c.NonResourceURL != "" {
				// GET /version is open to every client (system:public-info-viewer);
				// its failures are reachability failures, not RBAC.
				continue
			}
			k := CheckKey(subject.User, c, ns)
			pt, ok := byKey[k]
			if !ok {
				pt = &pattern{subject: subject, call: c, namespace: ns}
				byKey[k] = pt
				keys = append(keys, k)
			}
			if len(pt.pods) == 0 || pt.pods[len(pt.pods)-1] != p.Name {
				pt.pods = append(pt.pods, p.Name)
				pt.nodes = append(pt.nodes, p.Node)
			}
		}
	}
	sort.Strings(keys)
	out := make([]*pattern, 0, len(keys))
	for _, k := range keys {
		pt := byKey[k]
		pt.nodes = uniqueSorted(pt.nodes)
		out = append(out, pt)
	}
	return out
}

// review answers one pattern: from the listed RBAC objects when they
// prove it allowed, else with a SubjectAccessReview.
func (r *run) review(ctx context.Context, p *pattern, refused *atomic.Bool) (AccessCheck, error) {
	pat := namePattern(p.call)
	grants := r.boundRules(p.subject, p.namespace)
	named := withNames(grants)
	rep := probeNode
	if len(p.nodes) > 0 {
		rep = p.nodes[0]
	}
	if strings.Contains(pat, dpf.PatternNode) && len(named) > 0 {
		rep = probeNode
		for _, n := range p.nodes {
			if _, ok := covered(named, p.call.Request(p.namespace, n)); !ok {
				rep = n
				break
			}
		}
	}
	check := AccessCheck{Subject: p.subject, Request: p.call.Request(p.namespace, rep), NamePattern: pat, Pods: p.pods}
	// A rule bound to the subject that covers the representative request
	// covers every node: rep is a node no name-restricted rule covers.
	if r.rbacOK {
		if src, ok := covered(grants, check.Request); ok {
			check.Allowed, check.Method, check.Reason = true, MethodRBACObjects, "allowed by "+src
			return check, nil
		}
	}
	check.Method = MethodReview
	if refused.Load() {
		check.Error = "not asked: creating SubjectAccessReviews is forbidden"
		return check, nil
	}
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   p.subject.User,
		Groups: p.subject.Groups,
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: check.Request.Namespace, Verb: check.Request.Verb, Group: check.Request.Group,
			Resource: check.Request.Resource, Subresource: check.Request.Subresource, Name: check.Request.Name,
		},
	}}
	res, err := r.cl.Kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	switch {
	case apierrors.IsForbidden(err):
		refused.Store(true)
		check.Error = "forbidden: create subjectaccessreviews.authorization.k8s.io"
		return check, nil
	case err != nil:
		classified := kube.Classify(err)
		if errors.Is(classified, kube.ErrUnreachable) || errors.Is(classified, kube.ErrUnauthenticated) {
			return check, fmt.Errorf("review %s: %w", check.Request, classified)
		}
		check.Error = err.Error()
		return check, nil
	}
	check.Allowed = res.Status.Allowed
	check.Reason = res.Status.Reason
	if res.Status.EvaluationError != "" {
		check.Reason = strings.TrimSpace(check.Reason + " (evaluation error: " + res.Status.EvaluationError + ")")
	}
	if strings.Contains(pat, dpf.PatternNode) && len(named) > 0 && !check.Allowed {
		for _, n := range p.nodes {
			if src, ok := covered(named, p.call.Request(p.namespace, n)); ok {
				check.NodeOverrides = append(check.NodeOverrides, NodeOverride{
					Node: n, Name: p.call.Request(p.namespace, n).Name, Allowed: true, Source: src,
				})
			}
		}
	}
	return check, nil
}

// grant is a rule bound to a subject, with where it comes from.
type grant struct {
	rule   rbacv1.PolicyRule
	source string
}

// rbacComplete reports whether every RBAC list succeeded, so that a rule
// found there proves a request allowed.
func (r *run) rbacComplete() bool {
	for _, what := range []string{"clusterrolebindings", "rolebindings", "clusterroles", "roles"} {
		if r.b.HasGap(what) {
			return false
		}
	}
	return true
}

// boundRules returns the listed rules the subject holds in namespace: a
// Role or ClusterRole through a RoleBinding there, or a ClusterRole through
// a ClusterRoleBinding.
func (r *run) boundRules(who access.Subject, namespace string) []grant {
	rb := r.b.RBAC
	var out []grant
	add := func(rules []rbacv1.PolicyRule, source string) {
		for _, rule := range rules {
			out = append(out, grant{rule: rule, source: source})
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

// withNames keeps the rules restricted to resourceNames.
func withNames(gs []grant) []grant {
	var out []grant
	for _, g := range gs {
		if len(g.rule.ResourceNames) > 0 {
			out = append(out, g)
		}
	}
	return out
}

// covered reports whether one of the rules allows the request, and which.
func covered(grants []grant, req access.Request) (string, bool) {
	if req.NonResourceURL != "" {
		return "", false
	}
	want := rbacv1.PolicyRule{Verbs: []string{req.Verb}, APIGroups: []string{req.Group}, Resources: []string{req.RBACResource()}}
	if req.Name != "" {
		want.ResourceNames = []string{req.Name}
	}
	for _, g := range grants {
		if ok, _ := validation.Covers([]rbacv1.PolicyRule{g.rule}, []rbacv1.PolicyRule{want}); ok {
			return g.source, true
		}
	}
	return "", false
}
