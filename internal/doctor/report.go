package doctor

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/apply"
	"github.com/dpfdoctor/dpfdoctor/internal/diagnose"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
	"github.com/dpfdoctor/dpfdoctor/internal/verify"
)

// ReportSchema identifies the fix report's JSON layout.
const ReportSchema = "dpfdoctor.dev/fix-report/v1alpha1"

// Report files in the backup directory.
const (
	ReportJSON     = "report.json"
	ReportMarkdown = "report.md"
)

// Outcomes of a fix.
const (
	OutcomeFixed        = "fixed"
	OutcomeAlreadyFixed = "already in place"
	OutcomeNothingToDo  = "nothing to do"
	OutcomeProblems     = "problems remain"
	OutcomeRefused      = "refused" // by the policy
	// OutcomeNoRights: the user lacks rights the fix needs (exit 6).
	OutcomeNoRights = "insufficient rights"
	OutcomeDeclined = "declined"
	OutcomeFailed   = "failed"
	// OutcomeInterrupted: Ctrl-C (or SIGTERM) ended the fix. An apply under
	// way was rolled back; a grant already written stays (rollback undoes
	// it); pods deleted before the grant were brought back (fix.md).
	OutcomeInterrupted = "interrupted"
)

// Report is what one fix did, from measured facts only.
type Report struct {
	SchemaVersion string `json:"schemaVersion"`
	Cluster       string `json:"cluster"`
	// Tool is the dpfdoctor build that made the fix (dpfdoctor version).
	Tool       string   `json:"dpfdoctorVersion"`
	Version    string   `json:"dpfVersion,omitempty"`
	StartedAt  string   `json:"startedAt"`
	FinishedAt string   `json:"finishedAt,omitempty"`
	PlanID     string   `json:"planID,omitempty"`
	Outcome    string   `json:"outcome"`
	Problems   []string `json:"problems,omitempty"` // says why the outcome is not "fixed"
	Error      string   `json:"error,omitempty"`
	// Before and After are the findings before the fix and after it.
	Before []FindingSummary `json:"before"`
	After  []FindingSummary `json:"after,omitempty"`
	Plan   *plan.Plan       `json:"plan,omitempty"` // the plan that was applied
	// Applied lists each object and what the apply did with it; NoOp is
	// true when everything was already in place.
	Applied     []apply.Applied `json:"applied,omitempty"`
	NoOp        bool            `json:"noOp"`
	AppliedYAML string          `json:"appliedYAML,omitempty"`
	// AfterApply and AfterReconcile are the access reviews as the DMS
	// ServiceAccount right after the apply and after the operator's
	// reconcile.
	AfterApply     Stage                   `json:"afterApply"`
	Reconcile      *verify.ReconcileResult `json:"reconcile,omitempty"`
	AfterReconcile *Stage                  `json:"afterReconcile,omitempty"`
	Recovery       *verify.RecoverResult   `json:"recovery,omitempty"` // each affected pod's way back to Ready
	// Annotations are those dpfdoctor set on Nodes and the
	// DPFOperatorConfig (journalled for rollback).
	Annotations     []plan.AnnotationChange `json:"annotations,omitempty"`
	BackupDir       string                  `json:"backupDir,omitempty"`
	RollbackCommand string                  `json:"rollbackCommand,omitempty"`
	Requests        int64                   `json:"requests"` // the number of API requests the fix made
	// WaitedSeconds is the time the API server asked the client to wait
	// (429 Retry-After); client-side rate limiting is off (docs/fix.md).
	WaitedSeconds float64 `json:"waitedSeconds"`
	// VerifySeed seeds the sample of granted names the access reviews ask
	// about; every name is evaluated on the objects as read back.
	VerifySeed uint64 `json:"verifySeed"`
	// Seconds are the fix's phases, timed.
	Seconds *Timings `json:"phaseSeconds,omitempty"`
}

// Timings are the wall times of a fix's phases, in seconds. The restarts
// and the recovery run beside the verification and the reconcile wait, so
// the phases overlap and need not add up to the whole.
type Timings struct {
	Evidence float64 `json:"evidence"` // collect and diagnose
	Plan     float64 `json:"plan"`     // plan, policy, rights checks, the watches' start
	// Apply is backup, dry runs and writes, up to the moment the grant is
	// in place; the deletes before it (v25.4.0) count as Restart.
	Apply         float64 `json:"apply"`
	Restart       float64 `json:"restart"`       // from the first delete or Node event to the last
	Verify        float64 `json:"verify"`        // read-backs, access reviews, the second diagnosis
	ReconcileWait float64 `json:"reconcileWait"` // the operator's reconcile, requested and watched
	Recovery      float64 `json:"recovery"`      // from the grant to the last pod Ready, or the timeout
	// GrantToAllReady and RestartToAllReady run from the moment the grant
	// was written and from the first restart to the last pod seen Ready;
	// omitted unless every pod got Ready (and, for the second, one was
	// restarted).
	GrantToAllReady   float64 `json:"grantToAllReady,omitempty"`
	RestartToAllReady float64 `json:"restartToAllReady,omitempty"`
}

