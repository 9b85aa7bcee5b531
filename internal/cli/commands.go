package cli

import (
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

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
