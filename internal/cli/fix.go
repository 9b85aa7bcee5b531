package cli

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/utils/ptr"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/apply"
	"github.com/dpfdoctor/dpfdoctor/internal/doctor"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/outcome"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
	"github.com/dpfdoctor/dpfdoctor/internal/policy"
)

// FixOptions are the flags of `dpfdoctor fix`.
type FixOptions struct {
	genericiooptions.IOStreams

	Output        string
	Nodes         []string
	Scope         string
	Restart       string
	Apply         bool
	Yes           bool
	Timeout       time.Duration
	ReconcileWait time.Duration
	BackupRoot    string

	kf              *genericclioptions.ConfigFlags
	color, errColor palette // for Out and ErrOut
	// interactive is whether In is a terminal; tests set it.
	interactive *bool
}

const fixLong = `Plan, and with --apply make, the least-privilege RBAC repair for the DMS
pods' failing calls: a Role and RoleBinding named dpfdoctor-… in the DPF
namespace (a ClusterRole and binding only for cluster-scoped resources),
labelled app.kubernetes.io/managed-by=dpfdoctor, granting exactly the missing
verbs, per name where a call names one object (--scope names: get on each
affected node's <node>-server-secret, never list). The operator's own
ClusterRole is never touched: it re-applies it and would revert any patch.

Without --apply, fix prints the plan and changes nothing; -o yaml prints only
the RBAC objects, ready to commit to a GitOps repository, and -o name their
names (role.rbac.authorization.k8s.io/NAME, as kubectl prints them).

With --apply it checks your rights first (and changes nothing if short),
backs up every object it will write into ./dpfdoctor-backups/<timestamp>/,
server-side applies as field manager "dpfdoctor" (rolling back on any
failure), proves the grant with SubjectAccessReviews as the ServiceAccount,
requests an operator reconcile and proves the grant survives it, restarts
the affected pods where the operator re-creates them (DPF-version aware),
watches them until Ready, and writes report.md and report.json next to the
backup. Findings RBAC cannot fix are listed with their next step and left
alone. See docs/fix.md.

`

const fixExample = `  # Show the plan (changes nothing)
  dpfdoctor fix

  # The RBAC objects only, to commit to Git instead of applying
  dpfdoctor fix -o yaml > dpfdoctor-rbac.yaml

  # Apply, verify and bring the pods back (asks on a terminal)
  dpfdoctor fix --apply

  # Non-interactive, for scripts
  dpfdoctor fix --apply --yes --timeout 15m

  # Write only the grant; the pods pick it up at their next back-off retry
  dpfdoctor fix --apply --restart=none

  # Undo the last fix
  dpfdoctor rollback --latest`

// NewCmdFix builds `dpfdoctor fix`.
func NewCmdFix(kf *genericclioptions.ConfigFlags, s genericiooptions.IOStreams) *cobra.Command {
	return newCmdFix(kf, &FixOptions{IOStreams: s})
}

