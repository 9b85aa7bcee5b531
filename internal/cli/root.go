// Package cli holds dpfdoctor's cobra commands: thin shells that turn flags
// into options, call the stage packages and print what they return.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

func errorf(format string, a ...any) error { return fmt.Errorf(format, a...) }

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
		Args:          cobra.ArbitraryArgs, // so an unknown command reaches RunE as a usage error
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return Usagef("unknown command %q for \"dpfdoctor\"", args[0])
			}
			return c.Help()
		},
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return UsageError{Err: err} })
	for _, c := range subcommands(kf, streams) {
		root.AddCommand(c)
	}
	return root
}

// kubeFlags adds --kubeconfig, --context, -n and friends to a command.
func kubeFlags(cmd *cobra.Command, kf *genericclioptions.ConfigFlags) {
	kf.AddFlags(cmd.Flags())
}

// Run executes the root command with args and returns the exit code; errors
// are printed to errOut in one line with a hint, never as a stack trace.
func Run(cmd *cobra.Command, args []string, errOut io.Writer) int {
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err != nil && !errors.Is(err, errSilent) {
		msg := err.Error()
		if !strings.HasPrefix(msg, "error:") {
			msg = "error: " + msg
		}
		fmt.Fprintln(errOut, msg)
		var u UsageError
		if errors.As(err, &u) {
			fmt.Fprintln(errOut, "See 'dpfdoctor --help' or '<command> --help' for usage.")
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
