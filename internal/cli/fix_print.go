package cli

import (
	"cmp"
	"fmt"
	"io"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/printers"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/doctor"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
)

// maxListed bounds how many requests or pods a table lists before "+N more".
const maxListed = 8

// printPlan renders a plan as tables.
func printPlan(w io.Writer, p *plan.Plan, refused error, col palette) error {
	fmt.Fprintf(w, "%s %s · DPF %s in %s · ServiceAccount %s · scope %s\n\n", col.paint(bold, "Plan"), short(p.ID),
		cmp.Or(p.Version, "unknown"), p.Namespace, cmp.Or(p.ServiceAccount, "unknown"), p.Scope)
	if len(p.Changes) == 0 {
		fmt.Fprintln(w, "No RBAC change: no finding RBAC can fix.")
	} else {
		fmt.Fprintf(w, "%s (server-side apply, field manager %s; the operator's %s is not touched)\n",
			col.paint(bold, "CHANGES"), plan.FieldManager, cmp.Or(p.OperatorClusterRole, "unknown"))
		tw := printers.GetNewTabWriter(w)
		fmt.Fprintln(tw, "KIND\tNAME\tGRANTS\tANSWERS")
		for _, c := range p.Changes {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Ref().Kind, qualified(c.Ref()), grants(c), strings.Join(c.Answers, ", "))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(w, "\n%s (%d access reviews as %s)\n", col.paint(bold, "MUST BE ALLOWED AFTERWARDS"), len(p.Expect), p.Subject().User)
		listRequests(w, p.Expect)
		fmt.Fprintf(w, "%s (proof the grant is no wider)\n", col.paint(bold, "MUST STAY DENIED"))
		listRequests(w, p.MustStayDenied)
	}
	if len(p.Restart) > 0 {
		fmt.Fprintf(w, "\n%s (%d; restart %s: %s)\n", col.paint(bold, "PODS"), len(p.Restart), p.RestartMode, p.RestartWhy)
		// One line per action and reason, with its pods.
		type group struct{ action, reason string }
		pods, order := map[group][]string{}, []group{}
		for _, a := range p.Restart {
			g := group{a.Action + map[bool]string{true: ", then annotate the Node"}[a.TouchNode], a.Reason}
			if pods[g] == nil {
				order = append(order, g)
			}
			pods[g] = append(pods[g], a.Pod)
		}
		for _, g := range order {
			listed, more := pods[g], ""
			if len(listed) > maxListed {
				listed, more = listed[:maxListed], fmt.Sprintf(" (+%d more)", len(listed)-maxListed)
			}
			fmt.Fprintf(w, "  %s: %s%s\n    why: %s\n", g.action, strings.Join(listed, ", "), more, g.reason)
		}
	}
	if len(p.Skipped) > 0 {
		fmt.Fprintf(w, "\n%s (not an RBAC problem; fix will not touch them)\n", col.paint(yellow, "NOT FIXED BY RBAC"))
		for _, s := range p.Skipped {
			fmt.Fprintf(w, "  %s  %s\n    next step: %s\n", col.paint(red, s.Code), oneLine(s.Summary), oneLine(s.NextStep))
		}
	}
	if refused != nil {
		fmt.Fprintf(w, "\n%s %v\n", col.paint(red, "POLICY:"), refused)
		return nil
	}
	if len(p.Changes) > 0 {
		fmt.Fprintf(w, "\n%s allowed: dpfdoctor-… RBAC objects only, no wildcards, no Secret list/watch, the DPF namespace only, no name from the operator's inventory\n",
			col.paint(bold, "POLICY:"))
	}
	if len(p.Changes) > 0 || len(p.Restart) > 0 {
		fmt.Fprintln(w, "\nApply with `dpfdoctor fix --apply`, or commit the RBAC objects from `dpfdoctor fix -o yaml` instead.")
	}
	return nil
}

func listRequests(w io.Writer, rs []access.Request) {
	for i, r := range rs {
		if i == maxListed {
			fmt.Fprintf(w, "  +%d more\n", len(rs)-maxListed)
			break
		}
		fmt.Fprintf(w, "  %s\n", r)
	}
}

