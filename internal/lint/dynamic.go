package lint

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
)

// Observed is an API request a script made when it ran (lint --dynamic),
// read from the API server's audit log with the authorizer's decision.
type Observed struct {
	Request access.Request `json:"request"`
	Allowed bool           `json:"allowed"`
	Reason  string         `json:"reason,omitempty"`
	// Code is the HTTP status of the answer (403 when denied, 404 for a
	// get of an absent object).
	Code int `json:"code,omitempty"`
	// Count is how often the run made this request with this answer.
	Count int `json:"count"`
}

func (o Observed) String() string {
	d := "allowed"
	if !o.Allowed {
		d = "DENIED"
	}
	s := fmt.Sprintf("%s (%d)", d, o.Code)
	if o.Reason != "" {
		s += ": " + o.Reason
	}
	if o.Count > 1 {
		s += fmt.Sprintf(" ×%d", o.Count)
	}
	return o.Request.String() + " — " + s
}

// DynamicCall is a static finding with the requests of the run that match
// it.
type DynamicCall struct {
	Finding
	Observed []Observed `json:"observed"`
}

// DynamicRun is one run of one script with one argument set: the static
// report for exactly these arguments beside what the script did.
type DynamicRun struct {
	Script   string        `json:"script"`
	Args     []string      `json:"args"`
	ExitCode int           `json:"exitCode"`
	Log      []string      `json:"log,omitempty"`
	Static   *Report       `json:"static"`
	Calls    []DynamicCall `json:"calls"`
	// Missed are requests the script made that no static finding
	// predicts: a lint bug.
	Missed []Observed `json:"missed"`
	// Denied counts the observed requests RBAC denied.
	Denied int `json:"denied"`
}

// DynamicSchemaVersion identifies the JSON layout of `lint --dynamic`'s
// report (docs/schema/lint-dynamic-v1alpha1.schema.json).
const DynamicSchemaVersion = "dpfdoctor.dev/lint-dynamic/v1alpha1"

// DynamicReport is `lint --dynamic`'s report.
type DynamicReport struct {
	// SchemaVersion is DynamicSchemaVersion in the JSON WriteDynamic prints.
	SchemaVersion string       `json:"schemaVersion"`
	Runs          []DynamicRun `json:"runs"`
}

// Failed: a certain call denied statically, an observed request denied, or
// one static analysis missed.
func (r *DynamicReport) Failed() bool {
	for _, run := range r.Runs {
		if run.Static.Failed() || run.Denied > 0 || len(run.Missed) > 0 {
			return true
		}
	}
	return false
}

// NewDynamicRun pairs each observed request with the first static finding
// that predicts it; the rest are misses.
func NewDynamicRun(static *Report, script string, args []string, exit int, log []string, observed []Observed) DynamicRun {
	run := DynamicRun{Script: script, Args: args, ExitCode: exit, Log: log, Static: static,
		Calls: make([]DynamicCall, 0, len(static.Findings)), Missed: []Observed{}}
	for _, f := range static.Findings {
		run.Calls = append(run.Calls, DynamicCall{Finding: f, Observed: []Observed{}})
	}
	for _, o := range observed {
		if !o.Allowed {
			run.Denied++
		}
		i := slices.IndexFunc(run.Calls, func(c DynamicCall) bool { return predicts(c.Finding, o.Request) })
		switch {
		case i < 0 && o.Allowed && o.Request.NonResourceURL == "/version":
			// kubectl reads the server version for its own purposes, too;
			// system:discovery allows it to everyone.
		case i < 0:
			run.Missed = count(run.Missed, o)
		default:
			run.Calls[i].Observed = count(run.Calls[i].Observed, o)
		}
	}
	return run
}

// count adds o to list, counting repeats of the same request and answer.
func count(list []Observed, o Observed) []Observed {
	for i := range list {
		if list[i].Request == o.Request && list[i].Allowed == o.Allowed && list[i].Code == o.Code {
			list[i].Count++
			return list
		}
	}
	o.Count = 1
	return append(list, o)
}

var shellExpansion = regexp.MustCompile(`\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*`)

// predicts reports whether a finding's request covers an observed one: the
// same verb and resource, the namespace (or an unresolved one), and the
// name, an unresolved name's shape, or any name for create (RBAC never sees
// a created object's name).
func predicts(f Finding, o access.Request) bool {
	s := f.Request
	if s.Verb != o.Verb || s.Group != o.Group || s.Resource != o.Resource || s.Subresource != o.Subresource || s.NonResourceURL != o.NonResourceURL {
		return false
	}
	if s.Namespace != o.Namespace && f.NamespacePattern == "" {
		return false
	}
	switch {
	case s.Verb == "create" || s.Name == o.Name:
		return true
	case s.Name == "" && f.NamePattern != "":
		ok, _ := path.Match(shellExpansion.ReplaceAllString(f.NamePattern, "*"), o.Name)
		return ok
	}
	return s.Name == ""
}

// WriteDynamic renders the report as text, json or sarif; exitCode is the
// command's.
func WriteDynamic(w io.Writer, r *DynamicReport, format, toolVersion string, exitCode int) error {
	switch format {
	case FormatJSON:
		doc := *r
		doc.SchemaVersion = DynamicSchemaVersion
		return writeJSON(w, &doc, "report")
	case FormatSARIF:
		return writeDynamicSARIF(w, r, toolVersion, exitCode)
	case FormatText, "":
		return writeDynamicText(w, r)
	}
	return fmt.Errorf("%w %q with --dynamic, allowed formats are: text,json,sarif", ErrUnknownFormat, format)
}

