package doctor

import (
	"context"
	"fmt"
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/dpfdoctor/dpfdoctor/internal/apply"
	"github.com/dpfdoctor/dpfdoctor/internal/verify"
)

// verifyGrant proves the grant with access reviews as the ServiceAccount.
func (f *fixRun) verifyGrant(ctx context.Context) error {
	p := f.plan
	if len(p.Changes) == 0 {
		return nil
	}
	f.logf("verifying: %d access reviews as %s …", len(p.Expect)+len(p.MustStayDenied), p.Subject().User)
	checks, err := verify.Access(ctx, f.cl.Kube, p.Subject(), p.Expect, p.MustStayDenied)
	if err != nil {
		return err
	}
	f.r.AfterApply = stage("after apply", checks, f.deniedBefore)
	f.r.Problems = append(f.r.Problems, f.r.AfterApply.Problems...)
	return nil
}

// reconcile proves, when something was written, that the grant survives an
// operator reconcile: apply requests one, verify watches and reads back,
// and the reviews are repeated for a sample of each granted rule.
func (f *fixRun) reconcile(ctx context.Context) error {
	p := f.plan
	if len(p.Changes) == 0 || f.noOp {
		return nil
	}
	f.logf("requesting an operator reconcile and watching for %s …", f.o.ReconcileWait)
	rc, err := f.watchReconcile(ctx)
	f.setBackup()
	if err != nil {
		return err
	}
	f.r.Reconcile = &rc
	f.r.Problems = append(f.r.Problems, reconcileProblems(rc, f.operatorRole)...)
	sample := verify.Sample(p.Expect, 8)
	checks, err := verify.Access(ctx, f.cl.Kube, p.Subject(), sample, p.MustStayDenied)
	if err != nil {
		return err
	}
	name := "after the operator's reconcile"
	if len(sample) < len(p.Expect) {
		name = fmt.Sprintf("after the operator's reconcile (%d of %d grants sampled)", len(sample), len(p.Expect))
	}
	s := stage(name, checks, f.deniedBefore)
	f.r.AfterReconcile = &s
	f.r.Problems = append(f.r.Problems, s.Problems...)
	return nil
}

// watchReconcile requests the reconcile (journalled, and withdrawn again
// afterwards), waits ReconcileWait while watching, and checks the objects.
func (f *fixRun) watchReconcile(ctx context.Context) (verify.ReconcileResult, error) {
	w, err := verify.WatchReconcile(ctx, f.cl, f.plan)
	if err != nil {
		return verify.ReconcileResult{}, err
	}
	defer w.Stop()
	start := f.o.Now()
	req, err := apply.RequestReconcile(ctx, f.cl, f.backup)
	defer func() { _ = req.Withdraw(context.WithoutCancel(ctx)) }()
	if err != nil {
		return verify.ReconcileResult{Paused: req.Paused}, err
	}
	t := time.NewTimer(f.o.ReconcileWait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return verify.ReconcileResult{Paused: req.Paused, RequestedAt: req.RequestedAt}, ctx.Err()
	case <-t.C:
	}
	waited := f.o.Now().Sub(start).Seconds()
	rc, err := w.Result(ctx, f.operatorRole)
	rc.Paused, rc.RequestedAt, rc.WaitedSeconds = req.Paused, req.RequestedAt, waited
	return rc, err
}

func reconcileProblems(rec verify.ReconcileResult, before *rbacv1.ClusterRole) []string {
	var out []string
	if !rec.ObjectsIntact {
		out = append(out, "dpfdoctor's objects changed during the operator's reconcile: "+strings.Join(rec.Drifted, ", "))
	}
	if before != nil && !rec.OperatorRoleUntouched && !rec.OperatorRoleMatchesRelease {
		out = append(out, "the operator's ClusterRole "+rec.OperatorRole+" changed while dpfdoctor watched")
	}
	return out
}