func newCmdFix(kf *genericclioptions.ConfigFlags, o *FixOptions) *cobra.Command {
	o.Output, o.Scope, o.Restart, o.kf = OutputTable, plan.ScopeNames, plan.RestartAuto, kf
	cmd := &cobra.Command{
		Use:     "fix",
		Short:   "Plan or apply the least-privilege RBAC fix that survives the operator, proven, with rollback",
		Long:    fixLong + ExitCodesHelp,
		Example: fixExample,
		Args:    positional(cobra.NoArgs),
		RunE: runE(o, func(c *cobra.Command, _ []string) {
			o.color, o.errColor = colour(c, o.Out), colour(c, o.ErrOut)
		}),
	}
	f := cmd.Flags()
	outputFlag(cmd, &o.Output, "Output format: table, yaml (RBAC objects only), name (their names) or json (the whole plan; the report with --apply)",
		OutputTable, OutputYAML, OutputName, OutputJSON)
	f.StringArrayVar(&o.Nodes, "node", nil, "Only fix the pod of this node (repeatable)")
	f.StringVar(&o.Scope, "scope", o.Scope, "Secret grants per object name (names) or for the whole DPF namespace (namespace)")
	f.StringVar(&o.Restart, "restart", o.Restart, "How the affected pods restart: delete them where the operator re-creates them (delete), "+
		"let their back-off retry pick up the grant within 5.5 minutes (none), or choose by DPF version and fleet size (auto)")
	_ = cmd.RegisterFlagCompletionFunc("node", completeNodes(kf))
	_ = cmd.RegisterFlagCompletionFunc("scope", oneOf(plan.ScopeNames, plan.ScopeNamespace))
	_ = cmd.RegisterFlagCompletionFunc("restart", oneOf(plan.RestartAuto, plan.RestartDelete, plan.RestartNone))
	f.BoolVar(&o.Apply, "apply", false, "Apply the plan, verify it and restart the affected pods")
	f.BoolVarP(&o.Yes, "yes", "y", false, "Do not ask for confirmation (required with --apply when stdin is not a terminal)")
	f.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "How long to wait for the pods to be Ready")
	f.DurationVar(&o.ReconcileWait, "reconcile-wait", 15*time.Second, "How long to watch after requesting an operator reconcile")
	f.StringVar(&o.BackupRoot, "backup-dir", apply.DefaultRoot, "Directory the backups and reports go into")
	return cmd
}

// Validate checks the flags before any I/O.
func (o *FixOptions) Validate() error {
	if o.Apply && o.Output == OutputName {
		return Usagef("-o name lists the plan's RBAC objects; --apply prints a report: use -o json or -o jsonpath=…")
	}
	if o.Scope != plan.ScopeNames && o.Scope != plan.ScopeNamespace {
		return Usagef("--scope must be %q or %q, got %q", plan.ScopeNames, plan.ScopeNamespace, o.Scope)
	}
	if !slices.Contains([]string{plan.RestartAuto, plan.RestartDelete, plan.RestartNone}, o.Restart) {
		return Usagef("--restart must be auto, delete or none, got %q", o.Restart)
	}
	if slices.ContainsFunc(o.Nodes, func(n string) bool { return strings.TrimSpace(n) == "" }) {
		return Usagef("--node needs a node name")
	}
	if o.Timeout <= 0 || o.ReconcileWait <= 0 {
		return Usagef("--timeout and --reconcile-wait must be positive (the fix watches the operator's reconcile to prove the grant survives it)")
	}
	if o.Yes && !o.Apply {
		return Usagef("--yes only makes sense with --apply")
	}
	if o.Apply {
		if err := checkOutputPath("backup-dir", o.BackupRoot, true); err != nil {
			return err
		}
	}
	if o.Apply && !o.Yes && !ptr.Deref(o.interactive, isTerminal(o.In)) {
		return Usagef("--apply asks for confirmation, but stdin is not a terminal: add --yes")
	}
	return nil
}

// Run plans, and with --apply fixes.
func (o *FixOptions) Run(ctx context.Context) error {
	clients, err := kube.FromFlags(o.kf, nil)
	if err != nil {
		return err
	}
	po := doctor.PlanOptions{Clients: clients, Namespace: ptr.Deref(o.kf.Namespace, ""), Nodes: o.Nodes, Scope: o.Scope, Restart: o.Restart}
	if !o.Apply {
		return o.plan(ctx, po)
	}
	rep, err := doctor.Fix(ctx, doctor.FixOptions{
		PlanOptions: po, BackupRoot: o.BackupRoot, ReconcileWait: o.ReconcileWait, Timeout: o.Timeout,
		Log: o.ErrOut, Progress: o.ErrOut, TTY: isTerminal(o.ErrOut),
		Confirm:         o.confirm(clients.Config.Host),
		RollbackCommand: o.rollbackCommand,
	})
	if rep != nil {
		if perr := printReport(o.Out, o.Output, rep, func() error { return printFixSummary(o.Out, rep, o.color) }); perr != nil {
			return perr
		}
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, doctor.ErrDeclined):
		fmt.Fprintln(o.ErrOut, "Aborted: nothing was changed.")
		return silent(err)
	case errors.Is(err, policy.ErrRefused):
		return fmt.Errorf("%w: %w", outcome.ErrProblems, err)
	case errors.Is(err, outcome.ErrProblems) && rep != nil:
		return silent(err)
	}
	return err
}

