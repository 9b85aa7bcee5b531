package guard

import (
	"context"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/dpfdoctor/dpfdoctor/internal/apply"
	"github.com/dpfdoctor/dpfdoctor/internal/doctor"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// hook returns cfg with fn called around every request (fn calls next).
func hook(cfg *rest.Config, fn func(r *http.Request, next http.RoundTripper) (*http.Response, error)) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Wrap(func(next http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) { return fn(r, next) })
	})
	return c
}

func rolePatch(r *http.Request) (patch, dryRun bool) {
	return r.Method == http.MethodPatch && strings.Contains(r.URL.Path, "/roles/"), strings.Contains(r.URL.RawQuery, "dryRun")
}

func wait(t *testing.T, ch <-chan struct{}, what string) {
	select {
	case <-ch:
	case <-time.After(90 * time.Second):
		t.Errorf("timed out waiting for %s", what)
	}
}

// `fix --apply` and the guard write the same grant at once, as field
// managers dpfdoctor and dpfdoctor-guard. The interleaving is forced: fix
// plans for two nodes, the guard then writes the grant for all six, and
// fix writes last; later the guard writes again over fix's write for a new
// node. Both conflicts are merged: fix succeeds, the Role ends with every
// node's name and both field managers, and the guard records no failure.
func TestGuardAndFixWriteAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := startEnv(t, sim.Options{Nodes: 6, Scenario: "hypothetical-secrets-forbidden"})
	e.eventually(60*time.Second, "6 pods failing in dms-init", func() bool { return e.failingCount() == 6 })

	fixReady, guardWrote := make(chan struct{}), make(chan struct{})
	var fixOnce, guardWait, guardDone sync.Once
	e.guardCfg = hook(e.guardCfg, func(r *http.Request, next http.RoundTripper) (*http.Response, error) {
		patch, dry := rolePatch(r)
		if patch && dry {
			guardWait.Do(func() { wait(t, fixReady, "fix to reach its write") })
		}
		resp, err := next.RoundTrip(r)
		if patch && !dry && err == nil && resp.StatusCode < 300 {
			guardDone.Do(func() { close(guardWrote) })
		}
		return resp, err
	})
	g := e.startGuard(Options{Mode: ModeRepair})

	fixCfg := hook(e.c.Config, func(r *http.Request, next http.RoundTripper) (*http.Response, error) {
		// Its write, not its dry run: on v25.4.0 fix deletes the failing
		// pods between the two, and a pod the guard's grant had let
		// recover (and its DPUNode appear) by then would not come back.
		if patch, dry := rolePatch(r); patch && !dry {
			fixOnce.Do(func() { close(fixReady); wait(t, guardWrote, "the guard's write") })
		}
		return next.RoundTrip(r)
	})
	cl, err := kube.New(fixCfg, e.c.Namespace, nil)
	if err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	rep, err := doctor.Fix(fctx, doctor.FixOptions{PlanOptions: doctor.PlanOptions{Clients: cl, Nodes: e.c.Nodes[:2]},
		BackupRoot: t.TempDir(), ReconcileWait: 200 * time.Millisecond, Timeout: 90 * time.Second})
	if err != nil {
		t.Fatalf("fix --apply while the guard wrote: %v", err)
	}
	if rep == nil {
		t.Fatal("no report")
	}
	e.eventually(90*time.Second, "every pod Ready", func() bool { return e.allReady(6) })

	node, err := e.c.AddNode(ctx, sim.HypotheticalSecretsForbidden)
	if err != nil {
		t.Fatal(err)
	}
	e.eventually(90*time.Second, "the new node's pod Ready", func() bool { return e.allReady(7) })

	names := e.grantedSecrets()
	for _, n := range append(slices.Clone(e.c.Nodes), node) {
		if !names[dpf.SecretName(n)] {
			t.Errorf("the grant lost %s: %v", dpf.SecretName(n), names)
		}
	}
	role, err := e.cs.RbacV1().Roles(e.c.Namespace).Get(ctx, e.grantName(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	managers := map[string]bool{}
	for _, mf := range role.ManagedFields {
		managers[mf.Manager] = true
	}
	if !managers[plan.FieldManager] || !managers[apply.GuardFieldManager] {
		t.Errorf("field managers of the grant: %v, want %s and %s", managers, plan.FieldManager, apply.GuardFieldManager)
	}
	if m := e.scrape(g); m[MetricRepairs+`{result="failed"}`] != 0 || m[MetricRepairs+`{result="applied"}`] < 2 {
		t.Errorf("the guard's repairs: %v", m.with(MetricRepairs))
	}
}

// The API server restarts under two guards with leader election (on the
// same etcd, address and keys). The grant's binding is deleted as soon as
// the server is back, before the guards' watches have re-listed: the
// leader restores it with exactly one write, exactly one guard leads
// throughout, and every earlier backup is still there.
func TestGuardSurvivesAPIServerRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := startEnv(t, sim.Options{Nodes: 4, Scenario: "hypothetical-secrets-forbidden"})
	e.eventually(60*time.Second, "4 pods failing in dms-init", func() bool { return e.failingCount() == 4 })

	// Leases long enough to outlast the outage (starting kube-apiserver takes
	// 10-25 s on a busy machine); a longer one ends the leader (see
	// docs/guard.md, "Faults").
	le := Options{Mode: ModeRepair, LeaderElect: true, LeaseDuration: 90 * time.Second, RenewDeadline: 75 * time.Second, RetryPeriod: time.Second}
	a, b := le, le
	a.Identity, b.Identity = "replica-a", "replica-b"
	a.Budget, b.Budget = kube.NewBudget(0).Recording(), kube.NewBudget(0).Recording()
	ra, rb := e.startGuard(a), e.startGuard(b)
	e.eventually(90*time.Second, "every pod Ready", func() bool { return e.allReady(4) })
	leader := func() (*running, int) {
		n, l := 0, (*running)(nil)
		for _, r := range []*running{ra, rb} {
			if e.scrape(r)[MetricLeader] == 1 {
				n, l = n+1, r
			}
		}
		return l, n
	}
	before, n := leader()
	if n != 1 {
		t.Fatalf("%d leaders before the restart", n)
	}
	backups := func() []string {
		ents, err := os.ReadDir(before.g.opts.BackupDir)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, d := range ents {
			out = append(out, d.Name())
		}
		return out
	}
	kept := backups()
	if len(kept) == 0 {
		t.Fatal("the leader's repair left no backup")
	}
	a.Budget.Reset()
	b.Budget.Reset()

	start := time.Now()
	if err := e.c.RestartAPIServer(ctx, func() { time.Sleep(500 * time.Millisecond) }); err != nil {
		t.Fatal(err)
	}
	t.Logf("API server back after %s", time.Since(start))
	if err := e.cs.RbacV1().RoleBindings(e.c.Namespace).Delete(ctx, e.grantName(), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.eventually(60*time.Second, "the binding restored", func() bool {
		_, err := e.cs.RbacV1().RoleBindings(e.c.Namespace).Get(ctx, e.grantName(), metav1.GetOptions{})
		return err == nil
	})
	after, n := leader()
	if n != 1 || after != before {
		t.Errorf("after the restart: %d leaders, leader changed %v", n, after != before)
	}
	lease, err := e.cs.CoordinationV1().Leases(e.c.Namespace).Get(ctx, DefaultLeaderElectionID, metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != before.g.opts.Identity {
		t.Errorf("lease: %v %v", lease, err)
	}
	time.Sleep(3 * time.Second) // any second write would land now
	writes := map[string]int{}
	for _, bud := range []*kube.Budget{a.Budget, b.Budget} {
		for _, r := range bud.Records() {
			if r.Method != http.MethodGet && !strings.Contains(r.Query, "dryRun") &&
				(strings.Contains(r.Path, "/roles") || strings.Contains(r.Path, "/rolebindings")) {
				writes[r.Method+" "+r.Path]++
			}
		}
	}
	if len(writes) != 1 {
		t.Errorf("writes to the grant after the restart: %v, want one apply of the binding", writes)
	}
	for k, v := range writes {
		if !strings.Contains(k, "/rolebindings/") || v != 1 {
			t.Errorf("write %s ×%d, want the binding once", k, v)
		}
	}
	now := backups()
	for _, k := range kept {
		if !slices.Contains(now, k) {
			t.Errorf("backup %s lost", k)
		}
	}
	if len(now) != len(kept)+1 {
		t.Errorf("%d backups after the restore, want %d", len(now), len(kept)+1)
	}
	if !e.allReady(4) {
		t.Errorf("pods after the restart: %s", e.podStates())
	}
}

// v25.1's per-DPU DMS pods carry no label: the guard finds them as
// diagnose does, records its diagnosis on each failing one, counts them in
// its metrics, and writes no RBAC (there is none to repair on v25.1).
func TestGuardSeesPerDPUPods(t *testing.T) {
	t.Parallel()
	e := startEnv(t, sim.Options{Version: "v25.1.0", Nodes: 3, Scenario: "healthy=1,rshim-occupied=2"})
	e.eventually(60*time.Second, "2 pods failing", func() bool {
		pods, err := e.cs.CoreV1().Pods(e.c.Namespace).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for i := range pods.Items {
			if dpf.IsPerDPUPod(&pods.Items[i]) && crashed(&pods.Items[i]) {
				n++
			}
		}
		return n == 2
	})
	g := e.startGuard(Options{Mode: ModeRepair})
	e.eventually(60*time.Second, "a diagnosis event on the 2 failing pods", func() bool {
		evs := e.guardEvents(ReasonDiagnosed)
		n := 0
		for _, ev := range evs {
			if strings.HasSuffix(ev.InvolvedObject.Name, "-dms") && strings.HasPrefix(ev.Message, "RshimOccupied: ") {
				n++
			}
		}
		return n == 2
	})
	e.eventually(30*time.Second, "the pods in /metrics", func() bool {
		m := e.scrape(g)
		total := 0.0
		for _, v := range m.with(MetricDMSPods) {
			total += v
		}
		return total == 3 && m[MetricFindings+`{class="RshimOccupied"}`] == 2 && m[MetricFindings+`{class="Healthy"}`] == 1
	})
	if n := e.managedCount(); n != 0 {
		t.Errorf("the guard wrote %d RBAC objects on v25.1", n)
	}
}
