package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/yaml"
)

// Output formats shared by commands that print a report. Every command's
// -o also takes cli-runtime's template formats (jsonpath=…, go-template=…
// and kubectl's other spellings), applied to the command's JSON output.
const (
	OutputTable = "table"
	OutputWide  = "wide" // the table with per-object detail, as kubectl's -o wide
	OutputJSON  = "json"
	OutputYAML  = "yaml"
	OutputName  = "name" // RESOURCE.GROUP/NAME per object, as kubectl's -o name
)

// outputFlag adds -o to cmd: the formats it prints itself (the default
// first) and the template formats. The root command checks it
// (checkOutputFlag) before any command runs, and completes it.
func outputFlag(cmd *cobra.Command, p *string, usage string, formats ...string) {
	cmd.Flags().StringVarP(p, "output", "o", *p, usage+"; or jsonpath=…, go-template=… (and -file=…) on the JSON")
	_ = cmd.Flags().SetAnnotation("output", "formats", formats)
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(
		append(slices.Clone(formats), genericclioptions.NewKubeTemplatePrintFlags().AllowedFormats()...), cobra.ShellCompDirectiveNoFileComp))
}

// checkOutputFlag checks a command's -o when it was given.
func checkOutputFlag(c *cobra.Command) error {
	f := c.Flags().Lookup("output")
	if f == nil || !f.Changed || f.Annotations["formats"] == nil {
		return nil
	}
	return checkOutput(f.Value.String(), f.Annotations["formats"]...)
}

// checkOutput returns a usage error naming the allowed formats when o is not
// one of them nor a valid template, as kubectl's -o does.
func checkOutput(o string, allowed ...string) error {
	if slices.Contains(allowed, o) {
		return nil
	}
	if o == OutputName {
		return Usagef("-o name lists Kubernetes objects, and this command prints a report: pick its fields with -o jsonpath=… or -o go-template=…")
	}
	tf := genericclioptions.NewKubeTemplatePrintFlags()
	if _, err := tf.ToPrinter(o); !genericclioptions.IsNoCompatiblePrinterError(err) {
		if err != nil {
			return Usagef("-o %s: %s", o, strings.TrimSpace(err.Error()))
		}
		return nil
	}
	return Usagef("unable to match a printer suitable for the output format %q, allowed formats are: %s", o, strings.Join(append(allowed, tf.AllowedFormats()...), ","))
}

// printStructured writes v as indented JSON, as YAML, or through a
// jsonpath or go-template printer applied to v's JSON, the way kubectl
// applies them to any object.
func printStructured(w io.Writer, format string, v any) error {
	var (
		data []byte
		err  error
	)
	switch format {
	case OutputJSON:
		data, err = json.MarshalIndent(v, "", "  ")
		data = append(data, '\n')
	case OutputYAML:
		data, err = yaml.Marshal(v)
	default:
		return printTemplate(w, format, v)
	}
	if err != nil {
		return fmt.Errorf("encode %s: %w", format, err)
	}
	_, err = w.Write(data)
	return err
}

// printReport prints v with table for -o table (or wide), else as
// printStructured does.
func printReport(w io.Writer, format string, v any, table func() error) error {
	if format == OutputTable || format == OutputWide {
		return table()
	}
	return printStructured(w, format, v)
}

// printTemplate applies the template of -o format to v's JSON. The user
// wrote the template, so a template that fails is a usage error.
func printTemplate(w io.Writer, format string, v any) error {
	p, err := genericclioptions.NewKubeTemplatePrintFlags().ToPrinter(format)
	if err != nil {
		return UsageError{Err: fmt.Errorf("-o %s: %w", format, err)}
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	obj := map[string]any{}
	if err := utiljson.Unmarshal(data, &obj); err != nil { // numbers as int64, as in unstructured objects
		return fmt.Errorf("decode json: %w", err)
	}
	if err := p.PrintObj(&unstructured.Unstructured{Object: obj}, w); err != nil {
		return UsageError{Err: fmt.Errorf("-o %s: %w", format, err)}
	}
	return nil
}

// isTerminal reports whether a stream is a terminal.
func isTerminal(stream any) bool {
	f, ok := stream.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// colour is on for w only when it is a terminal, NO_COLOR is empty
// (https://no-color.org) and --no-color is not set.
func colour(c *cobra.Command, w any) palette {
	off, _ := c.Flags().GetBool("no-color")
	return palette(!off && os.Getenv("NO_COLOR") == "" && isTerminal(w))
}

// palette colours text when enabled.
type palette bool

const (
	red    = "31"
	green  = "32"
	yellow = "33"
	bold   = "1"
)

func (p palette) paint(code, s string) string {
	if !p || s == "" {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

// checkOutputPath checks, before any request, that a flag's output path
// has the right shape: a file (dir false) whose directory exists, or a
// directory (dir true) that exists or whose nearest existing ancestor is a
// directory. Anything else is a usage error, so no work is lost at the
// end. Permissions are left to the write.
func checkOutputPath(flag, path string, dir bool) error {
	if fi, err := os.Stat(path); err == nil {
		if fi.IsDir() != dir {
			return Usagef("--%s %s: %s", flag, path, choose(dir, "is a file, not a directory", "is a directory, not a file"))
		}
		return nil
	}
	parent := filepath.Dir(path)
	for dir {
		if _, err := os.Stat(parent); err == nil || parent == filepath.Dir(parent) {
			break
		}
		parent = filepath.Dir(parent)
	}
	if fi, err := os.Stat(parent); err != nil || !fi.IsDir() {
		return Usagef("--%s %s: %s is not a directory", flag, path, parent)
	}
	return nil
}

func choose[T any](c bool, a, b T) T {
	if c {
		return a
	}
	return b
}
