package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/dpfdoctor/dpfdoctor/internal/buildinfo"
)

// NewCmdVersion prints dpfdoctor's own version (internal/buildinfo).
func NewCmdVersion(s genericiooptions.IOStreams) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print dpfdoctor's version, commit and build date",
		Args:  positional(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			i := buildinfo.Get()
			if output != "" {
				return printStructured(s.Out, output, i)
			}
			_, err := fmt.Fprintf(s.Out, "dpfdoctor %s (commit %s, built %s, %s %s)\n", i.Version, i.Commit, i.BuildDate, i.GoVersion, i.Platform)
			return err
		},
	}
	outputFlag(cmd, &output, "json or yaml; empty prints one line", OutputJSON, OutputYAML)
	return cmd
}
