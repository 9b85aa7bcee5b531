package apply

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/fanout"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
)

// Needs lists the permissions applying p and rolling it back take: read,
// create, patch and delete on each target.
func Needs(p *plan.Plan) []access.Request {
	var out []access.Request
	for _, c := range p.Changes {
		ref := c.Ref()
		g, err := gvr(ref)
		if err != nil {
			continue
		}
		for _, verb := range []string{"get", "patch", "delete"} {
			out = append(out, access.Request{Verb: verb, Group: g.Group, Resource: g.Resource, Namespace: ref.Namespace, Name: ref.Name})
		}
		out = append(out, access.Request{Verb: "create", Group: g.Group, Resource: g.Resource, Namespace: ref.Namespace})
	}
	return access.Unique(out)
}

// escalationProof is what lets a user write roles granting permissions it
// does not hold itself: escalate on the roles and bind on them.
func escalationProof(p *plan.Plan) []access.Request {
	var out []access.Request
	for _, c := range p.Changes {
		if ref := c.Ref(); ref.Kind == "Role" || ref.Kind == "ClusterRole" {
			g, _ := gvr(ref)
			out = append(out,
				access.Request{Verb: "escalate", Group: rbacv1.GroupName, Resource: g.Resource, Namespace: ref.Namespace, Name: ref.Name},
				access.Request{Verb: "bind", Group: rbacv1.GroupName, Resource: g.Resource, Namespace: ref.Namespace, Name: ref.Name})
		}
	}
	return access.Unique(out)
}

// CheckRights asks the API server, with SelfSubjectAccessReviews, whether
// the current user may make every request in needs, and may grant what the
// plan grants: either it holds those permissions itself, or it may escalate
// and bind the plan's roles. It returns an error wrapping
// kube.ErrInsufficientRights that names every missing permission, and
// changes nothing.
func CheckRights(ctx context.Context, cs kubernetes.Interface, p *plan.Plan, needs []access.Request) error {
	rules := selfRules(ctx, cs, p.Namespace)
	missing, err := selfReview(ctx, cs, rules, needs)
	if err != nil {
		return err
	}
	if len(p.Changes) > 0 {
		esc, err := selfReview(ctx, cs, rules, escalationProof(p))
		if err != nil {
			return err
		}
		if len(esc) > 0 {
			// Without escalate/bind the user must hold every granted
			// permission itself.
			held, err := selfReview(ctx, cs, rules, p.Expect)
			if err != nil {
				return err
			}
			if len(held) > 0 {
				missing = append(missing, esc...)
				missing = append(missing, held...)
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	missing = access.Unique(missing)
	names := make([]string, len(missing))
	for i, m := range missing {
		names[i] = m.String()
	}
	sort.Strings(names)
	return &RightsError{Missing: missing, text: fmt.Sprintf("%v: nothing was changed; you may not: %s", kube.ErrInsufficientRights, strings.Join(names, "; "))}
}

// RightsError names the permissions the user lacks.
type RightsError struct {
	Missing []access.Request
	text    string
}

func (e *RightsError) Error() string { return e.text }

// Unwrap makes errors.Is(err, kube.ErrInsufficientRights) hold.
func (e *RightsError) Unwrap() error { return kube.ErrInsufficientRights }

// self is the subject selfRules binds the rules review's rules to.
var self = access.Subject{User: "dpfdoctor:self"}

// selfRules is what one SelfSubjectRulesReview says the user may do in ns,
// as a set for the RBAC evaluator; nil when the review fails.
func selfRules(ctx context.Context, cs kubernetes.Interface, ns string) *rbac.Set {
	res, err := cs.AuthorizationV1().SelfSubjectRulesReviews().Create(ctx,
		&authorizationv1.SelfSubjectRulesReview{Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: ns}}, metav1.CreateOptions{})
	if err != nil {
		return nil
	}
	meta := metav1.ObjectMeta{Name: self.User, Namespace: ns}
	role := rbacv1.Role{ObjectMeta: meta}
	for _, r := range res.Status.ResourceRules {
		role.Rules = append(role.Rules, rbacv1.PolicyRule{Verbs: r.Verbs, APIGroups: r.APIGroups, Resources: r.Resources, ResourceNames: r.ResourceNames})
	}
	return &rbac.Set{Roles: []rbacv1.Role{role}, RoleBindings: []rbacv1.RoleBinding{{ObjectMeta: meta,
		RoleRef: rbacv1.RoleRef{Kind: "Role", Name: self.User}, Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: self.User}}}}}
}

// selfReview returns the requests the user may not make. A namespaced
// request that rules (selfRules, one rules review for the plan's namespace)
// covers is allowed: a rules review lists what RBAC grants, so only a
// webhook authorizer that denies outright could disagree, and the write
// would then fail and be rolled back. The rest are asked with
// SelfSubjectAccessReviews, so their number does not grow with the plan.
func selfReview(ctx context.Context, cs kubernetes.Interface, rules *rbac.Set, reqs []access.Request) ([]access.Request, error) {
	reqs = slices.DeleteFunc(slices.Clone(reqs), func(r access.Request) bool {
		return rules != nil && r.Namespace != "" && r.Namespace == rules.Roles[0].Namespace && rules.Evaluate(self, r).Allowed
	})
	allowed := make([]bool, len(reqs))
	err := fanout.Each(len(reqs), fanout.Limit, func(i int) error {
		res, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, reqs[i].SelfSubjectAccessReview(), metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("check your rights (%s): %w", reqs[i], kube.Classify(err))
		}
		allowed[i] = res.Status.Allowed
		return nil
	})
	var denied []access.Request
	for i, r := range reqs {
		if !allowed[i] {
			denied = append(denied, r)
		}
	}
	return denied, err
}
