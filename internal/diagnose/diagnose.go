// Package diagnose turns an evidence Bundle into a Diagnosis: one primary
// failure class per DMS pod, findings with quoted evidence, whether dpfdoctor
// can fix them, and the next step. It is pure: no client, no clock, no
// environment, so it runs the same on a live collection and on a saved
// bundle.
package diagnose

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"k8s.io/apimachinery/pkg/util/sets"
)

// SchemaVersion identifies the Diagnosis JSON/YAML layout
// (docs/schema/diagnosis-v1alpha1.md).
const SchemaVersion = "dpfdoctor.dev/v1alpha1"

// Class is a failure class.
type Class string

// Classes, in the order a pod's primary class is chosen (see Priority).
const (
	ClassCertificateNotReady   Class = "CertificateNotReady"
	ClassRshimOccupied         Class = "RshimOccupied"
	ClassAPIServerUnreachable  Class = "APIServerUnreachable"
	ClassNoDPUFound            Class = "NoDPUFound"
	ClassEmptyCertificateFiles Class = "EmptyCertificateFiles"
	ClassRBACForbidden         Class = "RBACForbidden"
	ClassStatusSubresourceSkew Class = "StatusSubresourceSkew"
	ClassUnknown               Class = "Unknown"
	ClassHealthy               Class = "Healthy"
	// ClassOperatorPaused is cluster-level and never a pod's primary class.
	ClassOperatorPaused Class = "OperatorPaused"
	// ClassPodMissing names DPU nodes without a DMS pod; it has no pods.
	ClassPodMissing Class = "PodMissing"
)

// Priority lists the pod classes, most decisive first: a pod whose Secret
// volume cannot be mounted never runs rshim-preflight; rshim-preflight runs
// before dms-init; dms-init checks the API server before it looks for DPUs,
// and looks for DPUs before it makes any RBAC-checked call. RBACForbidden
// and StatusSubresourceSkew never claim the same pod as primary. Healthy
// applies to Ready pods regardless.
func Priority() []Class {
	return []Class{ClassCertificateNotReady, ClassRshimOccupied, ClassAPIServerUnreachable, ClassNoDPUFound,
		ClassEmptyCertificateFiles, ClassRBACForbidden, ClassStatusSubresourceSkew, ClassUnknown}
}

func rank(c Class) int {
	if i := slices.Index(Priority(), c); i >= 0 {
		return i
	}
	return len(Priority())
}

// Severity of a finding.
type Severity string

// Severities.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
	SeverityInfo    Severity = "info"
)

// Evidence kinds.
const (
	EvidenceLog    = "log"
	EvidenceSAR    = "sar"
	EvidenceEvent  = "event"
	EvidenceObject = "object"
	EvidenceConfig = "config"
)

// Evidence is one quoted fact a finding rests on.
type Evidence struct {
	// Kind is one of log, sar, event, object, config.
	Kind string `json:"kind"`
	// Source says where it came from: "pod x-dms dms-init (previous)",
	// "Certificate x-dms-server-cert", "SubjectAccessReview".
	Source string `json:"source"`
	Text   string `json:"text"`
}

// Finding is one diagnosed problem (or the healthy pods) with its evidence
// and next step.
type Finding struct {
	Class Class `json:"class"`
	// Code is stable and never reused, e.g. DPF-RBAC-001.
	Code     string   `json:"code"`
	Severity Severity `json:"severity"`
	Summary  string   `json:"summary"`
	// Pods are the pods whose primary class this is; Nodes their nodes.
	Pods  []string `json:"pods,omitempty"`
	Nodes []string `json:"nodes,omitempty"`
	// SecondaryPods also have this problem but fail first for a reason of
	// higher priority; they will hit this one once that is fixed.
	SecondaryPods []string   `json:"secondaryPods,omitempty"`
	Evidence      []Evidence `json:"evidence,omitempty"`
	// Fixable is true when `dpfdoctor fix` can repair it (RBAC).
	Fixable  bool   `json:"fixable"`
	NextStep string `json:"nextStep"`
	// Missing lists, for RBAC classes, the exact permissions to grant with
	// each node's concrete names, including those the script will need
	// after the one it fails on now.
	Missing []access.Request `json:"missing,omitempty"`

	// detail holds a one-line reason per pod for PodResult.Detail.
	detail map[string]string
}

// addPod adds a pod the finding names, with its one-line reason.
func (f *Finding) addPod(pod, detail string) {
	if f.detail == nil {
		f.detail = map[string]string{}
	}
	f.Pods = append(f.Pods, pod)
	f.detail[pod] = detail
}

