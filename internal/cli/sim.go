//go:build !nosim

package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// NewCmdSim builds `dpfdoctor sim`.
func NewCmdSim(s genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Run a simulated DPF cluster (real kube-apiserver and etcd, RBAC enforced)",
		Long: `sim runs a simulated DPF cluster on a real kube-apiserver and etcd (envtest):
the DPF CRDs, the operator's inventory and its reconcile loop, DMS pods, and a
simulated kubelet that runs each pod's dms-init as its ServiceAccount (the real
kubectl for small clusters), with CrashLoopBackOff back-off, events and logs
served through the API server (kubectl logs works).

The envtest binaries are built once from the Go module proxy by
hack/envtest.sh (make envtest) and found through KUBEBUILDER_ASSETS or the
cache it writes.`,
		Args: positional(cobra.NoArgs),
		RunE: showHelp,
	}
	cmd.AddCommand(newCmdSimUp(s), newCmdSimDown(s), newCmdSimScenarios(s))
	return cmd
}

type simUpOptions struct {
	genericiooptions.IOStreams
	sim.Options
	detach  bool
	pidFile string
	script  simScriptFlags
}

func newCmdSimUp(s genericiooptions.IOStreams) *cobra.Command {
	o := &simUpOptions{IOStreams: s}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start a simulated DPF cluster and run it until interrupted",
		Example: `  dpfdoctor sim up --dpf-version v25.4.0 --nodes 8 --scenario dpudevice-status-forbidden --kubeconfig-out /tmp/dpf.kubeconfig
  dpfdoctor sim up --nodes 8 --scenario dpudevice-status-forbidden=6,healthy=2 --time-scale 0.1
  dpfdoctor sim up --detach --pid-file /tmp/dpf-sim.pid --kubeconfig-out /tmp/dpf.kubeconfig`,
		Args: positional(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			r, err := dpf.Lookup(o.Version)
			if err != nil {
				return UsageError{Err: err}
			}
			if o.Scenario == "" {
				o.Scenario = string(sim.DefaultScenario(r))
			}
			mix, err := sim.ParseMix(o.Scenario)
			if err != nil {
				return UsageError{Err: err}
			}
			if err := sim.CheckApplies(mix, r); err != nil {
				return UsageError{Err: err}
			}
			if o.TimeScale <= 0 {
				return Usagef("--time-scale must be greater than 0")
			}
			if o.Nodes <= 0 {
				return Usagef("--nodes must be at least 1")
			}
			if err := mix.Fits(o.Nodes); err != nil {
				return UsageError{Err: err}
			}
			if err := o.script.complete(&o.Options); err != nil {
				return err
			}
			if o.Script != nil && (o.KubectlMaxNodes < 0 || o.Nodes > o.KubectlMaxNodes) {
				fmt.Fprintf(o.ErrOut, "warning: %d nodes exceed --kubectl-max-nodes %d: dms-init replays the script instead of running --dmsinit-script\n", o.Nodes, o.KubectlMaxNodes)
			}
			if o.detach {
				return o.runDetached(c.Context())
			}
			return o.run(c.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Version, "dpf-version", "v25.4.0", "DPF version to simulate ("+simVersions()+")")
	f.IntVar(&o.Nodes, "nodes", 8, "number of DPU hosts")
	f.StringVar(&o.Scenario, "scenario", "", "scenario for every node, or a mix such as dpudevice-status-forbidden=6,healthy=2 (see 'dpfdoctor sim scenarios'; default: dpudevice-status-forbidden on v25.4.x, where it happens, else apiserver-unreachable)")
	f.Float64Var(&o.TimeScale, "time-scale", 1, "multiply every simulated delay (operator resync, kubelet back-off, dmsinit sleeps)")
	f.DurationVar(&o.Resync, "resync", 10*time.Second, "operator resync period before --time-scale (real DPF: 10m)")
	f.StringVar(&o.KubeconfigOut, "kubeconfig-out", "", "write the admin kubeconfig here (default: a file in a temporary directory)")
	f.IntVar(&o.KubectlMaxNodes, "kubectl-max-nodes", 32, "run the real kubectl as the ServiceAccount up to this many nodes; client-go above (-1: never)")
	f.IntVar(&o.SecretWaitAttempts, "secret-wait-attempts", 5, "how often dms-init polls the node's Secret (the script: 30)")
	o.script.add(f)
	f.BoolVar(&o.detach, "detach", false, "run in the background; stop with 'dpfdoctor sim down --pid-file FILE'")
	f.StringVar(&o.pidFile, "pid-file", filepath.Join(os.TempDir(), "dpfdoctor-sim.pid"), "with --detach: where the background process's pid is written")
	_ = cmd.RegisterFlagCompletionFunc("dpf-version", oneOf(dpf.Versions()...))
	_ = cmd.RegisterFlagCompletionFunc("scenario", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		var names []string
		for _, sc := range sim.Scenarios() {
			names = append(names, string(sc))
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

// simVersions lists the release lines the sim supports, from internal/dpf.
func simVersions() string {
	var v []string
	for _, r := range dpf.Releases() {
		v = append(v, dpf.Line(r.Version)+".x")
	}
	return strings.Join(v, ", ")
}

func (o *simUpOptions) run(ctx context.Context) error {
	ctrllog.SetLogger(logr.Discard())
	// A closed terminal (SIGHUP) stops it too, so that its API server and
	// etcd do not outlive it.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	fmt.Fprintf(o.ErrOut, "starting a simulated DPF %s cluster with %d nodes (%s)...\n", o.Version, o.Nodes, o.Scenario)
	c, err := sim.Start(ctx, o.Options)
	if err != nil {
		if errors.Is(err, sim.ErrAssets) {
			return fmt.Errorf("%w", err)
		}
		return fmt.Errorf("start sim: %w", err)
	}
	defer func() { _ = c.Stop() }()
	fmt.Fprintf(o.Out, "kubeconfig: %s\n", c.KubeconfigPath)
	fmt.Fprintf(o.Out, "sim: DPF %s, %d nodes, scenario %s, API server %s; Ctrl-C stops it\n", c.Release.Version, len(c.Nodes), o.Scenario, c.APIServerURL())
	last := ""
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(o.ErrOut, "stopping the simulated cluster")
			return nil
		case <-t.C:
			if s, err := c.Summary(ctx); err == nil && s.String() != last {
				last = s.String()
				fmt.Fprintf(o.Out, "%s %s\n", time.Now().Format("15:04:05"), last)
			}
		}
	}
}

// runDetached starts `sim up` again without --detach in a new session, waits
// for its kubeconfig and returns.
func (o *simUpOptions) runDetached(ctx context.Context) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	o.KubeconfigOut = cmp.Or(o.KubeconfigOut, filepath.Join(os.TempDir(), "dpfdoctor-sim.kubeconfig"))
	_ = os.Remove(o.KubeconfigOut)
	var args []string
	for _, a := range os.Args[1:] {
		if a != "--detach" && !strings.HasPrefix(a, "--detach=") {
			args = append(args, a)
		}
	}
	args = append(args, "--kubeconfig-out", o.KubeconfigOut)
	logPath := strings.TrimSuffix(o.pidFile, ".pid") + ".log"
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer func() { _ = logf.Close() }() // the child holds its own descriptor
	cmd := exec.Command(self, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	if err := os.WriteFile(o.pidFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(3 * time.Minute)
	for {
		if b, err := os.ReadFile(logPath); err == nil && strings.Contains(string(b), "sim: DPF ") {
			fmt.Fprintf(o.Out, "kubeconfig: %s\nsim running in the background (pid %d, log %s); stop it with: dpfdoctor sim down --pid-file %s\n",
				o.KubeconfigOut, cmd.Process.Pid, logPath, o.pidFile)
			return nil
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("the simulated cluster exited (%v):\n%s", err, b)
		case <-deadline:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			return fmt.Errorf("the simulated cluster did not start within 3 minutes; see %s", logPath)
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func newCmdSimDown(s genericiooptions.IOStreams) *cobra.Command {
	pidFile := filepath.Join(os.TempDir(), "dpfdoctor-sim.pid")
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop a simulated cluster started with `sim up --detach`",
		Args:  positional(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			b, err := os.ReadFile(pidFile)
			if err != nil {
				return Usagef("no running sim: %v", err)
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil || pid <= 1 {
				return Usagef("pid file %s is malformed", pidFile)
			}
			p, _ := os.FindProcess(pid)
			if err := p.Signal(syscall.SIGTERM); err != nil {
				_ = os.Remove(pidFile)
				fmt.Fprintf(s.Out, "sim (pid %d) is not running\n", pid)
				return nil
			}
			for i := 0; i < 150 && p.Signal(syscall.Signal(0)) == nil; i++ {
				time.Sleep(100 * time.Millisecond)
			}
			_ = os.Remove(pidFile)
			fmt.Fprintf(s.Out, "sim (pid %d) stopped\n", pid)
			return nil
		},
	}
	cmd.Flags().StringVar(&pidFile, "pid-file", pidFile, "the pid file 'sim up --detach' wrote")
	return cmd
}

func newCmdSimScenarios(s genericiooptions.IOStreams) *cobra.Command {
	return &cobra.Command{
		Use:   "scenarios",
		Short: "List the scenarios a simulated node can have",
		Args:  positional(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			tw := printers.GetNewTabWriter(s.Out)
			for _, sc := range sim.Scenarios() {
				fmt.Fprintf(tw, "%s\t%s\n", sc, sim.Describe(sc))
			}
			return tw.Flush()
		},
	}
}

// simCommands is `dpfdoctor sim`; builds tagged nosim (release archives, the
// image) leave the simulator and envtest out (internal/cli/nosim.go).
func simCommands(s genericiooptions.IOStreams) []*cobra.Command {
	return []*cobra.Command{NewCmdSim(s)}
}
