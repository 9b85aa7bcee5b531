package lint

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
	rbacv1 "k8s.io/api/rbac/v1"
)

const suppressSecrets = `suppressions:
- code: DPF-LINT-001
  path: "*/dmsinit-v25.4.0.sh"
  call: "*get secret*"
  reason: non-Kubernetes mode is not used here
`

// Suppressed denials are listed, counted apart and do not fail the run;
// --fail-on possible fails on the possible denials that remain.
func TestSuppressionsAndFailOn(t *testing.T) {
	sc := scenarios[0]
	sc.config = suppressSecrets
	r := runScenario(t, sc)
	if r.Denied != 0 || r.Suppressed != 3 || r.Possible != 3 || r.Failed() {
		t.Fatalf("denied %d, suppressed %d, possible %d, failed %v; want 0, 3, 3, false", r.Denied, r.Suppressed, r.Possible, r.Failed())
	}
	for _, f := range find(r, "get", "secrets", "") {
		if f.Suppressed == nil || f.Suppressed.Reason != "non-Kubernetes mode is not used here" {
			t.Errorf("%s:%d not suppressed: %+v", f.File, f.Line, f.Suppressed)
		}
	}
	var text, sarif bytes.Buffer
	if err := WriteText(&text, r); err != nil || !strings.Contains(text.String(), "PASSED: 0 certain requests denied, 3 possible requests denied, 11 allowed, 3 suppressed") ||
		!strings.Contains(text.String(), "[name not resolved, checked for any name; in create_certificate; suppressed (DPF-LINT-001): non-Kubernetes mode is not used here]") {
		t.Errorf("text: %v\n%s", err, text.String())
	}
	if err := WriteSARIF(&sarif, r, "test", 0); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Runs []struct {
			Results []struct {
				RuleID       string                                 `json:"ruleId"`
				Suppressions []struct{ Kind, Justification string } `json:"suppressions"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(sarif.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, res := range doc.Runs[0].Results {
		if len(res.Suppressions) > 0 {
			n++
			if s := res.Suppressions[0]; res.RuleID != RuleDenied || s.Kind != "external" || s.Justification == "" {
				t.Errorf("suppression %+v on %s", s, res.RuleID)
			}
		}
	}
	if n != 3 {
		t.Errorf("%d suppressed SARIF results, want 3", n)
	}
	if y, err := Suggest(r, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: dmsSA, Namespace: dmsNS}); err != nil || len(y) != 0 {
		t.Errorf("Suggest grants suppressed denials: %v\n%s", err, y)
	}

	sc.failOn = Possible
	if r := runScenario(t, sc); !r.Failed() || r.FailOn != Possible {
		t.Errorf("--fail-on possible with 3 possible denials: Failed() = false")
	}
	// One line only.
	sc.config = strings.Replace(suppressSecrets, "  reason:", "  line: 218\n  reason:", 1)
	sc.failOn = ""
	if r := runScenario(t, sc); r.Denied != 2 || r.Suppressed != 1 || !r.Failed() {
		t.Errorf("line 218: denied %d, suppressed %d", r.Denied, r.Suppressed)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	for _, tc := range []struct{ config, says string }{
		{"suppressions:\n- code: DPF-LINT-001\n  reasn: typo\n", `unknown field "reasn"`},
		{"suppressions:\n- code: DPF-LINT-009\n  reason: x\n", `code "DPF-LINT-009"`},
		{"suppressions:\n- code: DPF-LINT-001\n", "reason is required"},
		{"suppressions:\n- code: DPF-LINT-001\n  path: '[z-a]'\n  reason: x\n", `glob "[z-a]"`},
		{"suppressions:\n- code: DPF-LINT-001\n  line: -1\n  reason: x\n", "line -1"},
		{"suppressions: {}\n", "suppressions"},
	} {
		file := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(file, []byte(tc.config), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadConfig(file); err == nil || !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), file) {
			t.Errorf("%q: err = %v, want it to name %s and say %q", tc.config, err, file, tc.says)
		}
	}
}

// Fingerprints are unique within a run and do not move when lines are
// added above the calls.
func TestSARIFFingerprintsStable(t *testing.T) {
	fingerprints := func(prefix string) []string {
		src, err := os.ReadFile("testdata/dmsinit-v25.7.sh")
		if err != nil {
			t.Fatal(err)
		}
		s, err := ParseScript("scripts/dmsinit.sh", append([]byte(prefix), src...))
		if err != nil {
			t.Fatal(err)
		}
		sc := scenarios[2]
		args, _ := ParseArgs(sc.args)
		set, err := rbac.LoadManifests(sc.rbac)
		if err != nil {
			t.Fatal(err)
		}
		r := Lint([]*Script{s}, set, Options{Args: args, DefaultNamespace: dmsNS, Subject: access.ServiceAccount(dmsNS, dmsSA)})
		var b bytes.Buffer
		if err := WriteSARIF(&b, r, "test", 0); err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Runs []struct {
				Results []struct {
					PartialFingerprints map[string]string `json:"partialFingerprints"`
				} `json:"results"`
			} `json:"runs"`
		}
		if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		var out []string
		seen := map[string]bool{}
		for _, res := range doc.Runs[0].Results {
			fp := res.PartialFingerprints["dpfdoctorFinding/v1"]
			if fp == "" || seen[fp] {
				t.Fatalf("fingerprint %q empty or repeated", fp)
			}
			seen[fp] = true
			out = append(out, fp)
		}
		return out
	}
	a, b := fingerprints(""), fingerprints("#!/bin/bash\n# a comment\n\n")
	if len(a) < 2 || strings.Join(a, ",") != strings.Join(b, ",") {
		t.Errorf("fingerprints moved with the lines:\n%v\n%v", a, b)
	}
}

// JUnit: one suite per script, one case per request, failures for the
// denials that fail the run.
func TestJUnit(t *testing.T) {
	for _, failOn := range []Certainty{Certain, Possible} {
		sc := scenarios[0]
		sc.failOn = failOn
		r := runScenario(t, sc)
		var b bytes.Buffer
		if err := WriteJUnit(&b, r); err != nil {
			t.Fatal(err)
		}
		var doc junitSuites
		if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
			t.Fatalf("not XML: %v\n%s", err, b.String())
		}
		want := r.Denied
		if failOn == Possible {
			want += r.Possible
		}
		if len(doc.Suites) != 1 || doc.Suites[0].Name != sc.scripts[0] || doc.Tests != len(r.Findings)+len(r.Warnings) ||
			doc.Failures != want || doc.Suites[0].Failures != want || len(doc.Suites[0].Cases) != doc.Tests {
			t.Errorf("fail-on %s: %d suites, %d tests, %d failures; want 1, %d, %d", failOn, len(doc.Suites), doc.Tests, doc.Failures,
				len(r.Findings)+len(r.Warnings), want)
		}
	}
}

// Every rule's helpUri points at a heading of docs/lint.md (GitHub's
// anchor: lower case, punctuation dropped, spaces as hyphens).
func TestRuleHelpAnchors(t *testing.T) {
	doc, err := os.ReadFile("../../docs/lint.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, l := range strings.Split(string(doc), "\n") {
		if h, ok := strings.CutPrefix(strings.TrimLeft(l, "#"), " "); ok && strings.HasPrefix(l, "#") {
			slug := strings.Map(func(r rune) rune {
				switch {
				case r == ' ':
					return '-'
				case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
					return r
				}
				return -1
			}, strings.ToLower(h))
			anchors[slug] = true
		}
	}
	for _, r := range sarifRules {
		anchor, ok := strings.CutPrefix(r.HelpURI, docsURL+"#")
		if !ok || !anchors[anchor] {
			t.Errorf("%s: helpUri %s names no heading of docs/lint.md", r.ID, r.HelpURI)
		}
		if r.Properties.SecuritySeverity == "" || !strings.Contains(string(doc), "security-severity `"+r.Properties.SecuritySeverity+"`") {
			t.Errorf("%s: security-severity %q is not justified in docs/lint.md", r.ID, r.Properties.SecuritySeverity)
		}
	}
}