// PodResult is one pod's primary class.
type PodResult struct {
	Name  string `json:"name"`
	Node  string `json:"node"`
	Class Class  `json:"class"`
	Code  string `json:"code"`
	// State is the pod's status as kubectl shows it (Init:CrashLoopBackOff).
	State    string `json:"state"`
	Restarts int32  `json:"restarts"`
	// Version is the DPF version the pod's image runs and Script its
	// dmsinit.sh variant.
	Version string `json:"version,omitempty"`
	Script  string `json:"script,omitempty"`
	// Also lists the pod's other classes (lower priority).
	Also []Class `json:"also,omitempty"`
	// Detail is a one-line reason.
	Detail string `json:"detail,omitempty"`
	// LogsFrom names the pod whose dms-init logs stand for this one: its
	// own were not read (its failure signature was sampled) and the pods
	// read for its group agree. The class is then inferred.
	LogsFrom string `json:"logsFrom,omitempty"`
	// LogNotRead says, for a failing pod whose container ran, why its own
	// dms-init log was not read and where its class came from instead.
	LogNotRead string `json:"logNotRead,omitempty"`
}

// DPF is what was found about the installation.
type DPF struct {
	Namespace                  string `json:"namespace"`
	OperatorConfig             string `json:"operatorConfig"`
	Version                    string `json:"version,omitempty"`
	VersionSource              string `json:"versionSource,omitempty"`
	Paused                     bool   `json:"paused"`
	APIServerVIP               string `json:"apiServerVIP,omitempty"`
	APIServerPort              int64  `json:"apiServerPort,omitempty"`
	DPUDeviceStatusSubresource bool   `json:"dpuDeviceStatusSubresource"`
}

// Summary counts pods by primary class, and the DPU nodes.
type Summary struct {
	// DPUNodes counts the Nodes labelled as carrying a DPU (0 when they
	// could not be listed) and NodesWithoutPod those of them with no DMS
	// pod and no DPUNode (PodMissing).
	DPUNodes        int           `json:"dpuNodes,omitempty"`
	NodesWithoutPod int           `json:"nodesWithoutPod,omitempty"`
	Pods            int           `json:"pods"`
	Healthy         int           `json:"healthy"`
	Failing         int           `json:"failing"`
	ByClass         map[Class]int `json:"byClass"`
	// Inferred counts the pods whose class comes from the logs of other
	// pods with the same failure signature (see PodResult.LogsFrom).
	Inferred int `json:"inferred,omitempty"`
	// Unread counts the other failing pods whose own log was not read
	// (see PodResult.LogNotRead).
	Unread int `json:"unread,omitempty"`
}

// Diagnosis is the result of Diagnose; its JSON form is versioned by
// SchemaVersion.
type Diagnosis struct {
	SchemaVersion string      `json:"schemaVersion"`
	DPF           DPF         `json:"dpf"`
	Summary       Summary     `json:"summary"`
	Findings      []Finding   `json:"findings"`
	Pods          []PodResult `json:"pods"`
	// WidelySharedDiagnosis says plainly when the widely shared story
	// ("v25.4.0 DMS pods crash because the DMS role lacks secrets") is wrong
	// for this cluster, or where it holds.
	WidelySharedDiagnosis string         `json:"widelySharedDiagnosis,omitempty"`
	Gaps                  []evidence.Gap `json:"gaps,omitempty"`
	// Requests is the number of API requests the evidence cost.
	Requests int64 `json:"requests"`
}

// Problems reports whether any pod is not healthy or any finding is an
// error. OperatorPaused alone (a warning) is not a problem.
func (d *Diagnosis) Problems() bool {
	if d == nil {
		return false
	}
	for _, f := range d.Findings {
		if f.Severity == SeverityError && (len(f.Pods) > 0 || f.Class == ClassPodMissing) {
			return true
		}
	}
	return d.Summary.Failing > 0
}