func qualified(r plan.ObjectRef) string {
	if r.Namespace == "" {
		return r.Name
	}
	return r.Namespace + "/" + r.Name
}

// grants summarises what an object grants: its rules, or its binding.
func grants(c plan.Change) string {
	switch c.Ref().Kind {
	case "Role", "ClusterRole":
		var r rbacv1.ClusterRole // same rules field for both kinds
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(c.Object.Object, &r); err != nil {
			return "?"
		}
		var parts []string
		for _, rule := range r.Rules {
			s := strings.Join(rule.Verbs, ",") + " " + strings.Join(rule.Resources, ",")
			if g := strings.Join(rule.APIGroups, ","); g != "" {
				s += "." + g
			}
			switch n := len(rule.ResourceNames); {
			case n == 1:
				s += " " + rule.ResourceNames[0]
			case n > 1:
				s += fmt.Sprintf(" (%d names)", n)
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, "; ")
	default:
		var b rbacv1.ClusterRoleBinding
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(c.Object.Object, &b); err != nil {
			return "?"
		}
		var subs []string
		for _, s := range b.Subjects {
			subs = append(subs, s.Kind+" "+s.Namespace+"/"+s.Name)
		}
		return fmt.Sprintf("%s %s → %s", b.RoleRef.Kind, b.RoleRef.Name, strings.Join(subs, ", "))
	}
}

// printFixSummary renders the end of `fix --apply`.
func printFixSummary(w io.Writer, r *doctor.Report, col palette) error {
	headline := col.paint(green, r.Outcome)
	if r.Outcome != doctor.OutcomeFixed && r.Outcome != doctor.OutcomeAlreadyFixed && r.Outcome != doctor.OutcomeNothingToDo {
		headline = col.paint(red, r.Outcome)
	}
	fmt.Fprintf(w, "\n%s %s (plan %s, %d API requests, %.1fs waited on API throttling)\n", col.paint(bold, "Fix:"), headline, short(r.PlanID), r.Requests, r.WaitedSeconds)
	if r.NoOp {
		fmt.Fprintln(w, "  nothing new to apply: every object was already in place")
	}
	for _, a := range r.Applied {
		fmt.Fprintf(w, "  %-9s %s\n", a.Action, a.Ref)
	}
	stage := func(s *doctor.Stage) {
		if s == nil || len(s.Checks) == 0 {
			return
		}
		fmt.Fprintf(w, "  access reviews %s: %d/%d as expected\n", s.Name, s.Passed(), len(s.Checks))
	}
	stage(&r.AfterApply)
	if rec := r.Reconcile; rec != nil {
		if rec.Paused {
			fmt.Fprintln(w, "  operator reconcile: the DPFOperatorConfig is paused")
		} else {
			fmt.Fprintf(w, "  operator reconcile requested, watched %.0fs: objects intact %t, operator role untouched %t\n",
				rec.WaitedSeconds, rec.ObjectsIntact, rec.OperatorRoleUntouched || rec.OperatorRoleMatchesRelease)
		}
	}
	stage(r.AfterReconcile)
	if rec := r.Recovery; rec != nil {
		fmt.Fprintf(w, "  pods Ready %d/%d after %.1fs%s\n", rec.Ready, rec.Total, rec.Seconds, map[bool]string{true: " (timed out)"}[rec.TimedOut])
		var ttr []float64
		for _, p := range rec.Pods {
			if p.Ready {
				ttr = append(ttr, p.SecondsToReady)
			}
		}
		if len(ttr) > 0 {
			sort.Float64s(ttr)
			fmt.Fprintf(w, "  time to Ready: median %.1fs, max %.1fs\n", ttr[len(ttr)/2], ttr[len(ttr)-1])
		}
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  %s %s\n", col.paint(red, "problem:"), p)
	}
	if r.BackupDir != "" {
		fmt.Fprintf(w, "  report:   %s/%s\n  rollback: %s\n", r.BackupDir, doctor.ReportMarkdown, r.RollbackCommand)
	}
	return nil
}

// short is a plan ID's first 12 characters, "–" for none.
func short(id string) string { return cmp.Or(id[:min(len(id), 12)], "–") }
