package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/dpfdoctor/dpfdoctor/internal/apply"
	"github.com/dpfdoctor/dpfdoctor/internal/doctor"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
)

// RollbackOptions are the flags of `dpfdoctor rollback`.
type RollbackOptions struct {
	genericiooptions.IOStreams

	Backup     string
	Latest     bool
	BackupRoot string
	PauseGuard bool

	kf *genericclioptions.ConfigFlags
}

const rollbackLong = `Undo a ` + "`dpfdoctor fix --apply`" + ` exactly, from its backup directory: delete the
objects it created, restore those it changed, and remove the annotations it
set on Nodes and the DPFOperatorConfig (or restore their earlier values).
Only dpfdoctor-managed RBAC objects and dpfdoctor.dev/ annotations are ever
touched; anything changed by someone else since, or that a later fix not
rolled back also wrote, is left alone and named: roll back newest first.
Running it again is harmless and says "already rolled back".

A backup that is missing, incomplete, altered or from another cluster is
refused (exit 2) before any change.

A dpfdoctor guard in repair mode would put the grant back at once. When one
runs (its Lease is held, or a Deployment runs guard --mode=repair), rollback
refuses with exit 8 and changes nothing. With --pause-guard it annotates the
DPFOperatorConfig dpfdoctor.dev/guard-paused, waits for the guard's
DPFDoctorGuardPaused event, rolls back and leaves the guard paused: it keeps
diagnosing but repairs nothing until the annotation is removed.

`

// NewCmdRollback builds `dpfdoctor rollback`.
func NewCmdRollback(kf *genericclioptions.ConfigFlags, s genericiooptions.IOStreams) *cobra.Command {
	o := &RollbackOptions{IOStreams: s, kf: kf}
	cmd := &cobra.Command{
		Use:   "rollback (--backup DIR | --latest)",
		Short: "Undo a fix exactly, from its backup",
		Long:  rollbackLong + ExitCodesHelp,
		Example: `  # Undo the most recent fix
  dpfdoctor rollback --latest

  # Undo a given fix (the command is in its report.md)
  dpfdoctor rollback --backup dpfdoctor-backups/20250101T120000Z

  # Undo it while a dpfdoctor guard runs in repair mode
  dpfdoctor rollback --latest --pause-guard`,
		Args: positional(cobra.NoArgs),
		RunE: runE(o, nil),
	}
	f := cmd.Flags()
	f.StringVar(&o.Backup, "backup", "", "The backup directory of the fix to undo")
	f.BoolVar(&o.Latest, "latest", false, "Undo the newest backup under --backup-dir")
	f.StringVar(&o.BackupRoot, "backup-dir", apply.DefaultRoot, "Where --latest looks for backups")
	f.BoolVar(&o.PauseGuard, "pause-guard", false, "Pause a dpfdoctor guard running in repair mode first (it stays paused)")
	return cmd
}

// Validate checks the flags before any I/O.
func (o *RollbackOptions) Validate() error {
	if (o.Backup == "") == !o.Latest {
		return Usagef("give exactly one of --backup DIR or --latest")
	}
	return nil
}

// Run rolls back.
func (o *RollbackOptions) Run(ctx context.Context) error {
	dir := o.Backup
	if o.Latest {
		var err error
		if dir, err = apply.Latest(o.BackupRoot); err != nil {
			return UsageError{Err: err}
		}
	}
	if _, err := apply.Load(dir); err != nil {
		return UsageError{Err: err}
	}
	clients, err := kube.FromFlags(o.kf, nil)
	if err != nil {
		return err
	}
	res, err := doctor.Rollback(ctx, doctor.RollbackOptions{Clients: clients, Dir: dir, Log: o.ErrOut, PauseGuard: o.PauseGuard})
	if errors.Is(err, apply.ErrBadBackup) {
		return UsageError{Err: err}
	}
	if err != nil {
		return err
	}
	if res.Already {
		fmt.Fprintf(o.Out, "Already rolled back: %s (nothing to undo).\n", dir)
	} else {
		fmt.Fprintf(o.Out, "Rolled back %s: deleted %d, restored %d objects; undid %d annotations.\n",
			dir, len(res.Deleted), len(res.Restored), len(res.Annotations))
		for _, r := range res.Deleted {
			fmt.Fprintf(o.Out, "  deleted  %s\n", r)
		}
		for _, r := range res.Restored {
			fmt.Fprintf(o.Out, "  restored %s\n", r)
		}
	}
	if res.GuardPaused != "" {
		fmt.Fprintf(o.Out, "The dpfdoctor guard stays paused: it diagnoses but does not repair. Resume it (it then repairs what fails again) with:\n"+
			"  kubectl -n %s annotate dpfoperatorconfigs --all %s-\n", res.Namespace, apply.GuardPausedAnnotation)
	}
	for _, l := range res.Left {
		fmt.Fprintf(o.ErrOut, "warning: %s\n", l)
	}
	return nil
}
