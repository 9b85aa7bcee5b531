// Package doctor is dpfdoctor's library facade: it runs the stages
// (evidence → diagnose → plan → policy → apply → verify) for one command,
// the way clusterctl's client drives its own.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/dpfdoctor/dpfdoctor/internal/apply"
	"github.com/dpfdoctor/dpfdoctor/internal/buildinfo"
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
	Scope     string // plan.ScopeNames (default) or plan.ScopeNamespace
	Restart   string // plan.RestartAuto (default), plan.RestartDelete or plan.RestartNone
}

// Planned is a plan with what it was made from.
type Planned struct {
	Bundle    *evidence.Bundle
	Diagnosis *diagnose.Diagnosis
	Plan      *plan.Plan
	// Refused is the policy's refusal of the plan as the cluster is now
	// (nil: allowed). Apply asks the policy again before writing.
	Refused error
	took    time.Duration // collecting and diagnosing
}

// planLogBudget is the most failing pods whose logs a plan reads one by one
// (see evidence.Options.LogBudget).
const planLogBudget = 8

// collect gathers the evidence a plan needs and diagnoses it; with prev,
// it collects again only what a fix changes (evidence.Collector.Refresh),
// with pods as a watch holds them when given.
func collect(ctx context.Context, o PlanOptions, prev *evidence.Bundle, pods []*corev1.Pod) (*evidence.Bundle, *diagnose.Diagnosis, error) {
	// A plan needs each failure signature, not every pod's log: evidence
	// samples per signature and reads the whole signature when the sample
	// disagrees.
	c, eo := &evidence.Collector{Clients: o.Clients}, evidence.Options{Namespace: o.Namespace, Nodes: o.Nodes, LogBudget: planLogBudget, Pods: pods}
	var b *evidence.Bundle
	var err error
	if prev != nil {
		b, err = c.Refresh(ctx, prev, eo)
	} else {
		b, err = c.Collect(ctx, eo)
	}
	if err != nil {
		return nil, nil, err
	}
	return b, diagnose.Diagnose(b), nil
}

// Plan collects evidence, diagnoses and builds the fix plan. It changes
// nothing.
func Plan(ctx context.Context, o PlanOptions) (*Planned, error) {
	return makePlan(ctx, o, true)
}

