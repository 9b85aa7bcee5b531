// Package verify proves a fix: SubjectAccessReviews as the DMS
// ServiceAccount for every permission the plan grants (allowed) and for
// those that must stay denied; the grant still holding after the operator
// reconciled its inventory, with the operator's own objects untouched; and
// the affected pods back to Ready, watched rather than polled.
package verify

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/fanout"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
)

// Check is one SubjectAccessReview and its verdict.
type Check struct {
	Request access.Request `json:"request"`
	Want    bool           `json:"want"` // true when the request must be allowed
	Allowed bool           `json:"allowed"`
	Reason  string         `json:"reason,omitempty"`
}

// OK reports whether the answer is the wanted one.
func (c Check) OK() bool { return c.Allowed == c.Want }

// String renders "allowed: get secrets/x in ns (want allowed)".
func (c Check) String() string {
	return fmt.Sprintf("%s %s (want %s)", Verdict(c.Allowed), c.Request, Verdict(c.Want))
}

// Verdict is "allowed" or "denied".
func Verdict(allowed bool) string { return map[bool]string{true: "allowed", false: "denied"}[allowed] }

// Checks is a list of verdicts.
type Checks []Check

// Failed returns the checks whose answer is not the wanted one.
func (cs Checks) Failed() Checks {
	var out Checks
	for _, c := range cs {
		if !c.OK() {
			out = append(out, c)
		}
	}
	return out
}

// Access asks, as subject, for every request in allow (wanted allowed) and
// deny (wanted denied), at most fanout.Limit at a time. An error is
// returned only when a review itself fails.
func Access(ctx context.Context, cs kubernetes.Interface, subject access.Subject, allow, deny []access.Request) (Checks, error) {
	out := make(Checks, 0, len(allow)+len(deny))
	for _, r := range allow {
		out = append(out, Check{Request: r, Want: true})
	}
	for _, r := range deny {
		out = append(out, Check{Request: r, Want: false})
	}
	err := fanout.Each(len(out), fanout.Limit, func(i int) error {
		c := &out[i]
		res, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, c.Request.SubjectAccessReview(subject), metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("review %s as %s: %w", c.Request, subject.User, kube.Classify(err))
		}
		c.Allowed, c.Reason = res.Status.Allowed, res.Status.Reason
		return nil
	})
	return out, err
}

// Needs lists the permissions verifying and recovering p take: access
// reviews, the reconcile trigger on the DPFOperatorConfig, watches on the
// RBAC objects, and the pod deletes and Node annotations of the restart.
func Needs(p *plan.Plan) []access.Request {
	ns := p.Namespace
	out := []access.Request{
		{Verb: "create", Group: "authorization.k8s.io", Resource: "subjectaccessreviews"},
		{Verb: "list", Resource: "pods", Namespace: ns},
		{Verb: "watch", Resource: "pods", Namespace: ns},
	}
	if len(p.Changes) > 0 {
		cfg := dpf.MustGVR(dpf.GroupOperator, "DPFOperatorConfig")
		watch := map[string]bool{"ClusterRole": true}
		for _, c := range p.Changes {
			watch[c.Ref().Kind] = true
		}
		out = append(out, access.Request{Verb: "get", Group: cfg.Group, Resource: cfg.Resource, Namespace: ns, Name: p.OperatorConfig},
			access.Request{Verb: "patch", Group: cfg.Group, Resource: cfg.Resource, Namespace: ns, Name: p.OperatorConfig})
		for _, kind := range []string{"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"} {
			if !watch[kind] {
				continue
			}
			n := ns
			if strings.HasPrefix(kind, "Cluster") {
				n = ""
			}
			g := dpf.MustGVR(dpf.GroupRBAC, kind)
			out = append(out, access.Request{Verb: "list", Group: g.Group, Resource: g.Resource, Namespace: n},
				access.Request{Verb: "watch", Group: g.Group, Resource: g.Resource, Namespace: n})
		}
	}
	// Asked without names: one review each however many pods there are.
	for _, a := range p.Restart {
		if a.Action == plan.ActionDelete {
			out = append(out, access.Request{Verb: "delete", Resource: "pods", Namespace: ns})
		}
		if a.TouchNode {
			out = append(out, access.Request{Verb: "list", Resource: "nodes"}, access.Request{Verb: "patch", Resource: "nodes"})
		}
	}
	return access.Unique(out)
}

// Sample keeps, of each group of requests that differ only in their name,
// at most perGroup spread evenly (always the first and the last), in the
// original order.
func Sample(rs []access.Request, perGroup int) []access.Request {
	perGroup = max(perGroup, 2)
	groups := map[string][]int{}
	for i, r := range rs {
		r.Name = ""
		groups[r.Key()] = append(groups[r.Key()], i)
	}
	keep := make([]bool, len(rs))
	for _, idx := range groups {
		if len(idx) <= perGroup {
			for _, i := range idx {
				keep[i] = true
			}
			continue
		}
		for j := range perGroup {
			keep[idx[j*(len(idx)-1)/(perGroup-1)]] = true
		}
	}
	out := make([]access.Request, 0, len(rs))
	for i, r := range rs {
		if keep[i] {
			out = append(out, r)
		}
	}
	return out
}
