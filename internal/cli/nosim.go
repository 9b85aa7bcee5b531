//go:build nosim

package cli

import (
	"context"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/dpfdoctor/dpfdoctor/internal/lint"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
)

// simCommands is empty in a nosim build: release archives and the image
// carry no test harness (no internal/sim, no envtest), and no `sim` command.
func simCommands(genericiooptions.IOStreams) []*cobra.Command { return nil }

// runDynamic needs the simulator: lint --dynamic is not in a nosim build.
func (o *LintOptions) runDynamic(context.Context, []*lint.Script, *rbac.Set, lint.Options) error {
	return Usagef("--dynamic runs the script against the simulator, which this build (-tags nosim) does not include")
}