// makePlan is Plan; observe asks the policy now, which apply does again
// right before writing.
func makePlan(ctx context.Context, o PlanOptions, observe bool) (*Planned, error) {
	start := time.Now()
	b, d, err := collect(ctx, o, nil, nil)
	if err != nil {
		return nil, err
	}
	took := time.Since(start)
	p, err := plan.Build(plan.Input{Diagnosis: d, Bundle: b, Scope: o.Scope, Restart: o.Restart})
	if err != nil {
		return nil, err
	}
	out := &Planned{Bundle: b, Diagnosis: d, Plan: p, took: took}
	if observe && len(p.Changes) > 0 {
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
	BackupRoot string // where backups go (default ./dpfdoctor-backups)
	// ReconcileWait is how long to give the operator after requesting a
	// reconcile (default 15 s).
	ReconcileWait time.Duration
	Timeout       time.Duration // bounds the wait for the pods (default 10 min)
	Log           io.Writer     // one line per step
	Progress      io.Writer     // the pods' live progress
	TTY           bool
	// Confirm is asked once the plan is known, before any change; nil
	// means yes.
	Confirm func(*plan.Plan) (bool, error)
	// RollbackCommand renders the command that undoes a backup.
	RollbackCommand func(dir string) string
	Now             func() time.Time
	// Seed seeds the sample of granted names the access reviews ask about
	// (0: from the clock); the report records it.
	Seed uint64
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
	if o.Seed == 0 {
		o.Seed = uint64(o.Now().UnixNano())
	}
	if o.RollbackCommand == nil {
		o.RollbackCommand = func(dir string) string { return "dpfdoctor rollback --backup " + dir }
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
	if o.Log != nil && o.Progress != nil {
		// The recovery's progress runs beside the steps' lines.
		mu := &sync.Mutex{}
		o.Log, o.Progress = lockedWriter{mu, o.Log}, lockedWriter{mu, o.Progress}
	}
	f := &fixRun{o: o, cl: o.Clients, startReq: o.Clients.Budget.Used(), startWait: o.Clients.Budget.Waited(),
		r: &Report{SchemaVersion: ReportSchema, Cluster: o.Clients.Config.Host, Tool: buildinfo.Get().Version, StartedAt: o.Now().UTC().Format(time.RFC3339), VerifySeed: o.Seed}}
	err := f.run(ctx)
	f.stopRecovery(ctx, err)
	return f.report(err)
}

// fixRun is one fix: its options, what the steps found, and the report
// they fill in.
type fixRun struct {
	o         FixOptions
	cl        *kube.Clients
	startReq  int64
	startWait time.Duration
	r         *Report

	plan   *plan.Plan
	bundle *evidence.Bundle // the evidence the plan was made from
	// operatorRole and deniedBefore are the operator's ClusterRole and the
	// must-stay-denied reviews before any change.
	operatorRole *rbacv1.ClusterRole
	deniedBefore verify.Checks
	backup       *apply.Backup
	watch        *verify.ReconcileWatch // follows the operator's ClusterRole and dpfdoctor's objects
	rec          *verify.Recovery
	noOp         bool

	t       Timings
	grantAt time.Time // when the grant was written
	// The recovery runs from the grant on (bring); recover waits for it.
	stopRun context.CancelFunc
	ran     chan struct{}
	recRes  verify.RecoverResult
	recErr  error
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// errDone ends a fix early without an error: there is nothing to do.
var errDone = errors.New("nothing to do")

// run runs the steps in order until one fails or there is nothing to do,
// and times each into its phase.
func (f *fixRun) run(ctx context.Context) error {
	t := &f.t
	for _, s := range []struct {
		step  func(context.Context) error
		phase *float64
	}{
		{f.makePlan, &t.Plan}, {f.confirm, nil}, {f.checkRights, &t.Plan}, {f.startRecovery, &t.Plan}, {f.apply, &t.Apply},
		{f.verifyGrant, &t.Verify}, {f.reconcile, &t.ReconcileWait}, {f.recover, nil}, {f.rediagnose, &t.Verify},
	} {
		start := f.o.Now()
		err := s.step(ctx)
		if s.phase != nil {
			*s.phase += f.o.Now().Sub(start).Seconds()
		}
		if errors.Is(err, errDone) {
			return nil
		} else if err != nil {
			return err
		}
	}
	return nil
}

func (f *fixRun) logf(format string, a ...any) {
	if f.o.Log != nil {
		fmt.Fprintf(f.o.Log, format+"\n", a...)
	}
}

// makePlan collects, diagnoses and plans, and stops when the policy
// refuses or there is nothing to fix.
func (f *fixRun) makePlan(ctx context.Context) error {
	f.logf("collecting evidence …")
	// Without a prompt, apply asks the policy moments later on what it
	// reads before writing: asking here too would read the same objects
	// twice.
	pl, err := makePlan(ctx, f.o.PlanOptions, f.o.Confirm != nil)
	if err != nil {
		return err
	}
	p, r := pl.Plan, f.r
	f.plan, f.bundle = p, pl.Bundle
	f.t.Evidence = pl.took.Seconds()
	f.t.Plan -= f.t.Evidence // the step's time goes to Plan
	r.Plan, r.PlanID, r.Version = p, p.ID, p.Version
	r.Before = summarize(pl.Diagnosis)
	for _, s := range p.Skipped {
		if len(s.Pods) > 0 {
			r.Problems = append(r.Problems, fmt.Sprintf("%s (%d pods) is not an RBAC problem; fix leaves it alone: %s", s.Code, len(s.Pods), s.NextStep))
		}
	}
	if pl.Refused != nil {
		r.Outcome = OutcomeRefused
		return pl.Refused
	}
	if p.Empty() {
		r.Outcome = OutcomeNothingToDo
		if len(r.Problems) > 0 {
			r.Outcome = OutcomeProblems
		}
		f.logf("nothing to do: no finding dpfdoctor can fix")
		return errDone
	}
	return nil
}

// confirm asks the user, once the plan is known.
func (f *fixRun) confirm(context.Context) error {
	if f.o.Confirm == nil {
		return nil
	}
	ok, err := f.o.Confirm(f.plan)
	if err != nil {
		return err
	}
	if !ok {
		f.r.Outcome = OutcomeDeclined
		return ErrDeclined
	}
	return nil
}

// rediagnose collects and diagnoses again, and settles the outcome.
func (f *fixRun) rediagnose(ctx context.Context) error {
	f.logf("diagnosing again …")
	prev, err := f.lastRead()
	if err != nil {
		return err
	}
	var pods []*corev1.Pod
	if f.rec != nil {
		pods = f.rec.Pods() // the recovery watches them: no LIST again
	}
	_, after, err := collect(ctx, f.o.PlanOptions, prev, pods)
	if err != nil {
		return err
	}
	r := f.r
	r.After = summarize(after)
	if r.Recovery == nil || r.Recovery.Ready == r.Recovery.Total {
		for _, fd := range after.Findings {
			if fd.Fixable && len(fd.Pods) > 0 {
				r.Problems = append(r.Problems, fmt.Sprintf("%s still reported for %d pods after the fix", fd.Code, len(fd.Pods)))
			}
		}
	}
	r.Outcome = OutcomeFixed
	if f.noOp {
		r.Outcome = OutcomeAlreadyFixed
	}
	if len(r.Problems) > 0 {
		r.Outcome = OutcomeProblems
	}
	return nil
}

// lastRead is the plan's evidence with dpfdoctor's objects and the
// operator's ClusterRole as the reconcile's watches saw them last: what a
// second collection would read again, and the rest a fix does not touch.
func (f *fixRun) lastRead() (*evidence.Bundle, error) {
	w := f.watch
	if w == nil || w.Live == nil {
		return f.bundle, nil
	}
	b := *f.bundle
	rb := &b.RBAC
	rb.ClusterRoles, rb.ClusterRoleBindings = slices.Clone(rb.ClusterRoles), slices.Clone(rb.ClusterRoleBindings)
	rb.Roles, rb.RoleBindings = slices.Clone(rb.Roles), slices.Clone(rb.RoleBindings)
	if w.Role != nil {
		rb.ClusterRoles = put(rb.ClusterRoles, w.Role.Name, w.Role)
	}
	for i, c := range f.plan.Changes {
		ref, u := c.Ref(), w.Live[i]
		var err error
		switch ref.Kind {
		case "Role":
			rb.Roles, err = putLive(rb.Roles, ref, u)
		case "RoleBinding":
			rb.RoleBindings, err = putLive(rb.RoleBindings, ref, u)
		case "ClusterRole":
			rb.ClusterRoles, err = putLive(rb.ClusterRoles, ref, u)
		case "ClusterRoleBinding":
			rb.ClusterRoleBindings, err = putLive(rb.ClusterRoleBindings, ref, u)
		}
		if err != nil {
			return nil, err
		}
	}
	return &b, nil
}

// putLive replaces ref in objs with u converted (or drops it when u is nil).
func putLive[T any, P interface {
	*T
	metav1.Object
}](objs []T, ref plan.ObjectRef, u *unstructured.Unstructured) ([]T, error) {
	if u == nil {
		return put[T, P](objs, ref.Name, nil), nil
	}
	var obj T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &obj); err != nil {
		return nil, fmt.Errorf("read back %s: %w", ref, err)
	}
	P(&obj).SetManagedFields(nil)
	return put[T, P](objs, ref.Name, &obj), nil
}

// put replaces the object named name in objs with obj, appends it, or,
// when obj is nil, drops it. objs hold one namespace's objects.
func put[T any, P interface {
	*T
	metav1.Object
}](objs []T, name string, obj *T) []T {
	objs = slices.DeleteFunc(objs, func(o T) bool { return P(&o).GetName() == name })
	if obj != nil {
		objs = append(objs, *obj)
	}
	return objs
}

// report finishes the report, writes it into the backup directory if there
// is one, and returns it with the fix's error.
func (f *fixRun) report(err error) (*Report, error) {
	r := f.r
	r.FinishedAt = f.o.Now().UTC().Format(time.RFC3339)
	r.Requests = f.cl.Budget.Used() - f.startReq
	r.WaitedSeconds = (f.cl.Budget.Waited() - f.startWait).Seconds()
	r.Seconds = f.timings()
	if err == nil && len(r.Problems) > 0 {
		err = fmt.Errorf("%w: %s", outcome.ErrProblems, strings.Join(r.Problems, "; "))
	}
	if err != nil {
		r.Error = err.Error()
		switch {
		case errors.Is(err, context.Canceled) && r.Outcome != OutcomeDeclined:
			r.Outcome = OutcomeInterrupted
		case r.Outcome == "":
			r.Outcome = OutcomeFailed
		}
	}
	if r.BackupDir != "" {
		if werr := r.Write(r.BackupDir); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	return r, err
}
