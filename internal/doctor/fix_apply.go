package doctor

import (
	"context"
	"errors"
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/apply"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
	"github.com/dpfdoctor/dpfdoctor/internal/policy"
	"github.com/dpfdoctor/dpfdoctor/internal/verify"
)

// checkRights asks, with SelfSubjectAccessReviews, whether the user may do
// everything the fix does, records what verify compares against (the
// operator's ClusterRole and the must-stay-denied reviews as they are) and
// starts watching that ClusterRole from there.
func (f *fixRun) checkRights(ctx context.Context) error {
	f.logf("checking your rights …")
	p := f.plan
	needs := slices.DeleteFunc(append(apply.Needs(p), verify.Needs(p)...), f.evidenceMade)
	if err := apply.CheckRights(ctx, f.cl.Kube, p, needs); err != nil {
		f.r.Outcome = OutcomeNoRights
		return err
	}
	var err error
	if f.operatorRole, err = f.beforeRole(ctx); err != nil {
		return err
	}
	if len(p.Changes) > 0 {
		if f.watch, err = verify.WatchReconcile(ctx, f.cl, p, f.operatorRole); err != nil {
			return err
		}
	}
	f.deniedBefore, err = f.denied(ctx)
	return err
}

// denied answers the must-stay-denied requests as they stand before any
// change. The evidence read every RoleBinding in the DPF namespace and
// every ClusterRoleBinding that applies to the ServiceAccount, with their
// roles: what RBAC allows it there and cluster-wide is already known, and
// is evaluated on those objects with the evaluator verify uses. The rest
// (other namespaces, or RBAC the evidence could not read) is asked with
// access reviews.
func (f *fixRun) denied(ctx context.Context) (verify.Checks, error) {
	p, b := f.plan, f.bundle
	subj := p.Subject()
	known := b != nil && !slices.ContainsFunc([]string{"clusterrolebindings", "rolebindings", "clusterroles", "roles"}, b.HasGap) &&
		slices.ContainsFunc(b.Pods, func(pod evidence.Pod) bool { return pod.Subject().User == subj.User })
	var local verify.Checks
	var ask []access.Request
	for _, r := range p.MustStayDenied {
		if !known || (r.Namespace != "" && r.Namespace != p.Namespace) {
			ask = append(ask, r)
			continue
		}
		d := b.RBAC.Set().Evaluate(subj, r)
		local = append(local, verify.Check{Request: r, Allowed: d.Allowed, Reason: "evaluated on the RBAC objects the evidence read"})
	}
	asked, err := verify.Access(ctx, f.cl.Kube, subj, nil, ask)
	return append(local, asked...), err
}

// beforeRole is the operator's ClusterRole before any change: the
// evidence's copy when no prompt came between (it was read moments ago),
// else read now.
func (f *fixRun) beforeRole(ctx context.Context) (*rbacv1.ClusterRole, error) {
	if name := f.plan.OperatorClusterRole; name != "" && f.o.Confirm == nil && f.bundle != nil {
		for i, cr := range f.bundle.RBAC.ClusterRoles {
			if cr.Name == name && cr.ResourceVersion != "" {
				return &f.bundle.RBAC.ClusterRoles[i], nil
			}
		}
	}
	return verify.OperatorRole(ctx, f.cl, f.plan)
}

// evidenceMade reports whether the evidence made request r, and the API
// server answered: asking whether you may would ask the same again. That
// is so for an access review the evidence sent, and for its Node LIST
// (cluster-wide, filtered here) when it left no gap.
func (f *fixRun) evidenceMade(r access.Request) bool {
	b := f.bundle
	switch {
	case b == nil || r.Group != "" && r.Group != "authorization.k8s.io":
		return false
	case r.Verb == "create" && r.Resource == "subjectaccessreviews":
		return slices.ContainsFunc(b.Access, func(c evidence.AccessCheck) bool { return c.Method == evidence.MethodReview && c.Known() })
	case r.Verb == "list" && r.Resource == "nodes" && r.Name == "":
		return !b.HasGap("nodes")
	}
	return false
}

// apply backs up and writes the plan; the v25.4.0 pods are deleted once the
// backup is written and before the grant (see verify.Recovery).
func (f *fixRun) apply(ctx context.Context) error {
	ap := &apply.Applier{Clients: f.cl, Log: f.o.Log}
	if f.rec != nil && slices.ContainsFunc(f.plan.Restart, func(a plan.PodAction) bool { return a.Action == plan.ActionDelete && a.TouchNode }) {
		ap.BeforeWrite = f.quiesce
	}
	res, err := ap.Apply(ctx, f.backup)
	f.setBackup()
	f.r.Applied, f.r.NoOp, f.noOp = res.Applied, res.NoOp, res.NoOp
	switch {
	case errors.Is(err, policy.ErrRefused):
		f.r.Outcome = OutcomeRefused
		return err
	case err != nil:
		f.r.Outcome = OutcomeFailed
		return err
	}
	f.grantAt = f.o.Now()
	if y, yerr := f.plan.RBACYAML(); yerr == nil {
		f.r.AppliedYAML = string(y)
	}
	f.bring(ctx)
	return nil
}

func (f *fixRun) setBackup() { f.r.setBackup(f.backup, f.o.RollbackCommand) }
