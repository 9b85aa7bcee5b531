package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/dpfdoctor/dpfdoctor/internal/guard"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
)

// GuardOptions are the flags of `dpfdoctor guard`.
type GuardOptions struct {
	genericiooptions.IOStreams

	Mode                string
	MetricsAddr         string
	MetricsSecure       bool
	MetricsCertDir      string
	ProbeAddr           string
	LeaderElect         bool
	LeaderElectionID    string
	BackupDir           string
	MaxLogsPerSignature int
	MaxRepairsPerMinute int
	Verbosity           int

	kf *genericclioptions.ConfigFlags
}

const guardLong = `Keep DPF's DMS pods fixed: an in-cluster controller (controller-runtime) that
watches the DMS and host-agent pods, the DPU Nodes, the DPFOperatorConfig and
the Roles and RoleBindings dpfdoctor manages, through one label-selected
informer cache (no per-event LISTs; at steady state, no requests beyond its
watches).

When a pod starts failing it diagnoses it (as dpfdoctor diagnose does,
reading logs only for a new failure signature) and records a Kubernetes Event
on the pod: reason DPFDoctorDiagnosed, "<class>: <next step>". With
--mode repair it also applies the least-privilege fix (as dpfdoctor fix
plans and applies it: policy-checked, backed up, server-side applied as
field manager dpfdoctor): a new DPU node's Secret is added to the grant when
its pod fails, and a grant that is deleted or altered is put back. It never
touches the operator's objects and caps repairs per minute.

Metrics on --metrics-bind-address /metrics, over HTTPS to clients whose
token may get /metrics: dpfdoctor_dms_pods{state}, dpfdoctor_findings{class},
dpfdoctor_repairs_total{result}, dpfdoctor_time_to_ready_seconds,
dpfdoctor_guard_leader, dpfdoctor_build_info and controller-runtime's own. /healthz and /readyz on
--health-probe-bind-address. With --leader-elect, replicas share a Lease
and only the leader acts. It runs until interrupted (SIGINT/SIGTERM).

Deploy it with kubectl apply -k deploy/ (least-privilege RBAC, no access to
Secrets); see docs/guard.md.

`

const guardExample = `  # Watch and report only (events and metrics), from your workstation
  dpfdoctor guard -n dpf-operator-system

  # Keep it fixed, as deploy/ runs it in the cluster
  dpfdoctor guard --mode repair --leader-elect`

// NewCmdGuard builds `dpfdoctor guard`.
func NewCmdGuard(kf *genericclioptions.ConfigFlags, s genericiooptions.IOStreams) *cobra.Command {
	o := &GuardOptions{IOStreams: s, Mode: guard.ModeObserve, MetricsAddr: guard.DefaultMetricsAddr, ProbeAddr: guard.DefaultProbeAddr,
		LeaderElectionID: guard.DefaultLeaderElectionID, MaxLogsPerSignature: guard.DefaultMaxLogsPerSignature,
		MaxRepairsPerMinute: guard.DefaultMaxRepairsPerMinute, kf: kf}
	cmd := &cobra.Command{
		Use:     "guard",
		Short:   "Keep DMS pods fixed: watch, diagnose, record events and metrics, repair (controller)",
		Long:    guardLong + ExitCodesHelp,
		Example: guardExample,
		Args:    positional(cobra.NoArgs),
		RunE:    runE(o, nil),
	}
	f := cmd.Flags()
	f.StringVar(&o.Mode, "mode", o.Mode, "observe (events and metrics only) or repair (also apply the least-privilege fix)")
	_ = cmd.RegisterFlagCompletionFunc("mode", oneOf(guard.ModeObserve, guard.ModeRepair))
	f.StringVar(&o.MetricsAddr, "metrics-bind-address", o.MetricsAddr, "Address of the /metrics endpoint (\"0\" disables it)")
	f.BoolVar(&o.MetricsSecure, "metrics-secure", true, "Serve /metrics over HTTPS to authenticated, authorized clients only (false: plain HTTP on a loopback address, for local runs)")
	f.StringVar(&o.MetricsCertDir, "metrics-cert-dir", "", "Serve /metrics with tls.crt and tls.key from this directory, reloaded when they change (default: a self-signed certificate)")
	f.StringVar(&o.ProbeAddr, "health-probe-bind-address", o.ProbeAddr, "Address of /healthz and /readyz (\"0\" disables them)")
	f.BoolVar(&o.LeaderElect, "leader-elect", false, "Elect a leader through a Lease so that only one replica acts")
	f.StringVar(&o.LeaderElectionID, "leader-election-id", o.LeaderElectionID, "Name of the leader-election Lease (in the DPF namespace)")
	f.StringVar(&o.BackupDir, "backup-dir", "", "Where each repair's backup goes (default: a directory under $TMPDIR)")
	f.IntVar(&o.MaxLogsPerSignature, "max-logs", o.MaxLogsPerSignature, "Read dms-init logs of at most this many pods per failure signature (0: none)")
	f.IntVar(&o.MaxRepairsPerMinute, "max-repairs-per-minute", o.MaxRepairsPerMinute, "Cap on repairs written per minute")
	f.IntVar(&o.Verbosity, "log-verbosity", 0, "Log verbosity (0: decisions, 1: every apply step)")
	return cmd
}

// Validate checks the flags before any I/O.
func (o *GuardOptions) Validate() error {
	if o.Mode != guard.ModeObserve && o.Mode != guard.ModeRepair {
		return Usagef("--mode must be %q or %q, not %q", guard.ModeObserve, guard.ModeRepair, o.Mode)
	}
	if o.MaxRepairsPerMinute <= 0 {
		return Usagef("--max-repairs-per-minute must be positive")
	}
	switch {
	case o.MaxLogsPerSignature < 0:
		return Usagef("--max-logs must be 0 or more, got %d", o.MaxLogsPerSignature)
	case o.MaxLogsPerSignature == 0:
		o.MaxLogsPerSignature = -1 // guard.Options: 0 is the default, below 0 none
	}
	return nil
}

// Run starts the guard and blocks until the context ends.
func (o *GuardOptions) Run(ctx context.Context) error {
	clients, err := kube.FromFlags(o.kf, nil)
	if err != nil {
		return err
	}
	log := textLogger(o.ErrOut, o.Verbosity).WithName("guard")
	ctrllog.SetLogger(log)
	err = guard.Run(ctx, clients.Config, guard.Options{
		Namespace: clients.Namespace, Mode: o.Mode, MetricsAddr: o.MetricsAddr, InsecureMetrics: !o.MetricsSecure, MetricsCertDir: o.MetricsCertDir, ProbeAddr: o.ProbeAddr,
		LeaderElect: o.LeaderElect, LeaderElectionID: o.LeaderElectionID, BackupDir: o.BackupDir,
		MaxLogsPerSignature: o.MaxLogsPerSignature, MaxRepairsPerMinute: o.MaxRepairsPerMinute, Logger: log,
	})
	if errors.Is(err, guard.ErrMode) || errors.Is(err, guard.ErrInsecureMetrics) {
		return UsageError{Err: err}
	}
	return err
}

// textLogger writes one line per entry: time, logger name, message and
// key/value pairs.
func textLogger(w io.Writer, verbosity int) logr.Logger {
	var mu sync.Mutex
	return funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "%s %s %s\n", time.Now().UTC().Format(time.RFC3339), prefix, args)
	}, funcr.Options{Verbosity: verbosity})
}
