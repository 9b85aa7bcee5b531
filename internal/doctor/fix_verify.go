package doctor

import (
	"context"
	"fmt"
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/apply"
	"github.com/dpfdoctor/dpfdoctor/internal/verify"
)

// verifyGrant proves the grant: every granted request evaluated on the
// objects as read back, and a bounded set of access reviews as the
// ServiceAccount (verify.MaxReviews in all, whatever the number of pods).
func (f *fixRun) verifyGrant(ctx context.Context) error {
	if len(f.plan.Changes) == 0 {
		return nil
	}
	live, err := verify.ReadBack(ctx, f.cl, f.plan)
	if err != nil {
		return err
	}
	// The reconcile's watches start from this read-back.
	if f.watch != nil && !f.noOp {
		if err := f.watch.Follow(ctx, live); err != nil {
			return err
		}
	}
	// The must-stay-denied set is asked once the grant is final, after the
	// operator's reconcile; here only when no reconcile follows. What was
	// allowed before any change is known from checkRights (f.denied).
	var deny []access.Request
	if f.noOp {
		deny = f.plan.MustStayDenied
	}
	s, err := f.grantStage(ctx, "after apply", live, deny, reviewSample, 1)
	f.r.AfterApply = s
	return err
}

// reviewSample is how many granted requests a round asks the API server
// about: with the must-stay-denied set and evidence's few reviews, a fix
// stays well under verify.MaxReviews.
const reviewSample = 8

// grantStage runs one verification round, with reviews for the denied
// requests deny and n granted ones (see verify.Pick); round numbers the
// rounds, so each samples other names.
func (f *fixRun) grantStage(ctx context.Context, name string, live []*unstructured.Unstructured, deny []access.Request, n int, round uint64) (Stage, error) {
	p := f.plan
	sample := verify.Pick(p.Expect, n, f.r.VerifySeed+round)
	f.logf("verifying %s: %d granted requests evaluated on the objects as read back, %d access reviews as %s …",
		name, len(p.Expect), len(sample)+len(deny), p.Subject().User)
	rd, err := verify.Grant(ctx, f.cl.Kube, p, live, sample, deny)
	if err != nil {
		return Stage{}, err
	}
	if len(sample) < len(p.Expect) {
		name = fmt.Sprintf("%s (%d of %d grants reviewed, seed %d)", name, len(sample), len(p.Expect), f.r.VerifySeed)
	}
	s := stage(name, rd.Checks, f.deniedBefore)
	s.Evaluated = rd.Evaluated
	for _, r := range rd.NotGranted {
		s.Problems = append(s.Problems, fmt.Sprintf("%s: dpfdoctor's objects as read back do not grant %s", name, r))
	}
	for _, m := range rd.Mismatches {
		s.Problems = append(s.Problems, fmt.Sprintf("%s: MISMATCH, the local RBAC evaluation cannot be trusted: %s", name, m))
	}
	f.r.Problems = append(f.r.Problems, s.Problems...)
	return s, nil
}

// reconcile proves, when something was written, that the grant survives an
// operator reconcile: apply requests one, verify watches and reads back,
// and the grant is verified again on what was read back.
func (f *fixRun) reconcile(ctx context.Context) error {
	p := f.plan
	if len(p.Changes) == 0 || f.noOp {
		return nil
	}
	f.logf("requesting an operator reconcile and watching for %s …", f.o.ReconcileWait)
	rc, live, err := f.watchReconcile(ctx)
	f.setBackup()
	if err != nil {
		return err
	}
	f.r.Reconcile = &rc
	f.r.Problems = append(f.r.Problems, reconcileProblems(rc, f.operatorRole)...)
	// One review per rule shape: every name is evaluated on the objects as
	// read back, and the first round showed that evaluation agrees with
	// the API server.
	start := f.o.Now()
	s, err := f.grantStage(ctx, "after the operator's reconcile", live, p.MustStayDenied, 0, 2)
	took := f.o.Now().Sub(start).Seconds()
	f.t.Verify, f.t.ReconcileWait = f.t.Verify+took, f.t.ReconcileWait-took // the step's time goes to ReconcileWait
	f.r.AfterReconcile = &s
	return err
}

// watchReconcile requests the reconcile (journalled, and withdrawn again
// afterwards), waits ReconcileWait while watching, and checks the objects.
func (f *fixRun) watchReconcile(ctx context.Context) (verify.ReconcileResult, []*unstructured.Unstructured, error) {
	w := f.watch
	start := f.o.Now()
	req, err := apply.RequestReconcile(ctx, f.cl, f.backup)
	defer func() { _ = req.Withdraw(context.WithoutCancel(ctx)) }()
	if err != nil {
		return verify.ReconcileResult{Paused: req.Paused}, nil, err
	}
	t := time.NewTimer(f.o.ReconcileWait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return verify.ReconcileResult{Paused: req.Paused, RequestedAt: req.RequestedAt}, nil, ctx.Err()
	case <-t.C:
	}
	waited := f.o.Now().Sub(start).Seconds()
	rc, err := w.Result(ctx, f.operatorRole)
	rc.Paused, rc.RequestedAt, rc.WaitedSeconds = req.Paused, req.RequestedAt, waited
	return rc, w.Live, err
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
