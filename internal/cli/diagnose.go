package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"

	"github.com/dpfdoctor/dpfdoctor/internal/diagnose"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/outcome"
)

// DiagnoseOptions are the flags of `dpfdoctor diagnose`.
type DiagnoseOptions struct {
	genericiooptions.IOStreams

	Output     string // table, wide (per-pod detail and evidence), json, yaml or a template
	Nodes      []string
	MaxLogs    int
	Bundle     string
	FromBundle string

	kf    *genericclioptions.ConfigFlags
	color palette
}

const diagnoseLong = `Find why DPF's DMS (or host-agent) pods fail, per pod, from evidence: pod
states, events, Certificates, Secret names (metadata only: dpfdoctor never
reads Secret data), DPUNodes, DPUDevices, RBAC objects, SubjectAccessReviews
for the calls each pod's dmsinit.sh makes, and dms-init logs of failing pods.
With up to 200 failing pods it reads every one's log. Above that it reads 3
per failure signature and, when those disagree, the rest of that signature,
so one cause costs 3 logs however many pods it breaks. --max-logs caps the
total. Apart from log reads, the number of API requests does not grow with
the number of pods. A pod whose own log was not read says so, and why.

Classes: RBACForbidden, StatusSubresourceSkew, APIServerUnreachable,
CertificateNotReady, RshimOccupied, NoDPUFound, OperatorPaused, Unknown and
Healthy; see docs/diagnose.md. -o wide adds per-pod detail and the evidence
behind each finding (it was -v before: -v is now the log level, as in
kubectl). -o json|yaml prints the versioned document described in
docs/schema/diagnosis-v1alpha1.md; -o jsonpath=… and -o go-template=… pick
fields from it.

It needs only the read-only ClusterRole in docs/rbac/dpfdoctor-readonly.yaml;
with less it diagnoses what it can and lists what it could not see.

`

const diagnoseExample = `  # Diagnose the DPF installation of the current context
  dpfdoctor diagnose

  # Per-pod detail and the evidence behind each finding
  dpfdoctor diagnose -o wide

  # Two nodes, as JSON for scripts; or one field of it
  dpfdoctor diagnose --node worker-1 --node worker-2 -o json
  dpfdoctor diagnose -o jsonpath='{.summary.failing}'

  # Write a support bundle (no Secret data) for a vendor case
  dpfdoctor diagnose --bundle support.tar.gz

  # Diagnose a saved bundle offline
  dpfdoctor diagnose --from-bundle support.tar.gz`

// NewCmdDiagnose builds `dpfdoctor diagnose`.
func NewCmdDiagnose(kf *genericclioptions.ConfigFlags, s genericiooptions.IOStreams) *cobra.Command {
	o := &DiagnoseOptions{IOStreams: s, Output: OutputTable, MaxLogs: evidence.DefaultMaxLogs, kf: kf}
	cmd := &cobra.Command{
		Use:     "diagnose",
		Short:   "Find the root cause of failing DMS pods, per pod, from evidence (read-only)",
		Long:    diagnoseLong + ExitCodesHelp,
		Example: diagnoseExample,
		Args:    positional(cobra.NoArgs),
		RunE:    runE(o, func(c *cobra.Command, _ []string) { o.color = colour(c, o.Out) }),
	}
	f := cmd.Flags()
	outputFlag(cmd, &o.Output, "Output format: table, wide (per-pod detail and evidence), json or yaml", OutputTable, OutputWide, OutputJSON, OutputYAML)
	f.StringArrayVar(&o.Nodes, "node", nil, "Only diagnose the pod of this node (repeatable); shows per-pod detail")
	_ = cmd.RegisterFlagCompletionFunc("node", completeNodes(kf))
	f.IntVar(&o.MaxLogs, "max-logs", o.MaxLogs, "Read dms-init logs of at most this many pods in total (0: none)")
	f.StringVar(&o.Bundle, "bundle", "", "Write a support bundle (tar.gz, no Secret data) to this file")
	f.StringVar(&o.FromBundle, "from-bundle", "", "Diagnose a saved bundle (support tar.gz or evidence JSON) instead of a cluster")
	return cmd
}

