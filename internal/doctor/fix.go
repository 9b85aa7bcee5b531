// Package doctor is dpfdoctor's library facade: it runs the stages
// (evidence → diagnose → plan → policy → apply → verify) for one command,
// the way clusterctl's client drives its own.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/dpfdoctor/dpfdoctor/internal/apply"
	"github.com/dpfdoctor/dpfdoctor/internal/diagnose"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/outcome"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
	"github.com/dpfdoctor/dpfdoctor/internal/policy"
	"github.com/dpfdoctor/dpfdoctor/internal/verify"
)

// ErrDeclined is returned when the user answers no to the confirmation.
var ErrDeclined = errors.New("declined: nothing was changed")

// PlanOptions select what a plan is made for.
type PlanOptions struct {
	Clients *kube.Clients
	// Namespace DPF is installed in ("" = the clients' namespace, else
	// dpf-operator-system).
	Namespace string
	Nodes     []string
	// Scope is plan.ScopeNames (default) or plan.ScopeNamespace.
	Scope string
}

// Planned is a plan with what it was made from.
type Planned struct {
	Bundle    *evidence.Bundle
	Diagnosis *diagnose.Diagnosis
	Plan      *plan.Plan
	// Refused is the policy's refusal of the plan as the cluster is now
	// (nil: allowed). Apply asks the policy again before writing.
	Refused error
}

// Plan collects evidence, diagnoses and builds the fix plan. It changes
// nothing.
func Plan(ctx context.Context, o PlanOptions) (*Planned, error) {
	b, err := (&evidence.Collector{Clients: o.Clients}).Collect(ctx, evidence.Options{Namespace: o.Namespace, Nodes: o.Nodes})
	if err != nil {
		return nil, err
	}
	d := diagnose.Diagnose(b)
	p, err := plan.Build(plan.Input{Diagnosis: d, Bundle: b, Scope: o.Scope})
	if err != nil {
		return nil, err
	}
	out := &Planned{Bundle: b, Diagnosis: d, Plan: p}
	if len(p.Changes) > 0 {
		_, observed, err := (&apply.Applier{Clients: o.Clients}).Observe(ctx, p)
		if err != nil {
			return nil, err
		}
		out.Refused = policy.Check(p, observed)
	}
	return out, nil
}

// FixOptions configure Fix.
type FixOptions struct {
	PlanOptions
	// BackupRoot is where backups go (default ./dpfdoctor-backups).
	BackupRoot string
	// ReconcileWait is how long to give the operator after requesting a
	// reconcile (default 15 s).
	ReconcileWait time.Duration
	// Timeout bounds the wait for the pods (default 10 min).
	Timeout time.Duration
	// Log receives one line per step; Progress the pods' live progress.
	Log      io.Writer
	Progress io.Writer
	TTY      bool
	// Confirm is asked once the plan is known, before any change; nil
	// means yes.
	Confirm func(*plan.Plan) (bool, error)
	// RollbackCommand renders the command that undoes a backup.
	RollbackCommand func(dir string) string
	Now             func() time.Time
}

func (o *FixOptions) defaults() {
	if o.ReconcileWait <= 0 {
		o.ReconcileWait = 15 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RollbackCommand == nil {
		o.RollbackCommand = func(dir string) string { return "dpfdoctor rollback --backup " + dir }
	}
}

func (o *FixOptions) logf(format string, a ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", a...)
	}
}

