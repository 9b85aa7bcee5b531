package doctor

import (
	"context"
	"fmt"
	"time"

	"github.com/dpfdoctor/dpfdoctor/internal/apply"
	"github.com/dpfdoctor/dpfdoctor/internal/verify"
)

// startRecovery opens the backup and, when pods are to be restarted, starts
// watching them: verify decides the restarts from its watches, and
// apply.Restarts makes them, journalled in the backup.
func (f *fixRun) startRecovery(ctx context.Context) error {
	p := f.plan
	f.backup = apply.NewBackup(f.o.BackupRoot, p, f.cl.Config.Host, f.o.Now)
	if len(p.Restart) == 0 {
		return nil
	}
	rec, err := verify.StartRecovery(ctx, f.cl, verify.RecoverOptions{Namespace: p.Namespace, Actions: p.Restart, Timeout: f.o.Timeout,
		Progress: f.o.Progress, TTY: f.o.TTY, Effects: apply.NewRestarts(f.cl, f.backup)})
	f.rec = rec
	return err
}

// quiesce deletes, before the grant, the v25.4.0 pods that need a Node
// event to come back.
func (f *fixRun) quiesce(ctx context.Context) error {
	f.logf("deleting the v25.4.0 pods that need a Node event, before the grant …")
	start := f.o.Now()
	defer func() { f.t.Apply -= f.o.Now().Sub(start).Seconds() }() // Restart's, not Apply's
	return f.rec.Quiesce(ctx)
}

// bring starts, once the grant is in place, the restarts and the watch
// until the pods are Ready. They need nothing the verification or the
// operator's reconcile finds, so they run beside them and recover waits
// for the result; a failure there cancels them (stopRecovery).
func (f *fixRun) bring(ctx context.Context) {
	if f.rec == nil {
		return
	}
	f.logf("bringing %d pods back and watching them …", len(f.plan.Restart))
	ctx, f.stopRun = context.WithCancel(ctx)
	f.ran = make(chan struct{})
	go func() {
		defer close(f.ran)
		f.recRes, f.recErr = f.rec.Run(ctx)
	}()
}

// recover waits until the pods are Ready or the timeout.
func (f *fixRun) recover(context.Context) error {
	if f.ran == nil {
		return nil
	}
	<-f.ran
	rr, err := f.recRes, f.recErr
	f.setBackup()
	f.r.Recovery = &rr
	f.t.Recovery = rr.Seconds
	if err != nil {
		return err
	}
	if rr.Ready < rr.Total {
		f.r.Problems = append(f.r.Problems, fmt.Sprintf("recovery not reached: %d of %d pods Ready after %s", rr.Ready, rr.Total, f.o.Timeout))
		for _, pod := range rr.Pods {
			if !pod.Ready && pod.Note != "" {
				f.r.Problems = append(f.r.Problems, pod.Pod+": "+pod.Note)
			}
		}
	}
	return nil
}

// stopRecovery ends the watches. When the fix failed before the recovery
// sent them all, the Node events for the pods quiesce deleted still bring
// them back.
func (f *fixRun) stopRecovery(ctx context.Context, err error) {
	if f.watch != nil {
		f.watch.Stop()
	}
	if f.rec == nil {
		return
	}
	if f.ran != nil {
		f.stopRun()
		<-f.ran
	}
	if err != nil && f.rec.NeedsRelease() {
		f.logf("sending the Node events that bring back the pods deleted before the grant (after their deletion completes, up to a minute) …")
		// Release waits up to a minute; its writes get one more. A second
		// Ctrl-C ends the process.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if rerr := f.rec.Release(rctx); rerr != nil {
			f.logf("warning: could not send the Node events that bring the deleted pods back: %v; their DMS pods come back at the kubelet's next Node status report, or run `dpfdoctor fix --apply` again", rerr)
		} else {
			f.logf("the deleted pods come back as they were; `dpfdoctor rollback --latest` removes the Node annotations that brought them back")
		}
	}
	f.rec.Stop()
}

// timings are the phases as timed, with the restarts and the time to all
// Ready from the recovery.
func (f *fixRun) timings() *Timings {
	t := f.t
	for _, d := range []*float64{&t.Plan, &t.Apply, &t.ReconcileWait} {
		*d = max(0, *d) // a step's time less a part timed apart
	}
	if f.rec == nil {
		return &t
	}
	first, last := f.rec.Restarts()
	if !first.IsZero() {
		t.Restart = last.Sub(first).Seconds()
	}
	rr := f.r.Recovery
	if rr == nil || rr.Total == 0 || rr.Ready < rr.Total {
		return &t
	}
	var lastReady time.Time
	for _, p := range rr.Pods {
		if at, err := time.Parse(time.RFC3339Nano, p.ReadyAt); err == nil && at.After(lastReady) {
			lastReady = at
		}
	}
	if !f.grantAt.IsZero() {
		t.GrantToAllReady = max(0, lastReady.Sub(f.grantAt).Seconds())
	}
	if !first.IsZero() {
		t.RestartToAllReady = max(0, lastReady.Sub(first).Seconds())
	}
	return &t
}