// Validate checks the flags before any I/O.
func (o *DiagnoseOptions) Validate() error {
	if o.MaxLogs < 0 {
		return Usagef("--max-logs must be 0 or more, got %d", o.MaxLogs)
	}
	if slices.ContainsFunc(o.Nodes, func(n string) bool { return strings.TrimSpace(n) == "" }) {
		return Usagef("--node needs a node name")
	}
	if o.Bundle != "" && o.Bundle == o.FromBundle {
		return Usagef("--bundle and --from-bundle name the same file %q", o.Bundle)
	}
	if o.Bundle != "" {
		return checkOutputPath("bundle", o.Bundle, false)
	}
	return nil
}

// Run collects (or loads) the evidence, diagnoses it and prints the result.
// It returns an error wrapping outcome.ErrProblems, already reported, when
// any pod is not healthy.
func (o *DiagnoseOptions) Run(ctx context.Context) error {
	b, err := o.evidence(ctx)
	if err != nil {
		return err
	}
	d := diagnose.Diagnose(b)
	if o.Bundle != "" {
		if err := writeSupportBundle(o.Bundle, b, d); err != nil {
			return err
		}
		fmt.Fprintf(o.ErrOut, "Support bundle written to %s (evidence, dms-init logs, RBAC, events, diagnosis; no Secret data).\n", o.Bundle)
	}
	if err := printReport(o.Out, o.Output, d, func() error { return o.printTable(d) }); err != nil {
		return err
	}
	if d.Problems() {
		return silent(fmt.Errorf("%w", outcome.ErrProblems))
	}
	return nil
}

func (o *DiagnoseOptions) evidence(ctx context.Context) (*evidence.Bundle, error) {
	if o.FromBundle != "" {
		b, err := loadBundle(o.FromBundle)
		if err != nil {
			return nil, UsageError{Err: err}
		}
		if err := b.CheckNodes(o.Nodes); err != nil {
			return nil, err
		}
		return filterNodes(b, o.Nodes), nil
	}
	clients, err := kube.FromFlags(o.kf, nil)
	if err != nil {
		return nil, err
	}
	maxLogs := o.MaxLogs
	if maxLogs == 0 {
		maxLogs = -1 // no logs
	}
	c := &evidence.Collector{Clients: clients}
	b, err := c.Collect(ctx, evidence.Options{Nodes: o.Nodes, MaxLogs: maxLogs, Progress: o.progress()})
	if err != nil {
		return nil, fmt.Errorf("diagnose: %w", err)
	}
	return b, nil
}

// loadBundle reads an evidence JSON file or the evidence.json of a support
// bundle.
func loadBundle(file string) (*evidence.Bundle, error) {
	if strings.HasSuffix(file, ".tar.gz") || strings.HasSuffix(file, ".tgz") {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("read bundle: %w", err)
		}
		defer func() { _ = f.Close() }() // read side: ReadArchive checks what it reads
		return evidence.ReadArchive(f)
	}
	return evidence.Load(file)
}

// filterNodes keeps the given nodes and their pods (all when none given).
func filterNodes(b *evidence.Bundle, nodes []string) *evidence.Bundle {
	if len(nodes) == 0 {
		return b
	}
	out := *b
	out.Pods = slices.DeleteFunc(slices.Clone(b.Pods), func(p evidence.Pod) bool { return !slices.Contains(nodes, p.Node) })
	out.Nodes = slices.DeleteFunc(slices.Clone(b.Nodes), func(n evidence.Node) bool { return !slices.Contains(nodes, n.Name) })
	return &out
}

func writeSupportBundle(file string, b *evidence.Bundle, d *diagnose.Diagnosis) error {
	dj, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return fmt.Errorf("encode diagnosis: %w", err)
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("write support bundle: %w", err)
	}
	werr := errors.Join(b.WriteArchive(f,
		evidence.ArchiveFile{Name: "diagnosis.md", Data: []byte(d.Markdown())},
		evidence.ArchiveFile{Name: "diagnosis.json", Data: append(dj, '\n')}), f.Close())
	if werr != nil {
		return fmt.Errorf("write support bundle %s: %w", file, werr)
	}
	return nil
}

