package diagnose

import (
	"fmt"
	"strings"
)

// Markdown renders the diagnosis for a support case or a ticket.
func (d *Diagnosis) Markdown() string {
	var w strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&w, format, a...) }
	p("# dpfdoctor diagnosis\n\n")
	p("- Schema: `%s`\n", d.SchemaVersion)
	p("- DPF: namespace `%s`, DPFOperatorConfig `%s`, version %s (from %s), paused: %t\n",
		d.DPF.Namespace, d.DPF.OperatorConfig, orUnknown(d.DPF.Version), orUnknown(d.DPF.VersionSource), d.DPF.Paused)
	p("- Pods: %d (%d healthy, %d failing); API requests used: %d\n", d.Summary.Pods, d.Summary.Healthy, d.Summary.Failing, d.Requests)
	if n := d.Summary.Inferred + d.Summary.Unread; n > 0 {
		p("- Own dms-init log not read: %d (%d classified from pods with the same failure signature); see the Pods table\n", n, d.Summary.Inferred)
	}
	p("\n")
	if d.WidelySharedDiagnosis != "" {
		p("## About the widely shared diagnosis\n\n%s\n\n", d.WidelySharedDiagnosis)
	}
	p("## Findings\n\n")
	if len(d.Findings) == 0 {
		p("No DMS or host-agent pods were found.\n\n")
	}
	for _, f := range d.Findings {
		p("### %s %s (%s)\n\n%s\n\n", f.Code, f.Class, f.Severity, f.Summary)
		if len(f.Pods) > 0 {
			p("- Pods (%d): %s\n", len(f.Pods), listShort(f.Pods, 20))
		}
		if len(f.SecondaryPods) > 0 {
			p("- Also affects, after their first problem is fixed (%d): %s\n", len(f.SecondaryPods), listShort(f.SecondaryPods, 20))
		}
		p("- Fixable by dpfdoctor: %t\n", f.Fixable)
		if len(f.Missing) > 0 {
			p("- Missing permissions (%d):\n", len(f.Missing))
			for i, r := range f.Missing {
				if i == 20 {
					p("  - … and %d more\n", len(f.Missing)-20)
					break
				}
				p("  - `%s`\n", r.String())
			}
		}
		if len(f.Evidence) > 0 {
			p("- Evidence:\n")
			for _, e := range f.Evidence {
				p("  - %s — %s:\n\n    ```\n    %s\n    ```\n", e.Kind, e.Source, strings.ReplaceAll(e.Text, "\n", "\n    "))
			}
		}
		p("- Next step: %s\n\n", f.NextStep)
	}
	if len(d.Gaps) > 0 {
		p("## What dpfdoctor could not see\n\n")
		for _, g := range d.Gaps {
			p("- **%s**: %s. %s\n", g.What, g.Reason, g.Impact)
		}
		p("\n")
	}
	p("## Pods\n\n| Pod | Node | Class | State | Restarts | Version | Detail |\n|---|---|---|---|---|---|---|\n")
	for _, r := range d.Pods {
		detail := r.Detail
		if r.LogNotRead != "" {
			detail += " (" + r.LogNotRead + ")"
		}
		p("| %s | %s | %s | %s | %d | %s | %s |\n", r.Name, r.Node, r.Class, r.State, r.Restarts, r.Version, strings.ReplaceAll(detail, "|", "\\|"))
	}
	return w.String()
}

func listShort(xs []string, n int) string {
	if len(xs) <= n {
		return strings.Join(xs, ", ")
	}
	return strings.Join(xs[:n], ", ") + fmt.Sprintf(", … (%d more)", len(xs)-n)
}
