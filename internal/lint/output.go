package lint

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"
)

// Output formats.
const (
	FormatText  = "text"
	FormatJSON  = "json"
	FormatSARIF = "sarif"
	FormatJUnit = "junit"
)

// Formats lists the output formats, for flag help and errors.
var Formats = []string{FormatText, FormatJSON, FormatSARIF, FormatJUnit}

// ErrUnknownFormat is returned for an -o value not in Formats.
var ErrUnknownFormat = errors.New("unknown output format")

// Write renders a report. toolVersion and exitCode, the code the command
// exits with, go into SARIF output.
func Write(w io.Writer, r *Report, format, toolVersion string, exitCode int) error {
	switch format {
	case FormatText, "":
		return WriteText(w, r)
	case FormatJSON:
		return writeJSON(w, r, "lint report")
	case FormatSARIF:
		return WriteSARIF(w, r, toolVersion, exitCode)
	case FormatJUnit:
		return WriteJUnit(w, r)
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
			note := suppressedNote(wn.Suppressed)
			if note != "" {
				note = " [" + note + "]"
			}
			fmt.Fprintf(&b, "%s:%d: %s%s\n", wn.File, wn.Line, wn.Message, note)
		}
	}
	verdict := "PASSED"
	if r.Failed() {
		verdict = "FAILED"
	}
	suppressed := ""
	if r.Suppressed > 0 {
		suppressed = fmt.Sprintf(", %d suppressed", r.Suppressed)
	}
	fmt.Fprintf(&b, "\n%s: %d certain %s denied, %d possible %s denied, %d allowed%s (%d kubectl %s)\n", verdict,
		r.Denied, plural1(r.Denied, "request"), r.Possible, plural1(r.Possible, "request"), r.Allowed, suppressed, r.Calls, plural1(r.Calls, "call"))
	if r.Suggestion != "" {
		b.WriteString("\n# Least-privilege RBAC that allows the denied certain requests:\n")
		b.WriteString(r.Suggestion)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write lint report: %w", err)
	}
	return nil
}

func suppressedNote(s *Suppression) string {
	if s == nil {
		return ""
	}
	return "suppressed (" + s.Code + "): " + s.Reason
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
		{f.FailureIgnored, "failure ignored"}, {f.Func != "", "in " + f.Func}, {f.Why != "", f.Why},
		{f.Suppressed != nil, suppressedNote(f.Suppressed)}} {
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
	HelpURI              string    `json:"helpUri"`
	DefaultConfiguration struct {
		Level string `json:"level"`
	} `json:"defaultConfiguration"`
	Properties struct {
		Tags             []string `json:"tags"`
		SecuritySeverity string   `json:"security-severity"`
	} `json:"properties"`
}

type sarifResult struct {
	RuleID              string            `json:"ruleId"`
	RuleIndex           int               `json:"ruleIndex"`
	Level               string            `json:"level"`
	Message             sarifText         `json:"message"`
	Locations           []sarifLocation   `json:"locations"`
	PartialFingerprints map[string]string `json:"partialFingerprints"`
	Suppressions        []sarifSupp       `json:"suppressions,omitempty"`
	Properties          map[string]any    `json:"properties,omitempty"`
}

