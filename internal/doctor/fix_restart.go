package doctor

import (
	"context"
	"fmt"

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
	return f.rec.Quiesce(ctx)
}

// recover brings the pods back and watches them until Ready or the
// timeout.
func (f *fixRun) recover(ctx context.Context) error {
	if f.rec == nil {
		return nil
	}
	f.logf("bringing %d pods back and watching them …", len(f.plan.Restart))
	rr, err := f.rec.Run(ctx)
	f.setBackup()
	f.r.Recovery = &rr
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

// stopRecovery ends the watches. When the fix failed before recover, the
// Node events for the pods quiesce deleted still bring them back.
func (f *fixRun) stopRecovery(ctx context.Context, err error) {
	if f.watch != nil {
		f.watch.Stop()
	}
	if f.rec == nil {
		return
	}
	if err != nil {
		if rerr := f.rec.Release(context.WithoutCancel(ctx)); rerr != nil {
			f.logf("warning: could not send the Node events that bring the deleted pods back: %v", rerr)
		}
	}
	f.rec.Stop()
}