// String is the timings on one line.
func (t Timings) String() string {
	s := fmt.Sprintf("evidence %.1fs, plan %.1fs, apply %.1fs, restart %.1fs, verify %.1fs, reconcile wait %.1fs, recovery %.1fs",
		t.Evidence, t.Plan, t.Apply, t.Restart, t.Verify, t.ReconcileWait, t.Recovery)
	if t.GrantToAllReady > 0 {
		s += fmt.Sprintf("; all Ready %.1fs after the grant", t.GrantToAllReady)
	}
	if t.RestartToAllReady > 0 {
		s += fmt.Sprintf(", %.1fs after the first restart", t.RestartToAllReady)
	}
	return s
}

// FindingSummary is one finding, briefly.
type FindingSummary struct {
	Code    string `json:"code"`
	Class   string `json:"class"`
	Pods    int    `json:"pods"`
	Fixable bool   `json:"fixable"`
	Summary string `json:"summary"`
}

func summarize(d *diagnose.Diagnosis) []FindingSummary {
	out := []FindingSummary{}
	if d == nil {
		return out
	}
	for _, f := range d.Findings {
		out = append(out, FindingSummary{Code: f.Code, Class: string(f.Class), Pods: len(f.Pods), Fixable: f.Fixable, Summary: f.Summary})
	}
	return out
}

// Stage is one round of access reviews.
type Stage struct {
	Name   string        `json:"name"`
	Checks verify.Checks `json:"checks"`
	// Evaluated counts the granted requests checked on the objects as
	// read back (every one); Checks are the reviews the API server answered.
	Evaluated int `json:"evaluatedLocally,omitempty"`
	// AllowedBefore lists must-stay-denied requests that were already
	// allowed before the fix: not caused by it, but worth knowing.
	AllowedBefore []string `json:"allowedBefore,omitempty"`
	Problems      []string `json:"problems,omitempty"`
}

// Passed counts the checks with the wanted answer.
func (s Stage) Passed() int { return len(s.Checks) - len(s.Checks.Failed()) }

func stage(name string, checks, deniedBefore verify.Checks) Stage {
	s := Stage{Name: name, Checks: checks}
	pre := map[string]bool{}
	for _, c := range deniedBefore {
		if c.Allowed {
			pre[c.Request.Key()] = true
			s.AllowedBefore = append(s.AllowedBefore, c.Request.String())
		}
	}
	for _, c := range checks.Failed() {
		if !c.Want && pre[c.Request.Key()] {
			continue // allowed before dpfdoctor changed anything
		}
		s.Problems = append(s.Problems, fmt.Sprintf("%s: %s", name, c))
	}
	return s
}

func (r *Report) setBackup(b *apply.Backup, rollback func(string) string) {
	if b == nil || !b.Created() {
		return
	}
	dir := b.Dir
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	r.BackupDir, r.RollbackCommand = dir, rollback(dir)
	r.Annotations = b.Receipt().Annotations
}