type sarifSupp struct {
	Kind          string `json:"kind"`
	Justification string `json:"justification"`
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

// docsURL is where the rules are documented; helpUri adds an anchor.
const docsURL = "https://github.com/dpfdoctor/dpfdoctor/blob/main/docs/lint.md"

// srcRoot is the uriBaseId of relative script paths.
const srcRoot = "SRCROOT"

// rule builds a rule. severity is a CVSS v3.1 base score as GitHub code
// scanning reads properties.security-severity; docs/lint.md#sarif gives
// each vector.
func rule(id, name, level, severity, anchor, short, full, help string) sarifRule {
	r := sarifRule{ID: id, Name: name, ShortDescription: sarifText{short}, FullDescription: sarifText{full}, Help: sarifText{help},
		HelpURI: docsURL + "#" + anchor}
	r.DefaultConfiguration.Level = level
	r.Properties.Tags = []string{"security", "rbac", "kubernetes"}
	r.Properties.SecuritySeverity = severity
	return r
}

// sarifRules are indexed by the results' ruleIndex.
var sarifRules = []sarifRule{
	rule(RuleDenied, "KubectlCallDenied", "error", "7.5", "dpf-lint-001-kubectlcalldenied",
		"A kubectl call the script always makes is denied by RBAC",
		"With the given arguments every run of the script that completes makes this API request, and the RBAC manifests do not allow it for the script's ServiceAccount. The call fails with Forbidden at run time.",
		"Add the missing rule with a separate Role and RoleBinding (dpfdoctor lint --suggest prints least-privilege YAML), or change the call."),
	rule(RulePossiblyDenied, "KubectlCallPossiblyDenied", "warning", "5.9", "dpf-lint-002-kubectlcallpossiblydenied",
		"A kubectl call the script may make is denied by RBAC",
		"The call depends on values lint cannot resolve (a condition on runtime state, an unresolved name or namespace, an unknown resource type). If it is made, RBAC denies it.",
		"Check whether the path can run in production; pass --args or --pod so lint can resolve the script's arguments, and --crds for unknown kinds."),
	rule(RuleNotChecked, "KubectlCallNotChecked", "note", "2.0", "dpf-lint-003-kubectlcallnotchecked",
		"lint could not check a kubectl call",
		"The call reads objects from a file, uses eval, or a verb lint does not model, so its API requests are not checked.",
		"Feed objects through a here-document or a variable (kubectl apply -f -), or check the call by hand."),
}

// sarifRun collects results and numbers identical fingerprints apart.
type sarifRun struct {
	results []sarifResult
	seen    map[string]int
}

// add appends a result of sarifRules[idx] at file:line:col. Its
// fingerprint hashes the rule, the path, the function, the call with its
// spacing normalised and the request, but not the line, so it survives
// edits elsewhere in the script; equal ones are numbered in order.
func (sr *sarifRun) add(idx int, msg, file string, line, col int, s *Suppression, key ...string) *sarifResult {
	var l sarifLocation
	a, r := &l.PhysicalLocation.ArtifactLocation, &l.PhysicalLocation.Region
	a.URI = filepath.ToSlash(file)
	if filepath.IsAbs(file) {
		a.URI = (&url.URL{Scheme: "file", Path: a.URI}).String()
	} else {
		a.URI, a.URIBaseID = strings.TrimPrefix(a.URI, "./"), srcRoot
	}
	r.StartLine, r.StartColumn = max(line, 1), col
	h := sha256.New()
	for _, k := range append([]string{sarifRules[idx].ID, a.URI}, key...) {
		h.Write([]byte(strings.Join(strings.Fields(k), " ") + "\x00"))
	}
	fp := hex.EncodeToString(h.Sum(nil)[:16])
	sr.seen[fp]++
	res := sarifResult{RuleID: sarifRules[idx].ID, RuleIndex: idx, Level: sarifRules[idx].DefaultConfiguration.Level,
		Message: sarifText{msg}, Locations: []sarifLocation{l},
		PartialFingerprints: map[string]string{"dpfdoctorFinding/v1": fmt.Sprintf("%s:%d", fp, sr.seen[fp])}}
	if s != nil {
		res.Suppressions = []sarifSupp{{Kind: "external", Justification: s.Reason}}
	}
	sr.results = append(sr.results, res)
	return &sr.results[len(sr.results)-1]
}

// WriteSARIF renders the report as SARIF 2.1.0 for code-scanning UIs:
// denied certain calls are errors (DPF-LINT-001), denied possible calls
// warnings (DPF-LINT-002), calls lint could not check notes
// (DPF-LINT-003). Allowed calls are not results; suppressed ones carry an
// external suppression with its reason. exitCode is the command's.
func WriteSARIF(w io.Writer, r *Report, toolVersion string, exitCode int) error {
	sr := &sarifRun{results: []sarifResult{}, seen: map[string]int{}}
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
		res := sr.add(idx, msg, f.File, f.Line, f.Col, f.Suppressed, f.Func, f.Call, f.Needs())
		res.Properties = map[string]any{"verb": f.Request.Verb, "resource": f.Request.GroupResource(), "certainty": string(f.Certainty)}
		if f.Request.Namespace != "" {
			res.Properties["namespace"] = f.Request.Namespace
		}
	}
	for _, wn := range r.Warnings {
		sr.add(2, wn.Message+".", wn.File, wn.Line, 0, wn.Suppressed, wn.Message)
	}
	type driver struct {
		Name           string      `json:"name"`
		Version        string      `json:"version,omitempty"`
		InformationURI string      `json:"informationUri"`
		Rules          []sarifRule `json:"rules"`
	}
	type invocation struct {
		ExitCode            int  `json:"exitCode"`
		ExecutionSuccessful bool `json:"executionSuccessful"`
	}
	type run struct {
		Tool struct {
			Driver driver `json:"driver"`
		} `json:"tool"`
		Invocations        []invocation                    `json:"invocations"`
		OriginalURIBaseIDs map[string]map[string]sarifText `json:"originalUriBaseIds"`
		Results            []sarifResult                   `json:"results"`
	}
	// The root has no uri (SARIF 2.1.0 §3.14.14 allows that): it is the
	// directory lint ran in; code scanning resolves relative URIs against
	// the repository checkout.
	rn := run{Results: sr.results, Invocations: []invocation{{ExitCode: exitCode, ExecutionSuccessful: true}},
		OriginalURIBaseIDs: map[string]map[string]sarifText{srcRoot: {"description": {"the directory dpfdoctor lint ran in; relative --script paths are resolved against it"}}}}
	rn.Tool.Driver = driver{Name: "dpfdoctor", Version: toolVersion, InformationURI: "https://github.com/dpfdoctor/dpfdoctor", Rules: sarifRules}
	return writeJSON(w, struct {
		Schema  string `json:"$schema"`
		Version string `json:"version"`
		Runs    []run  `json:"runs"`
	}{"https://json.schemastore.org/sarif-2.1.0.json", "2.1.0", []run{rn}}, "SARIF")
}
