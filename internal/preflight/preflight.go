// Package preflight checks, before a DPF upgrade, what the target
// version's dms-init (or host agent) will need against what the cluster will
// have after the upgrade: its ServiceAccount's permissions for every call
// of its call table (internal/dpf), the DPUDevice CRD as it is now (helm
// upgrade does not upgrade CRDs), the Issuer and Certificates its pods
// mount, the API server overrides and an operator that is not paused. It
// only reads: evidence's collector, plus SubjectAccessReviews with
// --rbac current. The grant it proposes is the fix plan's (internal/plan),
// so it is the same YAML `dpfdoctor fix -o yaml` prints.
package preflight

import (
	"context"
	"errors"
	"fmt"
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/fanout"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
)

// SchemaVersion identifies the Report's JSON/YAML layout.
const SchemaVersion = "dpfdoctor.dev/preflight/v1alpha1"

// Where the RBAC after the upgrade comes from (--rbac).
const (
	// RBACRelease: the operator re-applies the target release's inventory.
	RBACRelease = "release"
	// RBACCurrent: RBAC stays as it is now, asked with SubjectAccessReviews.
	RBACCurrent = "current"
	// RBACManifests: the new release's manifests, evaluated locally.
	RBACManifests = "manifests"
)

// Options select the target and the RBAC assumption.
type Options struct {
	// To is the target DPF version.
	To string
	// RBAC is RBACRelease (default), RBACCurrent or RBACManifests.
	RBAC string
	// Manifests and ManifestPaths hold the RBAC objects for RBACManifests;
	// AfterUpgrade rewrites the placeholder namespace in Manifests in place.
	Manifests     *rbac.Set
	ManifestPaths []string
	// Namespace DPF is installed in; "" as evidence.Options.
	Namespace string
}

// Run collects what the check needs and checks it. The request count does
// not grow with the number of nodes: evidence's lists, no logs, and one
// access question per call of the target's table.
func Run(ctx context.Context, cl *kube.Clients, o Options) (*Report, error) {
	target, err := dpf.Lookup(o.To)
	if err != nil {
		return nil, err
	}
	start := cl.Budget.Used()
	b, err := (&evidence.Collector{Clients: cl}).Collect(ctx, evidence.Options{Namespace: o.Namespace, MaxLogs: -1, Upgrade: true})
	if err != nil {
		return nil, err
	}
	ask := Local(AfterUpgrade(b, target, o.Manifests, o.RBAC))
	if o.RBAC == RBACCurrent {
		set := b.RBAC.Set()
		ask = func(p evidence.Pattern) (evidence.AccessCheck, error) { return review(ctx, cl, set, p) }
	}
	r, err := Evaluate(Input{Bundle: b, Target: target, RBAC: o.RBAC, ManifestPaths: o.ManifestPaths}, ask)
	if err != nil {
		return nil, err
	}
	r.Requests = cl.Budget.Used() - start
	return r, nil
}

// Evaluate answers the target's access questions (Patterns) with ask and
// checks what will break.
func Evaluate(in Input, ask func(evidence.Pattern) (evidence.AccessCheck, error)) (*Report, error) {
	var err error
	if in.Access, err = evidence.Answer(Patterns(in.Bundle, in.Target), fanout.Limit, ask); err != nil {
		return nil, err
	}
	return Check(in)
}

// review asks the API server, as the target's ServiceAccount; set (the
// RBAC objects evidence listed) only adds the nodes a per-name rule grants.
func review(ctx context.Context, cl *kube.Clients, set *rbac.Set, p evidence.Pattern) (evidence.AccessCheck, error) {
	c := p.Question(set)
	refused, err := evidence.Review(ctx, cl.Kube, &c)
	switch {
	case err != nil:
		return c, err
	case refused:
		req := access.Request{Verb: "create", Group: "authorization.k8s.io", Resource: "subjectaccessreviews"}
		return c, fmt.Errorf("%w: --rbac current needs %q", kube.ErrInsufficientRights, req.String())
	case !c.Known():
		return c, errors.New("review " + c.Request.String() + ": " + c.Error)
	case !c.Allowed:
		c.NodeOverrides = p.Overrides(set)
	}
	return c, nil
}

// Local answers patterns from RBAC objects, without a request.
func Local(set *rbac.Set) func(evidence.Pattern) (evidence.AccessCheck, error) {
	return func(p evidence.Pattern) (evidence.AccessCheck, error) {
		c := p.Question(set)
		d := set.Evaluate(p.Subject, c.Request)
		c.Allowed, c.Method, c.Reason = d.Allowed, evidence.MethodRBACObjects, d.By
		if !d.Allowed {
			c.Reason = d.Reason
			c.NodeOverrides = p.Overrides(set)
		}
		return c, nil
	}
}

// Patterns are the target's access questions: each call of its call table
// in Kubernetes mode (the operator passes --external-certificate TODO, so
// no Secret read and no Certificate write) as its ServiceAccount, for every
// node. GET /version is open to every client and skipped.
func Patterns(b *evidence.Bundle, target dpf.Release) []evidence.Pattern {
	if target.ServiceAccount == "" {
		return nil
	}
	ns := b.Install.Namespace
	subj := access.ServiceAccount(ns, target.ServiceAccount)
	nodes := Nodes(b)
	seen := map[string]bool{}
	var out []evidence.Pattern
	for _, c := range dpf.Calls(target.Script, false) {
		k := evidence.CheckKey(subj.User, c, ns)
		if c.NonResourceURL != "" || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, evidence.Pattern{Key: k, Subject: subj, Call: c, Namespace: ns, Nodes: nodes})
	}
	return out
}

// AfterUpgrade is the RBAC the cluster will have after the upgrade: the
// objects evidence listed that are not in the operator's inventory (they
// survive; RBAC is additive), plus the target release's inventory
// (RBACRelease) or the given manifests with the operator's placeholder
// namespace rewritten to the DPF namespace (RBACManifests).
func AfterUpgrade(b *evidence.Bundle, target dpf.Release, manifests *rbac.Set, source string) *rbac.Set {
	ns := b.Install.Namespace
	cur := b.RBAC.Set()
	inInventory := func(m metav1.ObjectMeta) bool { return m.Labels[dpf.ApplySetPartOfLabel] != "" }
	out := &rbac.Set{
		Roles:               slices.DeleteFunc(slices.Clone(cur.Roles), func(r rbacv1.Role) bool { return inInventory(r.ObjectMeta) }),
		ClusterRoles:        slices.DeleteFunc(slices.Clone(cur.ClusterRoles), func(r rbacv1.ClusterRole) bool { return inInventory(r.ObjectMeta) }),
		RoleBindings:        slices.DeleteFunc(slices.Clone(cur.RoleBindings), func(r rbacv1.RoleBinding) bool { return inInventory(r.ObjectMeta) }),
		ClusterRoleBindings: slices.DeleteFunc(slices.Clone(cur.ClusterRoleBindings), func(r rbacv1.ClusterRoleBinding) bool { return inInventory(r.ObjectMeta) }),
	}
	if source == RBACManifests {
		m := &rbac.Set{}
		m.Merge(manifests)
		m.SetDefaultNamespace(ns)
		m.RewriteNamespace(dpf.PlaceholderNamespace, ns)
		out.Merge(m)
		return out
	}
	if role, binding := target.InventoryRBAC(ns); role != nil {
		out.ClusterRoles = append(out.ClusterRoles, *role)
		out.ClusterRoleBindings = append(out.ClusterRoleBindings, *binding)
	}
	return out
}
