package lint

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// SARIF rule IDs. They are stable: never reuse one for another meaning.
const (
	RuleDenied         = "DPF-LINT-001"
	RulePossiblyDenied = "DPF-LINT-002"
	RuleNotChecked     = "DPF-LINT-003"
)

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifTool     `json:"tool"`
	Results []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version,omitempty"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifRule struct {
	ID                   string      `json:"id"`
	Name                 string      `json:"name"`
	ShortDescription     sarifText   `json:"shortDescription"`
	FullDescription      sarifText   `json:"fullDescription"`
	Help                 sarifText   `json:"help"`
	DefaultConfiguration sarifConfig `json:"defaultConfiguration"`
}

type sarifConfig struct {
	Level string `json:"level"`
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
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           sarifRegion   `json:"region"`
}

type sarifArtifact struct {
	URI       string `json:"uri"`
	URIBaseID string `json:"uriBaseId,omitempty"`
}

type sarifRegion struct {
	StartLine   int `json:"startLine"`
	StartColumn int `json:"startColumn,omitempty"`
}

var sarifRules = []sarifRule{
	{
		ID: RuleDenied, Name: "KubectlCallDenied",
		ShortDescription:     sarifText{"A kubectl call the script always makes is denied by RBAC"},
		FullDescription:      sarifText{"With the given arguments every run of the script that completes makes this API request, and the RBAC manifests do not allow it for the script's ServiceAccount. The call fails with Forbidden at run time."},
		Help:                 sarifText{"Add the missing rule with a separate Role and RoleBinding (dpfdoctor lint --suggest prints least-privilege YAML), or change the call."},
		DefaultConfiguration: sarifConfig{"error"},
	},
	{
		ID: RulePossiblyDenied, Name: "KubectlCallPossiblyDenied",
		ShortDescription:     sarifText{"A kubectl call the script may make is denied by RBAC"},
		FullDescription:      sarifText{"The call depends on values lint cannot resolve (a condition on runtime state, an unresolved name or namespace, an unknown resource type). If it is made, RBAC denies it."},
		Help:                 sarifText{"Check whether the path can run in production; pass --args or --pod so lint can resolve the script's arguments, and --crds for unknown kinds."},
		DefaultConfiguration: sarifConfig{"warning"},
	},
	{
		ID: RuleNotChecked, Name: "KubectlCallNotChecked",
		ShortDescription:     sarifText{"lint could not check a kubectl call"},
		FullDescription:      sarifText{"The call reads objects from a file, uses eval, or a verb lint does not model, so its API requests are not checked."},
		Help:                 sarifText{"Feed objects through a here-document or a variable (kubectl apply -f -), or check the call by hand."},
		DefaultConfiguration: sarifConfig{"note"},
	},
}

// WriteSARIF renders the report as SARIF 2.1.0 for code-scanning UIs:
// denied certain calls are errors (DPF-LINT-001), denied possible calls
// warnings (DPF-LINT-002), calls lint could not check notes
// (DPF-LINT-003). Allowed calls are not results.
func WriteSARIF(w io.Writer, r *Report, toolVersion string) error {
	run := sarifRun{
		Tool: sarifTool{Driver: sarifDriver{Name: "dpfdoctor", Version: toolVersion,
			InformationURI: "https://github.com/dpfdoctor/dpfdoctor", Rules: sarifRules}},
		Results: []sarifResult{},
	}
	for _, f := range r.Findings {
		if f.Decision.Allowed {
			continue
		}
		rule, idx, level := RuleDenied, 0, "error"
		if f.Certainty != Certain {
			rule, idx, level = RulePossiblyDenied, 1, "warning"
		}
		msg := fmt.Sprintf("`%s` needs %s, which RBAC denies to %s: %s.", f.Call, f.Needs(), r.Subject.User, f.Decision.Reason)
		if f.Why != "" {
			msg += " Possible: " + f.Why + "."
		}
		if f.StderrHidden {
			msg += " The script hides kubectl's stderr here, so the Forbidden error never reaches its log."
		}
		props := map[string]any{"verb": f.Request.Verb, "resource": f.Request.GroupResource(), "certainty": string(f.Certainty)}
		if f.Request.Namespace != "" {
			props["namespace"] = f.Request.Namespace
		}
		run.Results = append(run.Results, sarifResult{RuleID: rule, RuleIndex: idx, Level: level, Message: sarifText{msg},
			Locations: []sarifLocation{location(f.File, f.Line, f.Col)}, Properties: props})
	}
	for _, wn := range r.Warnings {
		run.Results = append(run.Results, sarifResult{RuleID: RuleNotChecked, RuleIndex: 2, Level: "note",
			Message: sarifText{wn.Message + "."}, Locations: []sarifLocation{location(wn.File, wn.Line, 0)}})
	}
	return writeJSON(w, sarifLog{Schema: "https://json.schemastore.org/sarif-2.1.0.json", Version: "2.1.0", Runs: []sarifRun{run}}, "SARIF")
}

func location(file string, line, col int) sarifLocation {
	uri := filepath.ToSlash(file)
	base := ""
	if !filepath.IsAbs(file) {
		uri = strings.TrimPrefix(uri, "./")
		base = "%SRCROOT%"
	}
	if line < 1 {
		line = 1
	}
	return sarifLocation{PhysicalLocation: sarifPhysical{
		ArtifactLocation: sarifArtifact{URI: uri, URIBaseID: base},
		Region:           sarifRegion{StartLine: line, StartColumn: col},
	}}
}