// Diagnose classifies every pod in the bundle. A nil bundle yields an empty
// diagnosis.
func Diagnose(b *evidence.Bundle) *Diagnosis {
	if b == nil {
		b = &evidence.Bundle{}
	}
	in := b.Install
	d := &Diagnosis{
		SchemaVersion: SchemaVersion,
		DPF: DPF{Namespace: in.Namespace, OperatorConfig: in.OperatorConfig, Version: in.Version, VersionSource: in.VersionSource,
			Paused: in.Paused, APIServerVIP: in.APIServerVIP, APIServerPort: in.APIServerPort, DPUDeviceStatusSubresource: in.DPUDeviceStatusSubresource},
		Gaps:     b.Gaps,
		Requests: b.Requests,
	}
	// One index for every classifier; Unknown takes what the others left.
	v := newView(b)
	findings := []Finding{} // never nil: -o json prints "findings": []
	for _, c := range All() {
		if c.Class() == ClassUnknown {
			findings = append(findings, unclaimed(v, findings)...)
		} else {
			findings = append(findings, c.(classifier).classify(v)...)
		}
	}
	primary := assign(b, findings)
	for i := range findings {
		split(&findings[i], primary, v)
	}
	findings = keepRelevant(findings)
	sortFindings(findings)
	d.Findings = findings
	d.Pods = podResults(v, findings, primary)
	d.Summary = summarise(d.Pods)
	d.Summary.DPUNodes = len(b.Nodes)
	for _, f := range findings {
		if f.Code == CodePodMissing {
			d.Summary.NodesWithoutPod += len(f.Nodes)
		}
	}
	d.WidelySharedDiagnosis = widelyShared(v, d)
	return d
}

// assign picks each pod's primary class: Healthy for Ready pods, else the
// finding class of highest priority that names the pod.
func assign(b *evidence.Bundle, findings []Finding) map[string]Class {
	primary := make(map[string]Class, len(b.Pods))
	for _, f := range findings {
		if f.Class == ClassOperatorPaused {
			continue
		}
		for _, p := range f.Pods {
			cur, ok := primary[p]
			if f.Class == ClassHealthy || (cur != ClassHealthy && (!ok || rank(f.Class) < rank(cur))) {
				primary[p] = f.Class
			}
		}
	}
	for _, p := range b.Pods {
		if _, ok := primary[p.Name]; !ok {
			primary[p.Name] = ClassUnknown
		}
	}
	return primary
}

// split moves pods whose primary class is another to SecondaryPods and sets
// Nodes from the remaining pods.
func split(f *Finding, primary map[string]Class, v *view) {
	if f.Class == ClassOperatorPaused || f.Class == ClassPodMissing {
		return
	}
	var pods, secondary, nodes []string
	for _, p := range f.Pods {
		if primary[p] == f.Class {
			pods = append(pods, p)
			if pod, ok := v.pods[p]; ok && pod.Node != "" {
				nodes = append(nodes, pod.Node)
			}
		} else {
			secondary = append(secondary, p)
		}
	}
	f.Pods, f.SecondaryPods, f.Nodes = pods, secondary, uniqueSorted(nodes)
}

// keepRelevant drops findings left with no pods at all (cluster-level
// findings have none to begin with and stay).
func keepRelevant(fs []Finding) []Finding {
	return slices.DeleteFunc(fs, func(f Finding) bool {
		return f.Class != ClassOperatorPaused && len(f.Pods) == 0 && len(f.SecondaryPods) == 0 && len(f.Nodes) == 0
	})
}

func sortFindings(fs []Finding) {
	order := func(c Class) int {
		switch c {
		case ClassOperatorPaused:
			return -1
		case ClassHealthy:
			return 100
		}
		return rank(c)
	}
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(order(a.Class), order(b.Class)), cmp.Compare(len(b.Pods), len(a.Pods)), cmp.Compare(a.Code, b.Code))
	})
}

func podResults(v *view, findings []Finding, primary map[string]Class) []PodResult {
	b := v.b
	out := make([]PodResult, 0, len(b.Pods))
	byPod := map[string][]*Finding{}
	for i := range findings {
		f := &findings[i]
		for _, p := range slices.Concat(f.Pods, f.SecondaryPods) {
			byPod[p] = append(byPod[p], f)
		}
	}
	for _, p := range b.Pods {
		r := PodResult{Name: p.Name, Node: p.Node, Class: primary[p.Name], State: p.Status(), Restarts: p.Restarts(),
			Version: p.Version(b.Install.Version), Script: string(p.Script(b.Install.Version)), LogsFrom: v.logsFrom(p.Name), LogNotRead: v.logNotRead(p)}
		seen := map[Class]bool{r.Class: true}
		for _, f := range byPod[p.Name] {
			if f.Class == r.Class && r.Code == "" {
				r.Code, r.Detail = f.Code, f.Summary
				if d, ok := f.detail[p.Name]; ok {
					r.Detail = d
				}
			}
			if !seen[f.Class] {
				seen[f.Class] = true
				r.Also = append(r.Also, f.Class)
			}
		}
		out = append(out, r)
	}
	return out
}

