package doctor

import (
	"context"
	"slices"

	"github.com/dpfdoctor/dpfdoctor/internal/apply"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
	"github.com/dpfdoctor/dpfdoctor/internal/verify"
)

// checkRights asks, with SelfSubjectAccessReviews, whether the user may do
// everything the fix does, and records what verify compares against: the
// operator's ClusterRole and the must-stay-denied reviews as they are.
func (f *fixRun) checkRights(ctx context.Context) error {
	f.logf("checking your rights …")
	p := f.plan
	if err := apply.CheckRights(ctx, f.cl.Kube, p, append(apply.Needs(p), verify.Needs(p)...)); err != nil {
		f.r.Outcome = OutcomeRefused
		return err
	}
	var err error
	if f.operatorRole, err = verify.OperatorRole(ctx, f.cl, p); err != nil {
		return err
	}
	f.deniedBefore, err = verify.Access(ctx, f.cl.Kube, p.Subject(), nil, p.MustStayDenied)
	return err
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
	if err != nil {
		f.r.Outcome = OutcomeFailed
		return err
	}
	if y, yerr := f.plan.RBACYAML(); yerr == nil {
		f.r.AppliedYAML = string(y)
	}
	return nil
}

func (f *fixRun) setBackup() { f.r.setBackup(f.backup, f.o.RollbackCommand) }
