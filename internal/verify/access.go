// Package verify proves a fix: SubjectAccessReviews as the DMS
// ServiceAccount for every permission the plan grants (allowed) and for
// those that must stay denied; the grant still holding after the operator
// reconciled its inventory, with the operator's own objects untouched; and
// the affected pods back to Ready, watched rather than polled.
package verify

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/fanout"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
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
// deny (wanted denied), at most fanout.Limit at a time. The API server's
// RBAC authorizer reads its rules from a watch cache, so a review just
// after a write can still see the old rules: a wrong answer is asked
// again, with backoff, until Settle has passed. The first wanted-allowed
// request goes alone until it passes, so a lagging cache costs one review
// a round instead of all of them. An error is returned only when a review
// itself fails.
func Access(ctx context.Context, cs kubernetes.Interface, subject access.Subject, allow, deny []access.Request) (Checks, error) {
	out := make(Checks, 0, len(allow)+len(deny))
	for _, r := range allow {
		out = append(out, Check{Request: r, Want: true})
	}
	for _, r := range deny {
		out = append(out, Check{Request: r, Want: false})
	}
	ask := func(todo []int) error {
		return fanout.Each(len(todo), fanout.Limit, func(j int) error {
			c := &out[todo[j]]
			res, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, c.Request.SubjectAccessReview(subject), metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("review %s as %s: %w", c.Request, subject.User, kube.Classify(err))
			}
			c.Allowed, c.Reason = res.Status.Allowed, res.Status.Reason
			return nil
		})
	}
	deadline, pause := time.Now().Add(Settle), 50*time.Millisecond
	// settle asks todo, then again whichever of them is wrong, until none
	// is or the deadline has passed.
	settle := func(todo []int) error {
		for {
			if err := ask(todo); err != nil {
				return err
			}
			todo = slices.DeleteFunc(todo, func(i int) bool { return out[i].OK() })
			if len(todo) == 0 || time.Now().Add(pause).After(deadline) {
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(pause):
			}
			pause *= 2
		}
	}
	rest := make([]int, 0, len(out))
	for i := range out {
		rest = append(rest, i)
	}
	if len(allow) > 0 && len(out) > 1 {
		if err := settle([]int{0}); err != nil {
			return out, err
		}
		rest = rest[1:]
	}
	return out, settle(rest)
}

// Settle is how long Access asks again about a review whose answer is not
// the wanted one, for the authorizer's cache to catch up with a write.
var Settle = 3 * time.Second

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
			// Each watch starts from an object already read: a LIST only
			// when that object was absent or too old to watch from, which
			// the rules review answers in the namespace.
			g := dpf.MustGVR(dpf.GroupRBAC, kind)
			out = append(out, access.Request{Verb: "watch", Group: g.Group, Resource: g.Resource, Namespace: n})
			if n != "" {
				out = append(out, access.Request{Verb: "list", Group: g.Group, Resource: g.Resource, Namespace: n})
			}
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

// MaxReviews bounds the SubjectAccessReviews of one fix, whatever the
// number of pods: every granted name is checked locally instead (Grant).
const MaxReviews = 50

// Pick chooses the granted requests one round of reviews asks the API
// server about: the first of each rule shape (requests that differ only in
// their name), then a random sample of the rest drawn with seed, n in all
// (at least one per shape). The result is sorted.
func Pick(expect []access.Request, n int, seed uint64) []access.Request {
	shapes := map[string]bool{}
	var out, rest []access.Request
	for _, r := range access.Unique(expect) {
		k := r
		k.Name = ""
		if !shapes[k.Key()] {
			shapes[k.Key()] = true
			out = append(out, r)
			continue
		}
		rest = append(rest, r)
	}
	rng := rand.New(rand.NewPCG(seed, seed))
	rng.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	return access.Unique(append(out, rest[:max(0, min(len(rest), n-len(out)))]...))
}

// Round is one verification of the grant: every granted request evaluated
// against the plan's objects as read back from the server, with the RBAC
// evaluator lint uses, and a bounded set of access reviews.
type Round struct {
	Checks Checks `json:"checks"`
	// Evaluated counts the granted requests evaluated locally;
	// NotGranted lists those the objects as read back do not grant.
	Evaluated  int              `json:"evaluatedLocally"`
	NotGranted []access.Request `json:"notGranted,omitempty"`
	// Mismatches are sampled requests on which the local evaluation and
	// the API server disagree: the evaluation cannot be trusted for the
	// names that were not sampled.
	Mismatches []string `json:"mismatches,omitempty"`
}

// Grant verifies p's grant: live are the plan's objects as read back
// (ReadBack), every Expect is evaluated on them, and the reviews ask the
// API server about sample (see Pick) and deny.
func Grant(ctx context.Context, cs kubernetes.Interface, p *plan.Plan, live []*unstructured.Unstructured, sample, deny []access.Request) (Round, error) {
	set := &rbac.Set{}
	for _, u := range live {
		if u == nil {
			continue
		}
		obj, _ := rbac.NewObject(u.GetKind())
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, obj); err != nil {
			return Round{}, fmt.Errorf("read back %s: %w", plan.RefOf(u), err)
		}
		if err := set.Add(obj); err != nil {
			return Round{}, err
		}
	}
	subj := p.Subject()
	rd := Round{Evaluated: len(p.Expect)}
	local := map[string]bool{}
	for _, r := range p.Expect {
		if local[r.Key()] = set.Evaluate(subj, r).Allowed; !local[r.Key()] {
			rd.NotGranted = append(rd.NotGranted, r)
		}
	}
	var err error
	if rd.Checks, err = Access(ctx, cs, subj, sample, deny); err != nil {
		return rd, err
	}
	for _, c := range rd.Checks {
		if c.Want && local[c.Request.Key()] != c.Allowed {
			rd.Mismatches = append(rd.Mismatches, fmt.Sprintf("%s: local evaluation %s, API server %s",
				c.Request, Verdict(local[c.Request.Key()]), Verdict(c.Allowed)))
		}
	}
	return rd, nil
}

// ReadBack reads p's objects from the server, nil for one that is absent.
func ReadBack(ctx context.Context, cl *kube.Clients, p *plan.Plan) ([]*unstructured.Unstructured, error) {
	out := make([]*unstructured.Unstructured, len(p.Changes))
	for i, c := range p.Changes {
		var err error
		if out[i], err = getObject(ctx, cl, c.Ref()); err != nil {
			return nil, err
		}
	}
	return out, nil
}