func writeDynamicText(w io.Writer, r *DynamicReport) error {
	var b strings.Builder
	denied, missed, static := 0, 0, 0
	for _, run := range r.Runs {
		fmt.Fprintf(&b, "%s %s: exit %d\n", run.Script, strings.Join(run.Args, " "), run.ExitCode)
		quiet := 0
		for _, c := range run.Calls {
			if len(c.Observed) == 0 && c.Certainty != Certain {
				quiet++ // a possible call this run did not make
				continue
			}
			fmt.Fprintf(&b, "  %s\n", textLine(c.Finding))
			if len(c.Observed) == 0 {
				b.WriteString("      not observed\n")
			}
			for _, o := range c.Observed {
				fmt.Fprintf(&b, "      observed: %s\n", o)
			}
		}
		for _, wn := range run.Static.Warnings {
			fmt.Fprintf(&b, "  %s:%d: warning: %s\n", wn.File, wn.Line, wn.Message)
		}
		if quiet > 0 {
			fmt.Fprintf(&b, "  (%d possible %s not made in this run)\n", quiet, plural1(quiet, "request"))
		}
		for _, o := range run.Missed {
			fmt.Fprintf(&b, "  STATIC MISS (a lint bug: the script made this request and lint did not predict it): %s\n", o)
		}
		denied += run.Denied
		missed += len(run.Missed)
		static += run.Static.Denied
		b.WriteString("\n")
	}
	verdict := "OK"
	if r.Failed() {
		verdict = "FAILED"
	}
	fmt.Fprintf(&b, "%s: %d %s, %d observed %s denied, %d %s static analysis missed, %d certain %s denied statically\n", verdict,
		len(r.Runs), plural1(len(r.Runs), "run"), denied, plural1(denied, "request"), missed, plural1(missed, "request"), static, plural1(static, "request"))
	_, err := io.WriteString(w, b.String())
	return err
}

// Dynamic SARIF rules, after the static ones.
const (
	RuleObservedDenied = "DPF-LINT-101"
	RuleStaticMiss     = "DPF-LINT-102"
)

var dynamicRules = []sarifRule{
	rule(RuleObservedDenied, "ObservedRequestDenied", "error", "7.5", "dynamic-run-the-script---dynamic",
		"The script made an API request that RBAC denied",
		"lint --dynamic ran the script in a sandbox against a sim with the given RBAC; the API server's audit log records this request as forbidden.",
		"Grant the request with a separate Role and RoleBinding, or change the script."),
	rule(RuleStaticMiss, "StaticAnalysisMissedRequest", "error", "7.5", "dynamic-run-the-script---dynamic",
		"The script made an API request static analysis did not predict",
		"This is a lint bug or a construct lint does not follow (eval, source, files): the static verdicts do not cover this request.",
		"Report the script construct; until then, check the request by hand."),
}

// writeDynamicSARIF is the static SARIF of every run plus one result per
// observed denial and per static miss, located at the script's first line
// (the audit log knows no line).
func writeDynamicSARIF(w io.Writer, r *DynamicReport, toolVersion string, exitCode int) error {
	var merged map[string]any
	results := []any{}
	for _, run := range r.Runs {
		var buf bytes.Buffer
		if err := WriteSARIF(&buf, run.Static, toolVersion, exitCode); err != nil {
			return err
		}
		var doc map[string]any
		if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
			return err
		}
		if merged == nil {
			merged = doc
		}
		if rs, ok := doc["runs"].([]any)[0].(map[string]any)["results"].([]any); ok {
			results = append(results, rs...)
		}
		add := func(idx int, msg string) {
			loc := map[string]any{"artifactLocation": map[string]any{"uri": filepath.ToSlash(run.Script)}, "region": map[string]any{"startLine": 1}}
			if !filepath.IsAbs(run.Script) {
				loc["artifactLocation"].(map[string]any)["uriBaseId"] = srcRoot
			}
			results = append(results, map[string]any{"ruleId": dynamicRules[idx].ID, "ruleIndex": len(sarifRules) + idx, "level": "error",
				"message": sarifText{msg}, "locations": []any{map[string]any{"physicalLocation": loc}}})
		}
		args := strings.Join(run.Args, " ")
		for _, c := range run.Calls {
			for _, o := range c.Observed {
				if !o.Allowed {
					add(0, fmt.Sprintf("With arguments `%s`, `%s` (line %d) made %s.", args, c.Call, c.Line, o))
				}
			}
		}
		for _, o := range run.Missed {
			if !o.Allowed {
				add(0, fmt.Sprintf("With arguments `%s`, the script made %s.", args, o))
			}
			add(1, fmt.Sprintf("With arguments `%s`, the script made %s, which static analysis did not predict (a lint bug).", args, o))
		}
	}
	if merged == nil {
		return WriteSARIF(w, &Report{}, toolVersion, exitCode)
	}
	rn := merged["runs"].([]any)[0].(map[string]any)
	driver := rn["tool"].(map[string]any)["driver"].(map[string]any)
	driver["rules"] = append(driver["rules"].([]any), dynamicRules[0], dynamicRules[1])
	rn["results"] = results
	return writeJSON(w, merged, "SARIF")
}