// Fix plans, applies, verifies and recovers, and writes the report into
// the backup directory. The report is returned even with an error. The
// error wraps outcome.ErrProblems when problems remain (findings fix does
// not touch, a failed check, pods not Ready in time), the kube sentinels
// for access problems, and apply.ErrApplyFailed when a write failed (what
// was written has then been rolled back).
func Fix(ctx context.Context, o FixOptions) (*Report, error) {
	o.defaults()
	cl := o.Clients
	startReq := cl.Budget.Used()
	r := &Report{SchemaVersion: ReportSchema, Cluster: cl.Config.Host, StartedAt: o.Now().UTC().Format(time.RFC3339)}
	finish := func(err error) (*Report, error) {
		r.FinishedAt = o.Now().UTC().Format(time.RFC3339)
		r.Requests = cl.Budget.Used() - startReq
		if err == nil && len(r.Problems) > 0 {
			err = fmt.Errorf("%w: %s", outcome.ErrProblems, strings.Join(r.Problems, "; "))
		}
		if err != nil {
			r.Error = err.Error()
		}
		if r.BackupDir != "" {
			if werr := r.Write(r.BackupDir); werr != nil {
				err = errors.Join(err, werr)
			}
		}
		return r, err
	}

	o.logf("collecting evidence …")
	pl, err := Plan(ctx, o.PlanOptions)
	if err != nil {
		return finish(err)
	}
	p := pl.Plan
	r.Plan, r.PlanID, r.Version = p, p.ID, p.Version
	r.Before = summarize(pl.Diagnosis)
	for _, s := range p.Skipped {
		if len(s.Pods) > 0 {
			r.Problems = append(r.Problems, fmt.Sprintf("%s (%d pods) is not an RBAC problem; fix leaves it alone: %s", s.Code, len(s.Pods), s.NextStep))
		}
	}
	if pl.Refused != nil {
		r.Outcome = OutcomeRefused
		return finish(pl.Refused)
	}
	if p.Empty() {
		r.Outcome = OutcomeNothingToDo
		if len(r.Problems) > 0 {
			r.Outcome = OutcomeProblems
		}
		o.logf("nothing to do: no finding dpfdoctor can fix")
		return finish(nil)
	}
	if o.Confirm != nil {
		ok, err := o.Confirm(p)
		if err != nil {
			return finish(err)
		}
		if !ok {
			r.Outcome = OutcomeDeclined
			return finish(ErrDeclined)
		}
	}

	o.logf("checking your rights …")
	needs := append(apply.Needs(p), verify.Needs(p)...)
	if err := apply.CheckRights(ctx, cl.Kube, p, needs, 16); err != nil {
		r.Outcome = OutcomeRefused
		return finish(err)
	}
	before, err := verify.OperatorRole(ctx, cl, p)
	if err != nil {
		return finish(err)
	}
	deniedBefore, err := verify.Access(ctx, cl.Kube, p.Subject(), nil, p.MustStayDenied, 16)
	if err != nil {
		return finish(err)
	}

	backup := apply.NewBackup(o.BackupRoot, p, cl.Config.Host, o.Now)
	var rec *verify.Recovery
	if len(p.Restart) > 0 {
		rec, err = verify.StartRecovery(ctx, cl, verify.RecoverOptions{Namespace: p.Namespace, Actions: p.Restart, Timeout: o.Timeout,
			Progress: o.Progress, TTY: o.TTY, Recorder: backup, Now: o.Now})
		if err != nil {
			return finish(err)
		}
		defer rec.Stop()
	}
	// v25.4.0 pods are deleted before the grant (see verify.Recovery); if
	// anything fails after that, the Node events still bring them back.
	quiesced, recovered := false, false
	defer func() {
		if quiesced && !recovered {
			if err := rec.Release(context.WithoutCancel(ctx)); err != nil {
				o.logf("warning: could not send the Node events that bring the deleted pods back: %v", err)
			}
		}
	}()
	ap := &apply.Applier{Clients: cl, Log: o.Log}
	if rec != nil {
		ap.BeforeWrite = func(ctx context.Context) error {
			quiesced = true
			o.logf("deleting the v25.4.0 pods that need a Node event, before the grant …")
			return rec.Quiesce(ctx)
		}
	}
	res, err := ap.Apply(ctx, backup)
	r.setBackup(backup, o.RollbackCommand)
	r.Applied, r.NoOp = res.Applied, res.NoOp
	if err != nil {
		r.Outcome = OutcomeFailed
		return finish(err)
	}
	if y, yerr := p.RBACYAML(); yerr == nil {
		r.AppliedYAML = string(y)
	}

	if err := verifyGrant(ctx, o, p, r, backup, before, deniedBefore, res.NoOp); err != nil {
		return finish(err)
	}

	if rec != nil {
		o.logf("bringing %d pods back and watching them …", len(p.Restart))
		recovered = true
		rr, err := rec.Run(ctx)
		r.setBackup(backup, o.RollbackCommand)
		r.Recovery = &rr
		if err != nil {
			return finish(err)
		}
		if rr.Ready < rr.Total {
			r.Problems = append(r.Problems, fmt.Sprintf("recovery not reached: %d of %d pods Ready after %s", rr.Ready, rr.Total, o.Timeout))
			for _, pod := range rr.Pods {
				if !pod.Ready && pod.Note != "" {
					r.Problems = append(r.Problems, pod.Pod+": "+pod.Note)
				}
			}
		}
	}

	o.logf("diagnosing again …")
	after, err := Plan(ctx, o.PlanOptions)
	if err != nil {
		return finish(err)
	}
	r.After = summarize(after.Diagnosis)
	if r.Recovery == nil || r.Recovery.Ready == r.Recovery.Total {
		for _, f := range after.Diagnosis.Findings {
			if f.Fixable && len(f.Pods) > 0 {
				r.Problems = append(r.Problems, fmt.Sprintf("%s still reported for %d pods after the fix", f.Code, len(f.Pods)))
			}
		}
	}
	r.Outcome = OutcomeFixed
	if res.NoOp {
		r.Outcome = OutcomeAlreadyFixed
	}
	if len(r.Problems) > 0 {
		r.Outcome = OutcomeProblems
	}
	return finish(nil)
}

