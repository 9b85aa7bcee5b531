//go:build nosim

package cli

import (
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// simCommands is empty in a nosim build: release archives and the image
// carry no test harness (no internal/sim, no envtest), and no `sim` command.
func simCommands(genericiooptions.IOStreams) []*cobra.Command { return nil }
