// Package cli holds dpfdoctor's cobra commands: thin shells that turn flags
// into options, call the stage packages and print what they return.
package cli

import (
	"context"
	"errors"
	goflag "flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/klog/v2"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
)

// NewRootCommand builds `dpfdoctor` with every subcommand.
func NewRootCommand(streams genericiooptions.IOStreams) *cobra.Command {
	kf := genericclioptions.NewConfigFlags(true)
	root := &cobra.Command{
		Use:   "dpfdoctor",
		Short: "Diagnose and repair NVIDIA DPF DMS provisioning (dms-init Init:CrashLoopBackOff)",
		Long: `dpfdoctor finds why DPF's DMS pods fail in dms-init, from evidence; repairs
what RBAC can repair with the least privilege that survives the DPF operator's
reconciliation; proves the repair; brings the pods back; keeps it fixed; rolls
back cleanly; and lints the next dmsinit.sh against its RBAC in CI.

` + ExitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          positional(cobra.NoArgs),
		RunE:          showHelp,
	}
	// Installed as kubectl-dpfdoctor or oc-dpfdoctor, dpfdoctor is a kubectl
	// (or oc) plugin, and help and usage name it the way it was invoked:
	// https://kubernetes.io/docs/tasks/extend-kubectl/kubectl-plugins/
	if cli, ok := strings.CutSuffix(filepath.Base(os.Args[0]), "-dpfdoctor"); ok && (cli == "kubectl" || cli == "oc") {
		root.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: cli + " dpfdoctor"}
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	root.SetFlagErrorFunc(flagError)
	root.PersistentPreRunE = func(c *cobra.Command, _ []string) error { return checkOutputFlag(c) }
	globalFlags(root, kf)
	root.AddCommand(subcommands(kf, streams)...)
	// cobra's `completion` follows the same conventions: an unknown shell or
	// an extra argument is a usage error (exit 2).
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		c.Args, c.RunE = positional(cobra.NoArgs), showHelp
		for _, shell := range c.Commands() {
			shell.Args = positional(cobra.NoArgs)
		}
	}
	return root
}

// globalFlags are kubectl's: the kubeconfig flags, and klog's -v/--v and
// --vmodule (-v=6 logs every API request, as kubectl does), persistent on
// the root so that help lists them once, under "Global Flags"; and
// --no-color. They complete as kubectl's do (complete.go).
func globalFlags(root *cobra.Command, kf *genericclioptions.ConfigFlags) {
	pf := root.PersistentFlags()
	kf.AddFlags(pf)
	var gf goflag.FlagSet
	klog.InitFlags(&gf)
	pf.AddGoFlag(gf.Lookup("v"))
	pf.AddGoFlag(gf.Lookup("vmodule"))
	pf.Bool("no-color", false, "Print no ANSI colour codes (also: the NO_COLOR environment variable, or output that is not a terminal)")
	registerGlobalCompletions(root, kf)
}

// flagError makes a flag error a usage error (exit 2). -v used to mean
// verbose in diagnose; it is now klog's level, so its old spelling fails
// loudly and says where the per-pod detail went.
func flagError(_ *cobra.Command, err error) error {
	if m := err.Error(); strings.Contains(m, "'v' in -v") || strings.Contains(m, `for "-v, --v" flag`) || strings.Contains(m, "flag: --verbose") {
		err = fmt.Errorf("%w (-v is the log level, as in kubectl: -v=6; per-pod detail is -o wide)", err)
	}
	return UsageError{Err: err}
}

// positional checks a command's positional arguments with check and makes a
// wrong one a usage error (exit 2). Every command's Args goes through it. An
// unknown subcommand of a command that has some gets cobra's suggestion.
func positional(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		err := check(c, args)
		if err == nil {
			return nil
		}
		if len(args) > 0 && c.HasAvailableSubCommands() {
			if c.SuggestionsMinimumDistance <= 0 {
				c.SuggestionsMinimumDistance = 2 // cobra's default, which SuggestionsFor does not apply
			}
			if s := c.SuggestionsFor(args[0]); len(s) > 0 {
				err = fmt.Errorf("%w; did you mean %q?", err, s[0])
			}
		}
		return UsageError{Err: err}
	}
}

// showHelp is the RunE of a command that only groups subcommands: without
// one it prints the help; an unknown one fails its positional(cobra.NoArgs).
func showHelp(c *cobra.Command, _ []string) error { return c.Help() }

// options are a command's Options: Validate checks the flags before any
// I/O, and Run does the work.
type options interface {
	Validate() error
	Run(context.Context) error
}

