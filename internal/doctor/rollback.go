package doctor

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dpfdoctor/dpfdoctor/internal/apply"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
)

// DefaultPauseTimeout bounds the wait for a guard to acknowledge a pause.
const DefaultPauseTimeout = 2 * time.Minute

// RollbackOptions configure Rollback.
type RollbackOptions struct {
	Clients *kube.Clients
	// Dir is the backup directory.
	Dir string
	// Log receives one line per step.
	Log io.Writer
	// PauseGuard pauses a running guard in repair mode before rolling
	// back; without it, such a guard makes Rollback refuse with
	// apply.ErrGuardRepairing before any change.
	PauseGuard bool
	// PauseTimeout bounds the wait for the guard's acknowledgement
	// (default DefaultPauseTimeout).
	PauseTimeout time.Duration
}

// RollbackResult is what Rollback did.
type RollbackResult struct {
	apply.RollbackResult
	// Namespace is the backup's namespace.
	Namespace string
	// GuardPaused is the pause annotation's value when Rollback paused a
	// guard; the guard stays paused.
	GuardPaused string
}

// Rollback restores the state a backup recorded. A backup taken from
// another API server is refused with apply.ErrBadBackup before any change,
// and so is a rollback a running guard in repair mode would undo
// (apply.ErrGuardRepairing), unless o.PauseGuard pauses it first.
func Rollback(ctx context.Context, o RollbackOptions) (RollbackResult, error) {
	res := RollbackResult{RollbackResult: apply.RollbackResult{Dir: o.Dir}}
	l, err := apply.Load(o.Dir)
	if err != nil {
		return res, err
	}
	if host := o.Clients.Config.Host; l.Manifest.Server != "" && strings.TrimSuffix(l.Manifest.Server, "/") != strings.TrimSuffix(host, "/") {
		return res, fmt.Errorf("%w %s: it was taken from %s, not %s (pick that cluster with --kubeconfig/--context)",
			apply.ErrBadBackup, o.Dir, l.Manifest.Server, host)
	}
	a := &apply.Applier{Clients: o.Clients, Log: o.Log}
	res.Namespace = cmp.Or(l.Plan.Namespace, o.Clients.Namespace)
	if res.GuardPaused, err = holdGuard(ctx, a, res.Namespace, o); err != nil {
		return res, err
	}
	res.RollbackResult, err = a.Rollback(ctx, o.Dir)
	return res, err
}

// holdGuard refuses, or pauses and waits for, a running guard in repair
// mode. It returns the pause annotation's value when it paused one.
func holdGuard(ctx context.Context, a *apply.Applier, ns string, o RollbackOptions) (string, error) {
	g, err := a.FindGuard(ctx, ns, time.Now())
	if err != nil {
		return "", err
	}
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}
	for _, u := range g.Unknown {
		logf("warning: could not check for a running dpfdoctor guard: %s", u)
	}
	if !g.Repair {
		return "", nil
	}
	found := strings.Join(g.Found, "; ")
	if !o.PauseGuard {
		return "", fmt.Errorf("%w (%s): it would re-create the grant this rollback deletes, so nothing was changed. "+
			"Run rollback again with --pause-guard to pause the guard's repairs first, or stop the guard "+
			"(kubectl -n %s scale deployment/dpfdoctor-guard --replicas=0) or run it with --mode=observe", apply.ErrGuardRepairing, found, ns)
	}
	value := fmt.Sprintf("rollback of %s at %s", o.Dir, time.Now().UTC().Format(time.RFC3339Nano))
	logf("pausing the dpfdoctor guard (%s): annotating the DPFOperatorConfig %s=%q", found, apply.GuardPausedAnnotation, value)
	if _, err := a.PauseGuard(ctx, ns, &value); err != nil {
		return "", err
	}
	logf("waiting for the guard to acknowledge the pause (event %s) ...", apply.ReasonGuardPaused)
	if err := a.WaitGuardPaused(ctx, ns, value, cmp.Or(o.PauseTimeout, DefaultPauseTimeout)); err != nil {
		if _, rerr := a.PauseGuard(context.WithoutCancel(ctx), ns, nil); rerr != nil {
			logf("warning: could not remove the pause annotation again: %v", rerr)
		}
		return "", fmt.Errorf("the guard did not acknowledge the pause, so nothing was rolled back (the annotation is removed again): %w", err)
	}
	logf("the guard is paused: it diagnoses but does not repair")
	return value, nil
}