// printTable prints one line per class, the next steps, and per-pod detail
// with -o wide or --node.
func (o *DiagnoseOptions) printTable(d *diagnose.Diagnosis) error {
	w := o.Out
	p := o.color
	version := d.DPF.Version
	if version == "" {
		version = "unknown version"
	} else if d.DPF.VersionSource != "" {
		version += " (from " + d.DPF.VersionSource + ")"
	}
	fmt.Fprintf(w, "DPF %s in namespace %s, DPFOperatorConfig %s%s\n", version, d.DPF.Namespace, d.DPF.OperatorConfig,
		map[bool]string{true: " (operator PAUSED)"}[d.DPF.Paused])
	if s := d.Summary; s.DPUNodes > 0 {
		// DPU nodes next to DMS pods, so "8 DPU nodes, 1 DMS pod" is visible at a glance.
		line := count(s.DPUNodes, "DPU node", "DPU nodes") + ", " + count(s.Pods, "DMS pod", "DMS pods")
		if s.NodesWithoutPod > 0 {
			line += fmt.Sprintf("; %s without a DMS pod or DPUNode (%s)", count(s.NodesWithoutPod, "node", "nodes"), diagnose.ClassPodMissing)
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "%d pods: %d healthy, %d failing; evidence cost %d API requests\n\n", d.Summary.Pods, d.Summary.Healthy, d.Summary.Failing, d.Requests)
	if d.Summary.Pods == 0 {
		fmt.Fprintf(w, "No DMS or host-agent pods (label %s) in %s: check that DPU nodes are labelled and the provisioning controller runs.\n\n",
			evidence.PodSelector, d.DPF.Namespace)
	}
	if err := classTable(w, d, p); err != nil {
		return err
	}
	steps := 0
	for _, f := range d.Findings {
		if f.Class == diagnose.ClassHealthy {
			continue
		}
		if steps == 0 {
			fmt.Fprintln(w, "\nWhat to do:")
		}
		steps++
		fmt.Fprintf(w, "\n%d. %s %s: %s\n", steps, p.paint(bold, f.Code), f.Class, f.Summary)
		if len(f.SecondaryPods) > 0 {
			fmt.Fprintf(w, "   Also affects %s once their first problem is fixed.\n", count(len(f.SecondaryPods), "pod", "pods"))
		}
		printMissing(w, f)
		if o.Output == OutputWide {
			for _, e := range f.Evidence {
				fmt.Fprintf(w, "   evidence (%s, %s): %s\n", e.Kind, e.Source, oneLine(e.Text))
			}
		}
		fmt.Fprintf(w, "   Fixable: %s\n   Next: %s\n", map[bool]string{true: "yes (dpfdoctor fix)", false: "no"}[f.Fixable], f.NextStep)
	}
	if d.Summary.Inferred > 0 {
		fmt.Fprintf(w, "\n%s classified from the dms-init logs of other pods with the same failure signature "+
			"(their own were not read: the pods sampled for that signature agree); check one with --node NAME.\n",
			count(d.Summary.Inferred, "pod was", "pods were"))
	}
	if d.Summary.Unread > 0 {
		fmt.Fprintf(w, "\n%s not read (-o wide says why per pod); their class comes from pod state, events, objects and access reviews.\n",
			count(d.Summary.Unread, "failing pod's own dms-init log was", "failing pods' own dms-init logs were"))
	}
	if d.WidelySharedDiagnosis != "" {
		fmt.Fprintf(w, "\n%s %s\n", p.paint(bold, "About the widely shared diagnosis:"), d.WidelySharedDiagnosis)
	}
	if len(d.Gaps) > 0 {
		fmt.Fprintf(w, "\n%s\n", p.paint(yellow, "dpfdoctor could not see:"))
		for _, g := range d.Gaps {
			fmt.Fprintf(w, "  - %s: %s; %s\n", g.What, g.Reason, g.Impact)
		}
		fmt.Fprintln(w, "  Grant the ClusterRole in docs/rbac/dpfdoctor-readonly.yaml to see everything.")
	}
	if o.Output == OutputWide || len(o.Nodes) > 0 {
		fmt.Fprintln(w)
		return podTable(w, d, p)
	}
	if d.Summary.Failing > 0 {
		fmt.Fprintln(w, "\nPer-pod detail: add -o wide, or --node NAME.")
	}
	return nil
}

// classTable prints one line per class with its pod counts.
func classTable(w io.Writer, d *diagnose.Diagnosis, p palette) error {
	type row struct {
		pods, also int
		codes      []string
		fixable    bool
		unfixable  bool
	}
	rows := map[diagnose.Class]*row{}
	var order []diagnose.Class
	for _, f := range d.Findings {
		r, ok := rows[f.Class]
		if !ok {
			r = &row{}
			rows[f.Class] = r
			order = append(order, f.Class)
		}
		r.pods += len(f.Pods)
		r.also += len(f.SecondaryPods)
		if !slices.Contains(r.codes, f.Code) {
			r.codes = append(r.codes, f.Code)
		}
		if f.Class != diagnose.ClassHealthy && f.Class != diagnose.ClassOperatorPaused {
			r.fixable = r.fixable || f.Fixable
			r.unfixable = r.unfixable || !f.Fixable
		}
	}
	tw := printers.GetNewTabWriter(w)
	fmt.Fprintln(tw, "CLASS\tPODS\tALSO\tFIXABLE\tCODES")
	for _, c := range order {
		r := rows[c]
		fix := "-"
		switch {
		case r.fixable && r.unfixable:
			fix = "partly"
		case r.fixable:
			fix = "yes"
		case r.unfixable:
			fix = "no"
		}
		sort.Strings(r.codes)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", p.paint(classColour(c), string(c)), r.pods, r.also, fix, strings.Join(r.codes, ","))
	}
	return tw.Flush()
}

func classColour(c diagnose.Class) string {
	switch c {
	case diagnose.ClassHealthy:
		return green
	case diagnose.ClassOperatorPaused:
		return yellow
	}
	return red
}

func printMissing(w io.Writer, f diagnose.Finding) {
	const show = 5
	if len(f.Missing) == 0 {
		return
	}
	fmt.Fprintf(w, "   Missing (%d):\n", len(f.Missing))
	for i, r := range f.Missing {
		if i == show {
			fmt.Fprintf(w, "     … and %d more (-o json lists them all)\n", len(f.Missing)-show)
			break
		}
		fmt.Fprintf(w, "     %s\n", r.String())
	}
}

func podTable(w io.Writer, d *diagnose.Diagnosis, p palette) error {
	tw := printers.GetNewTabWriter(w)
	fmt.Fprintln(tw, "POD\tNODE\tCLASS\tSTATE\tRESTARTS\tVERSION\tDETAIL")
	for _, r := range d.Pods {
		detail := oneLine(r.Detail)
		if r.LogNotRead != "" {
			detail += " [" + r.LogNotRead + "]"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.Name, r.Node, p.paint(classColour(r.Class), string(r.Class)), r.State, r.Restarts, r.Version, detail)
	}
	return tw.Flush()
}

// count renders "1 pod" or "2 pods".
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// progress returns a progress line on a terminal (stderr) for the log
// reads of signatures whose samples disagree; nil elsewhere.
func (o *DiagnoseOptions) progress() func(read, total int) {
	if !isTerminal(o.ErrOut) {
		return nil
	}
	return func(read, total int) {
		if read%50 == 0 || read == total {
			fmt.Fprintf(o.ErrOut, "\rreading dms-init logs where samples disagree: %d/%d", read, total)
			if read == total {
				fmt.Fprintln(o.ErrOut)
			}
		}
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
