// Package cli holds dpfdoctor's cobra commands: thin shells that turn flags
// into options, call the stage packages and print what they return.
package cli

import (
	"errors"
	goflag "flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/klog/v2"
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

func (s silentErr) Error() string        { return s.err.Error() }
func (s silentErr) Unwrap() []error      { return []error{s.err, errSilent} }
func (s silentErr) Is(target error) bool { return target == errSilent }

// DefaultStreams are the process's standard streams.
func DefaultStreams() genericiooptions.IOStreams {
	return genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
}