// runE is the RunE of a command with options: complete, when not nil,
// takes what o needs from the command; then o is validated and run.
func runE(o options, complete func(*cobra.Command, []string)) func(*cobra.Command, []string) error {
	return func(c *cobra.Command, args []string) error {
		if complete != nil {
			complete(c, args)
		}
		if err := o.Validate(); err != nil {
			return err
		}
		return o.Run(c.Context())
	}
}

// Run executes the root command with args and returns the exit code; errors
// are printed to errOut in one line with a hint, never as a stack trace.
func Run(cmd *cobra.Command, args []string, errOut io.Writer) int {
	cmd.SetArgs(args)
	failed, err := cmd.ExecuteC()
	if err != nil && !errors.Is(err, errSilent) {
		msg := err.Error()
		if !strings.HasPrefix(msg, "error:") {
			msg = "error: " + msg
		}
		fmt.Fprintln(errOut, msg)
		var u UsageError
		if errors.As(err, &u) {
			fmt.Fprintf(errOut, "See '%s --help' for usage.\n", failed.CommandPath())
		}
	}
	return ExitCode(err)
}

// errSilent wraps results that were already reported on stdout (for example
// "problems found" after a diagnosis table): the exit code carries them.
var errSilent = errors.New("")

// silent marks err as already reported.
func silent(err error) error {
	if err == nil {
		return nil
	}
	return silentErr{err}
}

type silentErr struct{ err error }

func (s silentErr) Error() string   { return s.err.Error() }
func (s silentErr) Unwrap() []error { return []error{s.err, errSilent} }

// DefaultStreams are the process's standard streams.
func DefaultStreams() genericiooptions.IOStreams {
	return genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
}

// subcommands lists every verb. Each lives in its own file.
func subcommands(kf *genericclioptions.ConfigFlags, s genericiooptions.IOStreams) []*cobra.Command {
	return append([]*cobra.Command{
		NewCmdVersion(s),
		NewCmdDiagnose(kf, s),
		NewCmdVersions(s),
		NewCmdFix(kf, s),
		NewCmdRollback(kf, s),
		NewCmdLint(kf, s),
		NewCmdGuard(kf, s),
		NewCmdPreflight(kf, s),
	}, simCommands(s)...)
}

// Flag values complete in bash, zsh and fish through cobra's `completion`
// command; kubectl's pkg/cmd/util/completion.go is the model: contexts from
// the kubeconfig, namespaces and nodes from the cluster, asked with a short
// timeout so that a slow cluster never hangs the shell.

// completionTimeout bounds each completion's cluster request.
const completionTimeout = 3 * time.Second

// oneOf completes a flag with fixed values.
func oneOf(values ...string) cobra.CompletionFunc {
	return cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp)
}

// registerGlobalCompletions completes --context from the kubeconfig and
// -n from the cluster.
func registerGlobalCompletions(root *cobra.Command, kf *genericclioptions.ConfigFlags) {
	_ = root.RegisterFlagCompletionFunc("context", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		cfg, err := kf.ToRawKubeConfigLoader().RawConfig()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return slices.Sorted(maps.Keys(cfg.Contexts)), cobra.ShellCompDirectiveNoFileComp
	})
	_ = root.RegisterFlagCompletionFunc("namespace", fromCluster(kf, func(ctx context.Context, c *kube.Clients) ([]string, error) {
		l, err := c.Metadata.Resource(dpf.MustGVR("", "Namespace")).List(ctx, metav1.ListOptions{})
		return names(l, err)
	}))
}

// completeNodes completes --node with the Nodes that carry a DPU.
func completeNodes(kf *genericclioptions.ConfigFlags) cobra.CompletionFunc {
	return fromCluster(kf, func(ctx context.Context, c *kube.Clients) ([]string, error) {
		l, err := c.Metadata.Resource(dpf.MustGVR("", "Node")).List(ctx, metav1.ListOptions{LabelSelector: dpf.DPUNodeLabel})
		return names(l, err)
	})
}

// fromCluster completes with what list returns, from the cluster of the
// kubeconfig flags already typed; nothing when it does not answer in time.
func fromCluster(kf *genericclioptions.ConfigFlags, list func(context.Context, *kube.Clients) ([]string, error)) cobra.CompletionFunc {
	return func(c *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		clients, err := kube.FromFlags(kf, nil)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(c.Context(), completionTimeout) // cobra sets the context of __complete
		defer cancel()
		all, err := list(ctx, clients)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return slices.DeleteFunc(all, func(n string) bool { return !strings.HasPrefix(n, toComplete) }), cobra.ShellCompDirectiveNoFileComp
	}
}

func names(l *metav1.PartialObjectMetadataList, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(l.Items))
	for _, i := range l.Items {
		out = append(out, i.Name)
	}
	return out, nil
}
