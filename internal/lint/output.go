package lint

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
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
		return writeJSON(w, r, "lint report")
	case FormatSARIF:
		return WriteSARIF(w, r, toolVersion)
	}
	return fmt.Errorf("%w %q, allowed formats are: %s", ErrUnknownFormat, format, strings.Join(Formats, ","))
}

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
		args = cmp.Or(strings.Join(r.Args, " "), "none")
	}
	fmt.Fprintf(&b, "# dpfdoctor lint: %s as %s\n", strings.Join(r.Scripts, ", "), r.Subject.User)
	fmt.Fprintf(&b, "# script arguments: %s\n", args)
	titles := map[Certainty]string{Certain: "certain calls: made on every run that completes with these arguments",
		Possible: "possible calls: depend on what lint cannot resolve"}
	for _, c := range []Certainty{Certain, Possible} {
		header := "\n## " + titles[c] + "\n" // written before the first finding
		for _, f := range r.Findings {
			if f.Certainty == c {
				b.WriteString(header + textLine(f) + "\n")
				header = ""
			}
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
	for _, n := range []struct {
		on   bool
		note string
	}{{f.NamePattern != "", "name not resolved, checked for any name"}, {f.StderrHidden, "stderr hidden"},
		{f.FailureIgnored, "failure ignored"}, {f.Func != "", "in " + f.Func}, {f.Why != "", f.Why}} {
		if n.on {
			notes = append(notes, n.note)
		}
	}
	if len(notes) > 0 {
		b.WriteString(" [" + strings.Join(notes, "; ") + "]")
	}
	return b.String()
}

// SARIF rule IDs. They are stable: never reuse one for another meaning.
const (
	RuleDenied         = "DPF-LINT-001"
	RulePossiblyDenied = "DPF-LINT-002"
	RuleNotChecked     = "DPF-LINT-003"
)

type sarifText struct {
	Text string `json:"text"`
}

type sarifRule struct {
	ID                   string    `json:"id"`
	Name                 string    `json:"name"`
	ShortDescription     sarifText `json:"shortDescription"`
	FullDescription      sarifText `json:"fullDescription"`
	Help                 sarifText `json:"help"`
	DefaultConfiguration struct {
		Level string `json:"level"`
	} `json:"defaultConfiguration"`
}

type sarifResult struct {
	RuleID     string          `json:"ruleId"`
	RuleIndex  int             `json:"ruleIndex"`
	Level      string          `json:"level"`
	Message    sarifText       `json:"message"`
	Locations  []sarifLocation `json:"locations"`
	Properties map[string]any  `json:"properties,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation struct {
		ArtifactLocation struct {
			URI       string `json:"uri"`
			URIBaseID string `json:"uriBaseId,omitempty"`
		} `json:"artifactLocation"`
		Region struct {
			StartLine   int `json:"startLine"`
			StartColumn int `json:"startColumn,omitempty"`
		} `json:"region"`
	} `json:"physicalLocation"`
}

func rule(id, name, level, short, full, help string) sarifRule {
	r := sarifRule{ID: id, Name: name, ShortDescription: sarifText{short}, FullDescription: sarifText{full}, Help: sarifText{help}}
	r.DefaultConfiguration.Level = level
	return r
}

// sarifRules are indexed by the results' ruleIndex.
var sarifRules = []sarifRule{
	rule(RuleDenied, "KubectlCallDenied", "error",
		"A kubectl call the script always makes is denied by RBAC",
		"With the given arguments every run of the script that completes makes this API request, and the RBAC manifests do not allow it for the script's ServiceAccount. The call fails with Forbidden at run time.",
		"Add the missing rule with a separate Role and RoleBinding (dpfdoctor lint --suggest prints least-privilege YAML), or change the call."),
	rule(RulePossiblyDenied, "KubectlCallPossiblyDenied", "warning",
		"A kubectl call the script may make is denied by RBAC",
		"The call depends on values lint cannot resolve (a condition on runtime state, an unresolved name or namespace, an unknown resource type). If it is made, RBAC denies it.",
		"Check whether the path can run in production; pass --args or --pod so lint can resolve the script's arguments, and --crds for unknown kinds."),
	rule(RuleNotChecked, "KubectlCallNotChecked", "note",
		"lint could not check a kubectl call",
		"The call reads objects from a file, uses eval, or a verb lint does not model, so its API requests are not checked.",
		"Feed objects through a here-document or a variable (kubectl apply -f -), or check the call by hand."),
}

// result is a result of sarifRules[idx] at file:line:col.
func result(idx int, msg, file string, line, col int) sarifResult {
	var l sarifLocation
	a, r := &l.PhysicalLocation.ArtifactLocation, &l.PhysicalLocation.Region
	a.URI = filepath.ToSlash(file)
	if !filepath.IsAbs(file) {
		a.URI, a.URIBaseID = strings.TrimPrefix(a.URI, "./"), "%SRCROOT%"
	}
	r.StartLine, r.StartColumn = max(line, 1), col
	return sarifResult{RuleID: sarifRules[idx].ID, RuleIndex: idx, Level: sarifRules[idx].DefaultConfiguration.Level,
		Message: sarifText{msg}, Locations: []sarifLocation{l}}
}

// WriteSARIF renders the report as SARIF 2.1.0 for code-scanning UIs:
// denied certain calls are errors (DPF-LINT-001), denied possible calls
// warnings (DPF-LINT-002), calls lint could not check notes
// (DPF-LINT-003). Allowed calls are not results.
func WriteSARIF(w io.Writer, r *Report, toolVersion string) error {
	results := []sarifResult{}
	for _, f := range r.Findings {
		if f.Decision.Allowed {
			continue
		}
		idx := 0
		if f.Certainty != Certain {
			idx = 1
		}
		msg := fmt.Sprintf("`%s` needs %s, which RBAC denies to %s: %s.", f.Call, f.Needs(), r.Subject.User, f.Decision.Reason)
		if f.Why != "" {
			msg += " Possible: " + f.Why + "."
		}
		if f.StderrHidden {
			msg += " The script hides kubectl's stderr here, so the Forbidden error never reaches its log."
		}
		res := result(idx, msg, f.File, f.Line, f.Col)
		res.Properties = map[string]any{"verb": f.Request.Verb, "resource": f.Request.GroupResource(), "certainty": string(f.Certainty)}
		if f.Request.Namespace != "" {
			res.Properties["namespace"] = f.Request.Namespace
		}
		results = append(results, res)
	}
	for _, wn := range r.Warnings {
		results = append(results, result(2, wn.Message+".", wn.File, wn.Line, 0))
	}
	type driver struct {
		Name           string      `json:"name"`
		Version        string      `json:"version,omitempty"`
		InformationURI string      `json:"informationUri"`
		Rules          []sarifRule `json:"rules"`
	}
	type run struct {
		Tool struct {
			Driver driver `json:"driver"`
		} `json:"tool"`
		Results []sarifResult `json:"results"`
	}
	rn := run{Results: results}
	rn.Tool.Driver = driver{Name: "dpfdoctor", Version: toolVersion, InformationURI: "https://github.com/dpfdoctor/dpfdoctor", Rules: sarifRules}
	return writeJSON(w, struct {
		Schema  string `json:"$schema"`
		Version string `json:"version"`
		Runs    []run  `json:"runs"`
	}{"https://json.schemastore.org/sarif-2.1.0.json", "2.1.0", []run{rn}}, "SARIF")
}