// Write saves report.json and report.md into dir (mode 0600).
func (r *Report) Write(dir string) error {
	js, err := json.MarshalIndent(r, "", "  ")
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, ReportJSON), append(js, '\n'), 0o600)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, ReportMarkdown), []byte(r.Markdown()), 0o600)
	}
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// Markdown renders the report for people.
func (r *Report) Markdown() string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("# dpfdoctor fix report\n\n")
	w("| | |\n|---|---|\n")
	w("| Cluster | `%s` |\n| dpfdoctor | %s |\n| DPF version | %s |\n| Plan | `%s` |\n| Started | %s |\n| Finished | %s |\n| Outcome | **%s** |\n| API requests | %d |\n| Waited on API throttling | %.1fs |\n| Verification seed | %d |\n\n",
		r.Cluster, r.Tool, cmp.Or(r.Version, "–"), cmp.Or(r.PlanID, "–"), r.StartedAt, cmp.Or(r.FinishedAt, "–"), r.Outcome, r.Requests, r.WaitedSeconds, r.VerifySeed)
	if r.Seconds != nil {
		w("Phases: %s.\n\n", r.Seconds)
	}
	if len(r.Problems) > 0 || r.Error != "" {
		w("## Problems remaining\n\n")
		for _, p := range r.Problems {
			w("- %s\n", p)
		}
		if r.Error != "" && len(r.Problems) == 0 {
			w("- %s\n", r.Error)
		}
		w("\n")
	}
	findings := func(title string, fs []FindingSummary) {
		w("## %s\n\n", title)
		if len(fs) == 0 {
			w("None.\n\n")
			return
		}
		w("| Code | Class | Pods | Fixable | Summary |\n|---|---|---:|---|---|\n")
		for _, f := range fs {
			w("| %s | %s | %d | %t | %s |\n", f.Code, f.Class, f.Pods, f.Fixable, cell(f.Summary))
		}
		w("\n")
	}
	findings("Findings before", r.Before)
	if r.Plan != nil && len(r.Plan.Skipped) > 0 {
		w("## Not touched by fix\n\n")
		for _, s := range r.Plan.Skipped {
			w("- **%s** (%d pods): %s\n  Next step: %s\n", s.Code, len(s.Pods), s.Summary, s.NextStep)
		}
		w("\n")
	}
	if len(r.Applied) > 0 {
		w("## Applied\n\n")
		if r.NoOp {
			w("Nothing new: every object was already in place.\n\n")
		}
		for _, a := range r.Applied {
			w("- %s: %s\n", a.Ref, a.Action)
		}
		w("\nServer-side applied with field manager `%s`:\n\n```yaml\n%s```\n\n", plan.FieldManager, r.AppliedYAML)
	}
	stageMD := func(s *Stage) {
		if s == nil || len(s.Checks) == 0 {
			return
		}
		w("## Access reviews %s\n\n%d of %d as expected.\n\n| Request | Want | Got |\n|---|---|---|\n", s.Name, s.Passed(), len(s.Checks))
		for _, c := range s.Checks {
			w("| %s | %s | %s |\n", cell(c.Request.String()), verify.Verdict(c.Want), verify.Verdict(c.Allowed))
		}
		for _, a := range s.AllowedBefore {
			w("\nNote: %s was already allowed before the fix.\n", a)
		}
		w("\n")
	}
	stageMD(&r.AfterApply)
	if rec := r.Reconcile; rec != nil {
		w("## Operator reconcile\n\n")
		if rec.Paused {
			w("The DPFOperatorConfig is paused: no reconcile ran.\n\n")
		} else {
			w("Requested at %s (annotation `%s`), watched for %.1fs.\n\n", rec.RequestedAt, plan.ReconcileRequestedAnnotation, rec.WaitedSeconds)
		}
		w("- dpfdoctor's objects intact: %t\n", rec.ObjectsIntact)
		if rec.OperatorRole != "" {
			w("- operator ClusterRole `%s` untouched: %t (matches the release's rules: %t)\n", rec.OperatorRole, rec.OperatorRoleUntouched, rec.OperatorRoleMatchesRelease)
		}
		for _, e := range rec.Events {
			w("- watch event: %s\n", e)
		}
		w("\n")
	}
	stageMD(r.AfterReconcile)
	if rec := r.Recovery; rec != nil {
		w("## Pods\n\n%d of %d Ready after %.1fs", rec.Ready, rec.Total, rec.Seconds)
		if rec.TimedOut {
			w(" (timed out)")
		}
		w(".\n\n| Pod | Node | Action | Ready | Time to Ready | State |\n|---|---|---|---|---:|---|\n")
		pods := append([]verify.PodOutcome(nil), rec.Pods...)
		sort.Slice(pods, func(i, j int) bool { return pods[i].Pod < pods[j].Pod })
		for _, p := range pods {
			ttr := "–"
			if p.Ready {
				ttr = fmt.Sprintf("%.1fs", p.SecondsToReady)
			}
			state := p.State
			if p.Note != "" {
				state += " (" + cell(p.Note) + ")"
			}
			w("| %s | %s | %s | %t | %s | %s |\n", p.Pod, p.Node, p.Action, p.Ready, ttr, state)
		}
		w("\n")
		if r.Plan != nil {
			// One line per restart action, with the first pod's reason.
			type key struct {
				action string
				touch  bool
			}
			counts, reasons, order := map[key]int{}, map[key]string{}, []key{}
			for _, a := range r.Plan.Restart {
				k := key{a.Action, a.TouchNode}
				if counts[k] == 0 {
					reasons[k], order = a.Reason, append(order, k)
				}
				counts[k]++
			}
			for _, k := range order {
				w("- %s%s (%d pods): %s\n", k.action, map[bool]string{true: ", then annotate the Node"}[k.touch], counts[k], reasons[k])
			}
			w("\n")
		}
	}
	if r.After != nil {
		findings("Findings after", r.After)
	}
	if r.RollbackCommand != "" {
		w("## Rollback\n\nBackup: `%s`\n\n```sh\n%s\n```\n", r.BackupDir, r.RollbackCommand)
	}
	return b.String()
}

func cell(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ") }
