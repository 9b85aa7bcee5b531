package rbac

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/component-helpers/auth/rbac/validation"
)

// Decision is the answer to one request. By names the rule that allows it,
// e.g. "ClusterRole dpf-provisioning-dms-role rule 2 via ClusterRoleBinding
// dpf-provisioning-dms-rolebinding" (rules are numbered from 1). Reason
// explains a denial: "no rule", or the closest miss.
type Decision struct {
	Allowed bool   `json:"allowed"`
	By      string `json:"by,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// Evaluate decides whether subj may make req, the way the API server's RBAC
// authorizer does: ClusterRoleBindings apply everywhere, RoleBindings only to
// namespaced requests in their own namespace (also when they reference a
// ClusterRole), and a rule matches when validation.Covers says it covers the
// request as a single-verb rule (with the request's name as its only
// resourceName, and "resource/subresource" as its resource).
//
// The cluster's built-in discovery roles (system:discovery,
// system:public-info-viewer, system:basic-user, bound to
// system:authenticated) are always in force, as on every cluster, unless the
// set itself holds a ClusterRole of the same name: so GET /version, the
// discovery paths and self access reviews are allowed to every
// authenticated subject.
func (s *Set) Evaluate(subj access.Subject, req access.Request) Decision {
	return s.evaluate(subj, req, false)
}

// EvaluateNamed is Evaluate over the rules that list resourceNames only:
// whether subj may make req because some rule grants req.Name itself.
// Evidence derives per-node answers with it, for Roles that grant some
// nodes' names and not the whole resource.
func (s *Set) EvaluateNamed(subj access.Subject, req access.Request) Decision {
	return s.evaluate(subj, req, true)
}

func (s *Set) evaluate(subj access.Subject, req access.Request, named bool) Decision {
	e := evaluation{set: s, subj: subj, want: requestRule(req), named: named}
	for _, b := range s.ClusterRoleBindings {
		if d, ok := e.through(b.Subjects, b.RoleRef, "", "ClusterRoleBinding "+b.Name); ok {
			return d
		}
	}
	for _, b := range s.RoleBindings {
		if b.Namespace != req.Namespace || req.Namespace == "" || req.NonResourceURL != "" {
			continue
		}
		if d, ok := e.through(b.Subjects, b.RoleRef, b.Namespace, "RoleBinding "+b.Namespace+"/"+b.Name); ok {
			return d
		}
	}
	if d, ok := e.builtins(); ok {
		return d
	}
	return Decision{Reason: e.denialReason()}
}

// requestRule turns a request into the single-verb rule Covers compares.
func requestRule(req access.Request) rbacv1.PolicyRule {
	if req.NonResourceURL != "" {
		return rbacv1.PolicyRule{Verbs: []string{req.Verb}, NonResourceURLs: []string{req.NonResourceURL}}
	}
	r := rbacv1.PolicyRule{Verbs: []string{req.Verb}, APIGroups: []string{req.Group}, Resources: []string{req.RBACResource()}}
	if req.Name != "" {
		r.ResourceNames = []string{req.Name}
	}
	return r
}

// covers asks validation.Covers whether rule covers the single-verb rule
// want. A rule whose verbs or API groups cannot match is skipped without
// the call (Covers allocates); the answer is Covers' alone.
func covers(rule, want rbacv1.PolicyRule) bool {
	if !hasOrStar(rule.Verbs, want.Verbs[0], rbacv1.VerbAll) {
		return false
	}
	if len(want.APIGroups) == 1 && !hasOrStar(rule.APIGroups, want.APIGroups[0], rbacv1.APIGroupAll) {
		return false
	}
	ok, _ := validation.Covers([]rbacv1.PolicyRule{rule}, []rbacv1.PolicyRule{want})
	return ok
}

func hasOrStar(set []string, s, star string) bool {
	return slices.Contains(set, s) || slices.Contains(set, star)
}

// evaluation carries one Evaluate call and what it learnt for the denial
// reason.
type evaluation struct {
	set      *Set
	subj     access.Subject
	want     rbacv1.PolicyRule
	named    bool     // only rules with resourceNames count (EvaluateNamed)
	bound    bool     // some binding applies to the subject
	dangling []string // bindings whose role does not exist
	nearMiss string   // a rule that matches but for its resourceNames
}

// through evaluates one binding (in ns, "" for a ClusterRoleBinding), if
// it applies to the subject.
func (e *evaluation) through(subjects []rbacv1.Subject, ref rbacv1.RoleRef, ns, via string) (Decision, bool) {
	if !AppliesTo(e.subj, subjects, ns) {
		return Decision{}, false
	}
	e.bound = true
	return e.match(e.rules(ref, ns, via), via)
}

func (e *evaluation) builtins() (Decision, bool) {
	if e.named { // no built-in rule lists resourceNames
		return Decision{}, false
	}
	b := builtins()
	for i, cr := range b.ClusterRoles {
		crb := b.ClusterRoleBindings[i] // each built-in role has its binding at the same index
		if !AppliesTo(e.subj, crb.Subjects, "") || slices.ContainsFunc(e.set.ClusterRoles, func(o rbacv1.ClusterRole) bool { return o.Name == cr.Name }) {
			continue
		}
		for j, r := range cr.Rules {
			if covers(r, e.want) {
				return Decision{Allowed: true, By: fmt.Sprintf("ClusterRole %s rule %d via ClusterRoleBinding %s (built-in)", cr.Name, j+1, crb.Name)}, true
			}
		}
	}
	return Decision{}, false
}

// sourcedRule is a rule and where it comes from.
type sourcedRule struct {
	rule  rbacv1.PolicyRule
	index int    // 1-based within its role
	role  string // "ClusterRole x" or "Role ns/x"
	into  string // the aggregating ClusterRole, if the rule was aggregated
}

func (r sourcedRule) String() string {
	s := fmt.Sprintf("%s rule %d", r.role, r.index)
	if r.into != "" {
		s += " (aggregated into ClusterRole " + r.into + ")"
	}
	return s
}

func (e *evaluation) match(rules []sourcedRule, via string) (Decision, bool) {
	for _, r := range rules {
		if e.named && len(r.rule.ResourceNames) == 0 {
			continue
		}
		if covers(r.rule, e.want) {
			return Decision{Allowed: true, By: r.String() + " via " + via}, true
		}
		if e.nearMiss == "" && len(r.rule.ResourceNames) > 0 {
			open := *r.rule.DeepCopy()
			open.ResourceNames = nil
			if covers(open, e.want) {
				e.nearMiss = fmt.Sprintf("%s allows only names %s", r, strings.Join(r.rule.ResourceNames, ", "))
			}
		}
	}
	return Decision{}, false
}

// rules are the rules of the role a binding references; ns is the
// RoleBinding's namespace, "" for a ClusterRoleBinding (which can reference
// only a ClusterRole).
func (e *evaluation) rules(ref rbacv1.RoleRef, ns, via string) []sourcedRule {
	switch {
	case ref.Kind == "ClusterRole":
		for _, cr := range e.set.ClusterRoles {
			if cr.Name == ref.Name && cr.AggregationRule != nil {
				return e.aggregated(cr)
			}
			if cr.Name == ref.Name {
				return numbered(cr.Rules, "ClusterRole "+cr.Name, "")
			}
		}
	case ref.Kind == "Role" && ns != "":
		for _, r := range e.set.Roles {
			if r.Namespace == ns && r.Name == ref.Name {
				return numbered(r.Rules, "Role "+ns+"/"+ref.Name, "")
			}
		}
	default:
		return nil
	}
	e.dangling = append(e.dangling, fmt.Sprintf("%s references missing %s %s", via, ref.Kind, ref.Name))
	return nil
}

// aggregated collects the rules of the ClusterRoles an aggregating
// ClusterRole selects. The cluster's aggregation controller replaces the
// aggregating role's own rules with them, so those are not in force.
func (e *evaluation) aggregated(agg rbacv1.ClusterRole) []sourcedRule {
	var out []sourcedRule
	for _, sel := range agg.AggregationRule.ClusterRoleSelectors {
		selector, err := metav1.LabelSelectorAsSelector(&sel)
		if err != nil {
			continue
		}
		for _, cr := range e.set.ClusterRoles {
			if cr.Name != agg.Name && selector.Matches(labels.Set(cr.Labels)) {
				out = append(out, numbered(cr.Rules, "ClusterRole "+cr.Name, agg.Name)...)
			}
		}
	}
	return out
}

func numbered(rules []rbacv1.PolicyRule, role, into string) []sourcedRule {
	out := make([]sourcedRule, len(rules))
	for i, r := range rules {
		out[i] = sourcedRule{rule: r, index: i + 1, role: role, into: into}
	}
	return out
}

func (e *evaluation) denialReason() string {
	switch {
	case e.nearMiss != "":
		return e.nearMiss
	case !e.bound:
		return "no RoleBinding or ClusterRoleBinding applies to " + e.subj.User
	case len(e.dangling) > 0:
		return "no rule (" + strings.Join(e.dangling, "; ") + ")"
	default:
		return "no rule"
	}
}

// AppliesTo reports whether a binding's subjects include subj, as
// k8s.io/kubernetes pkg/registry/rbac/validation appliesToUser decides:
// User and Group subjects match by name, ServiceAccount subjects by
// namespace and name. bindingNamespace is the RoleBinding's namespace, which
// stands in for a ServiceAccount subject's missing one; it is "" for a
// ClusterRoleBinding, where such a subject matches nobody.
func AppliesTo(subj access.Subject, subjects []rbacv1.Subject, bindingNamespace string) bool {
	for _, s := range subjects {
		switch s.Kind {
		case rbacv1.UserKind:
			if subj.User == s.Name {
				return true
			}
		case rbacv1.GroupKind:
			if slices.Contains(subj.Groups, s.Name) {
				return true
			}
		case rbacv1.ServiceAccountKind:
			ns := cmp.Or(s.Namespace, bindingNamespace)
			if ns != "" && subj.User == "system:serviceaccount:"+ns+":"+s.Name {
				return true
			}
		}
	}
	return false
}
