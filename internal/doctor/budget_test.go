package doctor_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/doctor"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
	"github.com/dpfdoctor/dpfdoctor/internal/verify"
)

// budgetOverhead is what a fix may spend besides its restarts, whatever the
// number of nodes (issue 16). Measured at 50 nodes, by step (the test logs
// it; docs/fix.md has the table): the evidence 16-17; your rights 2-4
// (one rules review, a review for each cluster-scoped request); the
// operator's ClusterRole watched from the evidence's copy 1 and the
// must-stay-denied baseline outside the namespace 1; the pods' LIST and
// watch 2 (with --restart=delete also the DPUNodes' watch and the Nodes'
// LIST); apply 7 (targets and applyset read, dry runs, writes); the grant
// after apply 12 (read-back 2, watches from it 2, 8 access reviews); the
// reconcile 3 (objects from the watches); the grant after it 8 access
// reviews; the diagnosis after 2. In all 55 with --restart=none and 57 to
// 59 besides the pod DELETEs and Node PATCHes with --restart=delete.
const budgetOverhead = 60

// The request budget of `fix --apply` on failing v25.4.0 nodes, recorded at
// the transport: --restart=delete at most one pod DELETE and one Node PATCH
// per pod plus budgetOverhead, --restart=none at most budgetOverhead, and
// never more than verify.MaxReviews SubjectAccessReviews. Both modes on 50
// nodes, and --restart=none on 500 (no pod restarts to wait for: about a
// minute on two cores); DPFDOCTOR_BUDGET_NODES=N[,M…] runs both modes on
// those sizes instead.
func TestFixRequestBudget(t *testing.T) {
	t.Parallel()
	type run struct {
		n    int
		mode string
	}
	runs := []run{{50, plan.RestartDelete}, {50, plan.RestartNone}, {500, plan.RestartNone}}
	if os.Getenv("DPFDOCTOR_BUDGET_NODES") != "" {
		runs = nil
		for _, f := range strings.Split(os.Getenv("DPFDOCTOR_BUDGET_NODES"), ",") {
			var n int
			if _, err := fmt.Sscan(f, &n); err != nil || n <= 0 {
				t.Fatalf("DPFDOCTOR_BUDGET_NODES=%q", os.Getenv("DPFDOCTOR_BUDGET_NODES"))
			}
			runs = append(runs, run{n, plan.RestartDelete}, run{n, plan.RestartNone})
		}
	}
	for _, r := range runs {
		n, mode := r.n, r.mode
		t.Run(fmt.Sprintf("%d/%s", n, mode), func(t *testing.T) {
			// The budget counts the fix's requests, not the sim's: no operator
			// resync and no Node heartbeats (with --restart=delete, the fix's
			// own Node PATCHes bring the v25.4.0 pods back), which on 500
			// nodes are a fifth of the API server's load; and 16 operator
			// workers create the 500 pods, whose order the budget does not
			// depend on (DPF runs one).
			e := startSimOn(t, &budgetPlane, sim.Options{Nodes: n, Scenario: string(sim.HypotheticalSecretsForbidden),
				Resync: time.Hour, NodeStatusReport: -1, OperatorWorkers: 16})
			e.waitFailing(n)
			budget := kube.NewBudget(0).Recording()
			cl, err := kube.New(e.c.Config, e.c.Namespace, budget)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			start := time.Now()
			steps := &stepLog{b: budget}
			rep, err := doctor.Fix(ctx, doctor.FixOptions{PlanOptions: doctor.PlanOptions{Clients: cl, Restart: mode}, BackupRoot: t.TempDir(),
				ReconcileWait: 500 * time.Millisecond, Timeout: 3 * time.Minute, Log: steps})
			kinds := byKind(budget.Records())
			steps.report(t)
			t.Logf("%d nodes, --restart=%s: %d requests, %d Ready in %.1fs, seed %d; by kind %v", n, mode, rep.Requests,
				readyOf(rep), time.Since(start).Seconds(), rep.VerifySeed, kinds)
			if err != nil || rep.Outcome != doctor.OutcomeFixed || readyOf(rep) != n {
				t.Fatalf("fix: %v (outcome %q, %d of %d Ready)", err, rep.Outcome, readyOf(rep), n)
			}
			want := int64(budgetOverhead)
			if mode == plan.RestartDelete {
				want += 2 * int64(n)
			}
			if rep.Requests > want || budget.Used() != rep.Requests {
				t.Errorf("%d requests (%d recorded), budget %d", rep.Requests, budget.Used(), want)
			}
			if sars := kinds["POST subjectaccessreviews"]; sars > verify.MaxReviews {
				t.Errorf("%d SubjectAccessReviews, budget %d", sars, verify.MaxReviews)
			}
			if mode == plan.RestartDelete && (kinds["DELETE pods"] > n || kinds["PATCH nodes"] > n) {
				t.Errorf("%d pod deletes and %d Node patches for %d pods", kinds["DELETE pods"], kinds["PATCH nodes"], n)
			}
			if rep.AfterApply.Evaluated != len(rep.Plan.Expect) || len(rep.Plan.Expect) < n {
				t.Errorf("evaluated %d of %d granted requests locally", rep.AfterApply.Evaluated, len(rep.Plan.Expect))
			}
			if mode == plan.RestartNone {
				localMismatch(t, cl, rep.Plan)
			}
		})
	}
}