func (o *FixOptions) plan(ctx context.Context, po doctor.PlanOptions) error {
	pl, err := doctor.Plan(ctx, po)
	if err != nil {
		return err
	}
	p := pl.Plan
	switch o.Output {
	case OutputYAML:
		var y []byte
		if y, err = p.RBACYAML(); err == nil {
			if len(y) == 0 {
				fmt.Fprintln(o.ErrOut, "No RBAC change is needed.")
			}
			_, err = o.Out.Write(y)
		}
	case OutputName:
		objs := &unstructured.UnstructuredList{}
		for _, c := range p.Changes {
			objs.Items = append(objs.Items, *c.Object)
		}
		err = (&printers.NamePrinter{}).PrintObj(objs, o.Out) // RESOURCE.GROUP/NAME, as kubectl -o name
	case OutputTable:
		err = printPlan(o.Out, p, pl.Refused, o.color)
	default:
		err = printStructured(o.Out, o.Output, p)
	}
	if err != nil {
		return err
	}
	if pl.Refused != nil {
		return fmt.Errorf("%w: %w", outcome.ErrProblems, pl.Refused)
	}
	for _, s := range p.Skipped {
		if len(s.Pods) > 0 {
			return silent(fmt.Errorf("%w: findings fix does not touch", outcome.ErrProblems))
		}
	}
	return nil
}

// confirm asks on a terminal; --yes skips it.
func (o *FixOptions) confirm(cluster string) func(*plan.Plan) (bool, error) {
	if o.Yes {
		return nil
	}
	return func(p *plan.Plan) (bool, error) {
		if err := printPlan(o.ErrOut, p, nil, o.errColor); err != nil {
			return false, err
		}
		deletes := 0
		for _, a := range p.Restart {
			if a.Action == plan.ActionDelete {
				deletes++
			}
		}
		fmt.Fprintf(o.ErrOut, "Apply %d changes and restart %d pods on cluster %s? [y/N] ", len(p.Changes), deletes, cluster)
		line, err := bufio.NewReader(o.In).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return false, fmt.Errorf("read answer: %w", err)
		}
		a := strings.ToLower(strings.TrimSpace(line))
		return a == "y" || a == "yes", nil
	}
}

// rollbackCommand is the exact command that undoes a backup, with the
// kubeconfig flags this run used.
func (o *FixOptions) rollbackCommand(dir string) string {
	parts := []string{"dpfdoctor", "rollback", "--backup", shellQuote(dir)}
	if o.kf != nil {
		if v := ptr.Deref(o.kf.KubeConfig, ""); v != "" {
			parts = append(parts, "--kubeconfig", shellQuote(v))
		}
		if v := ptr.Deref(o.kf.Context, ""); v != "" {
			parts = append(parts, "--context", shellQuote(v))
		}
	}
	return strings.Join(parts, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// maxListed bounds how many requests or pods a table lists before "+N more".
const maxListed = 8

// printPlan renders a plan as tables.
func printPlan(w io.Writer, p *plan.Plan, refused error, col palette) error {
	sa := "" // a plan without grants has no subject
	if p.ServiceAccount != "" {
		sa = " · ServiceAccount " + p.ServiceAccount
	}
	fmt.Fprintf(w, "%s %s · DPF %s in %s%s · scope %s\n\n", col.paint(bold, "Plan"), short(p.ID),
		cmp.Or(p.Version, "unknown"), p.Namespace, sa, p.Scope)
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
			fmt.Fprintf(w, "  %s: %s\n    why: %s\n", g.action, firstFew(pods[g]), g.reason)
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

// firstFew joins up to maxListed names, then says how many more there are.
func firstFew(names []string) string {
	if len(names) <= maxListed {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s (+%d more)", strings.Join(names[:maxListed], ", "), len(names)-maxListed)
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
	if r.Seconds != nil {
		fmt.Fprintf(w, "  phases: %s\n", r.Seconds)
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
