package evidence

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/fanout"
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

// Pattern is one distinct access question: who, which call, which
// namespace, with the pods and nodes that need it. Key is its CheckKey.
type Pattern struct {
	Key       string
	Subject   access.Subject
	Call      dpf.Call
	Namespace string
	Pods      []string
	Nodes     []string
}

// access sends one SubjectAccessReview per distinct call pattern the pods
// need, for one representative node, and derives the other nodes' answers
// from the listed RBAC objects when a Role grants only some names.
func (r *run) access(ctx context.Context) error {
	patterns := AccessPatterns(r.b.Pods, r.b.Install.Version)
	if len(patterns) == 0 {
		return nil
	}
	var refused atomic.Bool
	checks, err := Answer(patterns, r.o.Concurrency, func(p Pattern) (AccessCheck, error) {
		return r.review(ctx, p, &refused)
	})
	if err != nil {
		return err
	}
	if refused.Load() {
		req := access.Request{Verb: "create", Group: authorizationv1.GroupName, Resource: "subjectaccessreviews"}
		r.gap(Gap{What: "subjectaccessreviews", Request: &req, Reason: "forbidden: " + req.String(),
			Impact: "what the pods' ServiceAccount may do is not checked; RBAC problems are found only from Forbidden lines in logs"})
	}
	r.b.Access = checks
	return nil
}

// Answer answers every pattern with ask, at most limit at a time, in two
// rounds: first the requests the script makes on its own, then those kubectl
// sends only after reading the same object (dpf.Call.AfterRead). While that
// read is denied for every node, the script never reaches the request, so
// it is not asked: its check says MethodNotReached and counts as needed.
// Checks come back in the patterns' order.
func Answer(patterns []Pattern, limit int, ask func(Pattern) (AccessCheck, error)) ([]AccessCheck, error) {
	checks := make([]AccessCheck, len(patterns))
	index := make(map[string]int, len(patterns))
	var first, then []int
	for i, p := range patterns {
		index[p.Key] = i
		if p.Call.AfterRead {
			then = append(then, i)
		} else {
			first = append(first, i)
		}
	}
	round := func(idx []int) error {
		return fanout.Each(len(idx), limit, func(j int) (err error) {
			i := idx[j]
			checks[i], err = ask(patterns[i])
			return err
		})
	}
	if err := round(first); err != nil {
		return nil, err
	}
	var reached []int
	for _, i := range then {
		p := patterns[i]
		lead, ok := index[CheckKey(p.Subject.User, p.Call.Lead(), p.Namespace)]
		if ok && deniedEverywhere(checks[lead]) {
			checks[i] = p.notReached(checks[lead])
			continue
		}
		reached = append(reached, i)
	}
	if err := round(reached); err != nil {
		return nil, err
	}
	return checks, nil
}

// deniedEverywhere reports whether a check is a known "no" that no node's
// own grant overrides.
func deniedEverywhere(c AccessCheck) bool {
	if !c.Known() || c.Allowed {
		return false
	}
	for _, o := range c.NodeOverrides {
		if o.Allowed {
			return false
		}
	}
	return true
}

// notReached is the check of a request the script never gets to, because
// kubectl's read before it (lead) is denied.
func (p Pattern) notReached(lead AccessCheck) AccessCheck {
	c := p.Question(nil)
	c.Method = MethodNotReached
	c.Reason = "not asked: kubectl sends it only after reading the object, and " + lead.Request.String() + " is denied"
	return c
}

// AccessPatterns groups the pods' call tables, for the cluster's version,
// into distinct access questions, in a stable order. GET /version is open
// to every client (system:public-info-viewer) and skipped: its failures are
// reachability failures, not RBAC.
func AccessPatterns(pods []Pod, version string) []Pattern {
	byKey := map[string]*Pattern{}
	var keys []string
	// Pods of one shape (ServiceAccount, namespace, script, certificate
	// mode) share their call table and keys: resolve each shape once.
	type shape struct {
		pod, sa, ns string
		script      dpf.ScriptVariant
		certPath    bool
	}
	type resolved struct {
		subject access.Subject
		ns      string
		calls   []dpf.Call
		keys    []string
	}
	shapes := map[shape]*resolved{}
	for _, p := range pods {
		args := p.Args()
		sh := shape{pod: p.Namespace, sa: p.ServiceAccountName(), ns: args.Namespace, script: p.Script(version), certPath: args.CertPath()}
		rs, ok := shapes[sh]
		if !ok {
			rs = &resolved{subject: p.Subject(), ns: sh.ns}
			if rs.ns == "" {
				rs.ns = dpf.DefaultNamespace
			}
			for _, c := range dpf.Calls(sh.script, sh.certPath) {
				if c.NonResourceURL != "" {
					continue
				}
				rs.calls = append(rs.calls, c)
				rs.keys = append(rs.keys, CheckKey(rs.subject.User, c, rs.ns))
			}
			shapes[sh] = rs
		}
		for i, k := range rs.keys {
			pt, ok := byKey[k]
			if !ok {
				pt = &Pattern{Key: k, Subject: rs.subject, Call: rs.calls[i], Namespace: rs.ns}
				byKey[k] = pt
				keys = append(keys, k)
			}
			if len(pt.Pods) == 0 || pt.Pods[len(pt.Pods)-1] != p.Name {
				pt.Pods = append(pt.Pods, p.Name)
				pt.Nodes = append(pt.Nodes, p.Node)
			}
		}
	}
	sort.Strings(keys)
	out := make([]Pattern, 0, len(keys))
	for _, k := range keys {
		pt := byKey[k]
		pt.Nodes = uniqueSorted(pt.Nodes)
		out = append(out, *pt)
	}
	return out
}