// verifyGrant proves the grant with access reviews as the ServiceAccount,
// and, when something was written, that it survives an operator reconcile.
func verifyGrant(ctx context.Context, o FixOptions, p *plan.Plan, r *Report, backup *apply.Backup,
	before *rbacv1.ClusterRole, deniedBefore verify.Checks, noOp bool) error {
	if len(p.Changes) == 0 {
		return nil
	}
	cl := o.Clients
	o.logf("verifying: %d access reviews as %s …", len(p.Expect)+len(p.MustStayDenied), p.Subject().User)
	checks, err := verify.Access(ctx, cl.Kube, p.Subject(), p.Expect, p.MustStayDenied, 16)
	if err != nil {
		return err
	}
	r.AfterApply = stage("after apply", checks, deniedBefore)
	r.Problems = append(r.Problems, r.AfterApply.Problems...)
	if noOp {
		return nil
	}
	o.logf("requesting an operator reconcile and watching for %s …", o.ReconcileWait)
	rc, err := verify.Reconcile(ctx, cl, verify.ReconcileOptions{Plan: p, Wait: o.ReconcileWait, Before: before, Recorder: backup, Now: o.Now})
	r.setBackup(backup, o.RollbackCommand)
	if err != nil {
		return err
	}
	r.Reconcile = &rc
	r.Problems = append(r.Problems, reconcileProblems(rc, before)...)
	// The objects were compared field by field above; the reviews are
	// repeated for a sample of each granted rule.
	sample := verify.Sample(p.Expect, 8)
	checks, err = verify.Access(ctx, cl.Kube, p.Subject(), sample, p.MustStayDenied, 16)
	if err != nil {
		return err
	}
	name := "after the operator's reconcile"
	if len(sample) < len(p.Expect) {
		name = fmt.Sprintf("after the operator's reconcile (%d of %d grants sampled)", len(sample), len(p.Expect))
	}
	s := stage(name, checks, deniedBefore)
	r.AfterReconcile = &s
	r.Problems = append(r.Problems, s.Problems...)
	return nil
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