func readyOf(r *doctor.Report) int {
	if r == nil || r.Recovery == nil {
		return 0
	}
	return r.Recovery.Ready
}

// localMismatch checks that verification fails loudly when the local
// evaluation and the API server disagree: a Role "read back" with a name the
// server's Role does not hold, and that name among the sampled reviews. The
// server denies that name, so each verification asks again until
// verify.Settle has passed: the untampered and the tampered read-back are
// verified at once.
func localMismatch(t *testing.T, cl *kube.Clients, p *plan.Plan) {
	t.Helper()
	ctx := context.Background()
	live, err := verify.ReadBack(ctx, cl, p)
	if err != nil {
		t.Fatal(err)
	}
	extra := access.Request{Verb: "get", Resource: "secrets", Namespace: p.Namespace, Name: "not-granted-server-secret"}
	q := *p
	q.Expect = append(slices.Clone(p.Expect), extra)
	tampered := slices.Clone(live)
	for i, u := range tampered {
		if u.GetKind() == "Role" {
			u = u.DeepCopy()
			rules, _, _ := unstructured.NestedSlice(u.Object, "rules")
			rules = append(rules, map[string]any{"apiGroups": []any{""}, "resources": []any{"secrets"}, "verbs": []any{"get"}, "resourceNames": []any{extra.Name}})
			if err := unstructured.SetNestedSlice(u.Object, rules, "rules"); err != nil {
				t.Fatal(err)
			}
			tampered[i] = u
		}
	}
	var (
		rd, td     verify.Round
		err1, err2 error
		wg         sync.WaitGroup
	)
	wg.Go(func() { rd, err1 = verify.Grant(ctx, cl.Kube, &q, live, []access.Request{extra}, nil) })
	wg.Go(func() { td, err2 = verify.Grant(ctx, cl.Kube, &q, tampered, []access.Request{extra}, nil) })
	wg.Wait()
	if err1 != nil || len(rd.Mismatches) != 0 || !slices.Contains(rd.NotGranted, extra) {
		t.Errorf("untampered: %+v, %v; want %s not granted and no mismatch", rd, err1, extra)
	}
	if err2 != nil || len(td.Mismatches) != 1 || len(td.NotGranted) != 0 {
		t.Errorf("tampered read-back: %+v, %v; want one mismatch", td, err2)
	}
}

// stepLog splits the recorded requests by the fix's step lines: each line
// starts a step, and the requests recorded until the next line are its own.
type stepLog struct {
	b     *kube.Budget
	names []string
	at    []int
}

func (l *stepLog) Write(p []byte) (int, error) {
	l.names = append(l.names, strings.TrimRight(string(p), "\n"))
	l.at = append(l.at, len(l.b.Records()))
	return len(p), nil
}

// report logs each step's requests by kind.
func (l *stepLog) report(t *testing.T) {
	t.Helper()
	recs := l.b.Records()
	for i, name := range l.names {
		end := len(recs)
		if i+1 < len(l.at) {
			end = l.at[i+1]
		}
		t.Logf("%3d  %s %v", end-l.at[i], name, byKind(recs[l.at[i]:end]))
	}
}