// Question is the access check that asks the pattern for one
// representative node: the first node, or, when name-restricted grants
// (named) exist for a per-node name, the first node none of them covers
// (probeNode when they cover every node). A rule that covers that request
// covers every node.
func (p Pattern) Question(named []Grant) AccessCheck {
	pat := namePattern(p.Call)
	rep := probeNode
	if len(p.Nodes) > 0 {
		rep = p.Nodes[0]
	}
	if strings.Contains(pat, dpf.PatternNode) && len(named) > 0 {
		rep = probeNode
		for _, n := range p.Nodes {
			if _, ok := covered(named, p.Call.Request(p.Namespace, n)); !ok {
				rep = n
				break
			}
		}
	}
	return AccessCheck{Subject: p.Subject, Request: p.Call.Request(p.Namespace, rep), NamePattern: pat, Pods: p.Pods}
}

// Overrides are the nodes whose concrete name a name-restricted grant
// allows, for a question answered "no" for the representative node.
func (p Pattern) Overrides(named []Grant) []NodeOverride {
	if !strings.Contains(namePattern(p.Call), dpf.PatternNode) {
		return nil
	}
	var out []NodeOverride
	for _, n := range p.Nodes {
		req := p.Call.Request(p.Namespace, n)
		if src, ok := covered(named, req); ok {
			out = append(out, NodeOverride{Node: n, Name: req.Name, Allowed: true, Source: src})
		}
	}
	return out
}

// review answers one pattern: from the listed RBAC objects when they
// prove it allowed, else with a SubjectAccessReview.
func (r *run) review(ctx context.Context, p Pattern, refused *atomic.Bool) (AccessCheck, error) {
	grants := r.b.RBAC.Grants(p.Subject, p.Namespace)
	named := NameRestricted(grants)
	check := p.Question(named)
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
		User:   p.Subject.User,
		Groups: p.Subject.Groups,
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
	if !check.Allowed {
		check.NodeOverrides = p.Overrides(named)
	}
	return check, nil
}

// Grant is a rule bound to a subject, with where it comes from.
type Grant struct {
	Rule   rbacv1.PolicyRule
	Source string
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

// Grants returns the listed rules who holds in namespace: a Role or
// ClusterRole through a RoleBinding there, or a ClusterRole through a
// ClusterRoleBinding.
func (rb RBAC) Grants(who access.Subject, namespace string) []Grant {
	var out []Grant
	add := func(rules []rbacv1.PolicyRule, source string) {
		for _, rule := range rules {
			out = append(out, Grant{Rule: rule, Source: source})
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

// NameRestricted keeps the grants restricted to resourceNames.
func NameRestricted(gs []Grant) []Grant {
	var out []Grant
	for _, g := range gs {
		if len(g.Rule.ResourceNames) > 0 {
			out = append(out, g)
		}
	}
	return out
}

// covered reports whether one of the grants allows the request, and which.
func covered(grants []Grant, req access.Request) (string, bool) {
	if req.NonResourceURL != "" {
		return "", false
	}
	want := rbacv1.PolicyRule{Verbs: []string{req.Verb}, APIGroups: []string{req.Group}, Resources: []string{req.RBACResource()}}
	if req.Name != "" {
		want.ResourceNames = []string{req.Name}
	}
	for _, g := range grants {
		if ok, _ := validation.Covers([]rbacv1.PolicyRule{g.Rule}, []rbacv1.PolicyRule{want}); ok {
			return g.Source, true
		}
	}
	return "", false
}