func summarise(pods []PodResult) Summary {
	s := Summary{Pods: len(pods), ByClass: map[Class]int{}}
	for _, p := range pods {
		s.ByClass[p.Class]++
		if p.Class == ClassHealthy {
			s.Healthy++
		} else {
			s.Failing++
		}
		switch {
		case p.LogsFrom != "":
			s.Inferred++
		case p.LogNotRead != "":
			s.Unread++
		}
	}
	return s
}

func uniqueSorted(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	return sets.List(sets.New(in...).Delete(""))
}

// Classifier finds one failure class in a bundle. Implementations are pure
// and live one per file.
type Classifier interface {
	// ID is the stable code of the class's main finding, e.g. DPF-RBAC-001.
	ID() string
	// Class is the failure class it reports.
	Class() Class
	// Classify returns the findings for the class; nil when it does not
	// apply. Findings list every pod the class applies to; Diagnose then
	// splits them into primary and secondary pods.
	Classify(b *evidence.Bundle) []Finding
}

// classifier is every Classifier here: its code, its class and its
// classification over a shared index of the bundle, so that Diagnose
// indexes it once. Each classify function lives in its own file.
type classifier struct {
	id       string
	class    Class
	classify func(v *view) []Finding
}

func (c classifier) ID() string                            { return c.id }
func (c classifier) Class() Class                          { return c.class }
func (c classifier) Classify(b *evidence.Bundle) []Finding { return c.classify(newView(b)) }

// All returns every classifier, in priority order, as a fresh slice.
func All() []Classifier {
	return []Classifier{
		classifier{CodeOperatorPaused, ClassOperatorPaused, operatorPaused},
		classifier{CodeCertificateNotReady, ClassCertificateNotReady, certificateNotReady},
		classifier{CodeRshimOccupied, ClassRshimOccupied, rshimOccupied},
		classifier{CodeAPIServerUnreachable, ClassAPIServerUnreachable, apiServerUnreachable},
		classifier{CodeNoDPUFound, ClassNoDPUFound, noDPUFound},
		classifier{CodeEmptyCertificateFiles, ClassEmptyCertificateFiles, emptyCertificateFiles},
		classifier{CodeRBACForbidden, ClassRBACForbidden, rbacForbidden},
		classifier{CodeStatusSkewFixable, ClassStatusSubresourceSkew, statusSubresourceSkew},
		classifier{CodePodMissing, ClassPodMissing, podMissing},
		classifier{CodeUnknown, ClassUnknown, unknown},
		classifier{CodeHealthy, ClassHealthy, healthy},
	}
}

// Stable finding codes. Never reuse a retired one.
const (
	CodeOperatorPaused        = "DPF-PAUSED-001"
	CodeCertificateNotReady   = "DPF-CERT-001"
	CodeRshimOccupied         = "DPF-RSHIM-001"
	CodeAPIServerUnreachable  = "DPF-API-001"
	CodeNoDPUFound            = "DPF-NODPU-001"
	CodeRBACForbidden         = "DPF-RBAC-001"
	CodeRBACGranted           = "DPF-RBAC-002"
	CodeEmptyCertificateFiles = "DPF-CERTFILES-001"
	CodeStatusSkewFixable     = "DPF-SKEW-001"
	CodeStatusSkewCRD         = "DPF-SKEW-002"
	CodePodMissing            = "DPF-NOPOD-001"
	CodePodStranded           = "DPF-NOPOD-002"
	CodeUnknown               = "DPF-UNKNOWN-001"
	CodeHealthy               = "DPF-OK-000"
)

// Markdown renders the diagnosis for a support case or a ticket.
func (d *Diagnosis) Markdown() string {
	var w strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&w, format, a...) }
	p("# dpfdoctor diagnosis\n\n")
	p("- Schema: `%s`\n", d.SchemaVersion)
	p("- DPF: namespace `%s`, DPFOperatorConfig `%s`, version %s (from %s), paused: %t\n",
		d.DPF.Namespace, d.DPF.OperatorConfig, cmp.Or(d.DPF.Version, "unknown"), cmp.Or(d.DPF.VersionSource, "unknown"), d.DPF.Paused)
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
			p("- Pods (%d): %s\n", len(f.Pods), listFirst(f.Pods, 20, ", … (%d more)"))
		}
		if len(f.SecondaryPods) > 0 {
			p("- Also affects, after their first problem is fixed (%d): %s\n", len(f.SecondaryPods), listFirst(f.SecondaryPods, 20, ", … (%d more)"))
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
