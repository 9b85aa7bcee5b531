package cli

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"

	"github.com/dpfdoctor/dpfdoctor/internal/buildinfo"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
)

// VersionsSchema identifies the layout of `versions -o json`
// (docs/schema/versions.schema.json).
const VersionsSchema = "dpfdoctor.dev/versions/v1alpha1"

// NewCmdVersions prints the DPF compatibility matrix.
func NewCmdVersions(s genericiooptions.IOStreams) *cobra.Command {
	output, out := OutputTable, ""
	cmd := &cobra.Command{
		Use:   "versions",
		Short: "Print the DPF compatibility matrix: pods, ServiceAccount, dms-init's calls and failure classes per version",
		Args:  positional(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			if out == "" {
				return writeVersions(s.Out, output)
			}
			f, err := os.Create(out)
			if err != nil {
				return UsageError{Err: err}
			}
			return errors.Join(writeVersions(f, output), f.Close())
		},
	}
	outputFlag(cmd, &output, "table, markdown or json", OutputTable, "markdown", "md", OutputJSON)
	cmd.Flags().StringVar(&out, "out", "", "write to this file instead of standard output")
	return cmd
}

// writeVersions renders the compatibility matrix in the given format.
func writeVersions(w io.Writer, output string) error {
	switch {
	case output == "markdown" || output == "md":
		return dpf.WriteMatrix(w)
	case output != OutputTable: // json, or a template on it
		type row struct {
			dpf.Release
			Calls          []dpf.Call `json:"calls"`
			FailureClasses []string   `json:"failureClasses"`
		}
		doc := struct {
			SchemaVersion string `json:"schemaVersion"`
			Releases      []row  `json:"releases"`
		}{SchemaVersion: VersionsSchema}
		for _, r := range dpf.Releases() {
			doc.Releases = append(doc.Releases, row{Release: r, Calls: append([]dpf.Call{}, dpf.AllCalls(r.Script)...), FailureClasses: r.FailureClasses()})
		}
		return printStructured(w, output, doc)
	default: // table
		tw := printers.GetNewTabWriter(w)
		fmt.Fprintln(tw, "VERSION\tSERVICEACCOUNT\tINIT CONTAINERS\tDMSINIT\tCALLS\tFAILURE CLASSES")
		for _, r := range dpf.Releases() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", r.Version, cmp.Or(r.ServiceAccount, "-"), cmp.Or(strings.Join(r.InitContainers, ","), "-"),
				r.Script, len(dpf.AllCalls(r.Script)), strings.Join(r.FailureClasses(), ","))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(w, "\nEvery call and the permission it needs: dpfdoctor versions -o markdown (also docs/versions.md)")
	}
	return nil
}

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
