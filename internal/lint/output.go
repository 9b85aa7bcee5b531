package lint

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Output formats.
const (
	FormatText  = "text"
	FormatJSON  = "json"
	FormatSARIF = "sarif"
)

// Formats lists the output formats, for flag help and errors.
var Formats = []string{FormatText, FormatJSON, FormatSARIF}

// ErrUnknownFormat is returned for an -o value not in Formats.
var ErrUnknownFormat = errors.New("unknown output format")

// Write renders a report. toolVersion goes into SARIF output.
func Write(w io.Writer, r *Report, format, toolVersion string) error {
	switch format {
	case FormatText, "":
		return WriteText(w, r)
	case FormatJSON:
		return WriteJSON(w, r)
	case FormatSARIF:
		return WriteSARIF(w, r, toolVersion)
	}
	return fmt.Errorf("%w %q, allowed formats are: %s", ErrUnknownFormat, format, strings.Join(Formats, ","))
}

// WriteJSON renders the report as indented JSON.
func WriteJSON(w io.Writer, r *Report) error { return writeJSON(w, r, "lint report") }

func writeJSON(w io.Writer, v any, what string) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write %s: %w", what, err)
	}
	return nil
}

// WriteText renders one line per request:
//
//	file:line: <call> needs <verb> <resource>[/<sub>] [<name>] in <ns> — DENIED (no rule)
//
// certain calls first, then possible ones, then warnings and a summary.
func WriteText(w io.Writer, r *Report) error {
	var b strings.Builder
	args := "unknown (pass --args or --pod to decide the branches they select)"
	if r.Args != nil {
		args = strings.Join(r.Args, " ")
		if args == "" {
			args = "none"
		}
	}
	fmt.Fprintf(&b, "# dpfdoctor lint: %s as %s\n", strings.Join(r.Scripts, ", "), r.Subject.User)
	fmt.Fprintf(&b, "# script arguments: %s\n", args)
	for _, c := range []Certainty{Certain, Possible} {
		title := "certain calls: made on every run that completes with these arguments"
		if c == Possible {
			title = "possible calls: depend on what lint cannot resolve"
		}
		var lines []string
		for _, f := range r.Findings {
			if f.Certainty == c {
				lines = append(lines, textLine(f))
			}
		}
		if len(lines) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n## %s\n", title)
		for _, l := range lines {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	if len(r.Warnings) > 0 {
		b.WriteString("\n## not checked\n")
		for _, wn := range r.Warnings {
			fmt.Fprintf(&b, "%s:%d: %s\n", wn.File, wn.Line, wn.Message)
		}
	}
	verdict := "PASSED"
	if r.Failed() {
		verdict = "FAILED"
	}
	fmt.Fprintf(&b, "\n%s: %d certain %s denied, %d possible %s denied, %d allowed (%d kubectl %s)\n", verdict,
		r.Denied, plural1(r.Denied, "request"), r.Possible, plural1(r.Possible, "request"), r.Allowed, r.Calls, plural1(r.Calls, "call"))
	if r.Suggestion != "" {
		b.WriteString("\n# Least-privilege RBAC that allows the denied certain requests:\n")
		b.WriteString(r.Suggestion)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write lint report: %w", err)
	}
	return nil
}

func plural1(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func textLine(f Finding) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d: %s needs %s — ", f.File, f.Line, f.Call, f.Needs())
	if f.Decision.Allowed {
		b.WriteString("allowed by " + f.Decision.By)
	} else {
		b.WriteString("DENIED (" + f.Decision.Reason + ")")
	}
	var notes []string
	if f.NamePattern != "" {
		notes = append(notes, "name not resolved, checked for any name")
	}
	if f.StderrHidden {
		notes = append(notes, "stderr hidden")
	}
	if f.FailureIgnored {
		notes = append(notes, "failure ignored")
	}
	if f.Func != "" {
		notes = append(notes, "in "+f.Func)
	}
	if f.Why != "" {
		notes = append(notes, f.Why)
	}
	if len(notes) > 0 {
		b.WriteString(" [" + strings.Join(notes, "; ") + "]")
	}
	return b.String()
}
