package doctor_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/apply"
	"github.com/dpfdoctor/dpfdoctor/internal/diagnose"
	"github.com/dpfdoctor/dpfdoctor/internal/doctor"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/outcome"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
	"github.com/dpfdoctor/dpfdoctor/internal/policy"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
	"github.com/dpfdoctor/dpfdoctor/internal/verify"
)

func (e *env) fix(root string) (*doctor.Report, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	return doctor.Fix(ctx, doctor.FixOptions{
		PlanOptions:   doctor.PlanOptions{Clients: e.clients()},
		BackupRoot:    root,
		ReconcileWait: 500 * time.Millisecond,
		Timeout:       90 * time.Second,
		Log:           testLog{e.t},
	})
}

// The whole story on 20 failing nodes: plan, apply, verify, survive
// reconciles, every pod Ready, least privilege proven, idempotent, rolled
// back exactly, rollback idempotent.
func TestFixFullStory(t *testing.T) {
	t.Parallel()
	for _, scen := range []sim.Scenario{sim.HypotheticalSecretsForbidden, sim.HypotheticalSecretsForbiddenQuiet} {
		t.Run(string(scen), func(t *testing.T) {
			e := startSim(t, sim.Options{Nodes: 20, Scenario: string(scen)})
			e.waitFailing(20)
			pre := e.state()
			root := t.TempDir()

			rep, err := e.fix(root)
			if err != nil {
				if rep.Recovery != nil {
					for _, p := range rep.Recovery.Pods {
						if !p.Ready {
							t.Logf("not Ready: %+v", p)
						}
					}
				}
				t.Fatalf("fix: %v\nproblems: %v", err, rep.Problems)
			}
			if rep.Outcome != doctor.OutcomeFixed || rep.NoOp {
				t.Fatalf("outcome %q noOp=%t", rep.Outcome, rep.NoOp)
			}
			if ready, total := e.readyPods(); ready != 20 || total != 20 {
				t.Fatalf("Ready %d/%d after fix", ready, total)
			}
			if rep.Recovery == nil || rep.Recovery.Ready != 20 {
				t.Fatalf("report recovery: %+v", rep.Recovery)
			}
			for _, p := range rep.Recovery.Pods {
				// A kubelet status report may bring the pod back before
				// dpfdoctor's own Node event; the report says so.
				touched := p.NodeEvents >= 1 || p.Note == verify.RecreatedByOperator
				if p.Action != plan.ActionDelete || !touched || p.SecondsToReady <= 0 {
					t.Errorf("v25.4.0 pod %s: action %s, node events %d, ttr %.2f", p.Pod, p.Action, p.NodeEvents, p.SecondsToReady)
				}
			}
			// Objects: one Role and one RoleBinding in the DPF namespace,
			// nothing cluster-scoped, resourceNames per node.
			roles, err := e.cs.RbacV1().Roles(e.c.Namespace).List(context.Background(), metav1.ListOptions{LabelSelector: plan.ManagedByLabel + "=" + plan.ManagedByValue})
			if err != nil || len(roles.Items) != 1 {
				t.Fatalf("managed Roles: %v %v", roles, err)
			}
			for _, r := range roles.Items[0].Rules {
				for _, res := range r.Resources {
					if res == "secrets" && len(r.ResourceNames) != 20 {
						t.Errorf("secrets rule has %d names, want 20", len(r.ResourceNames))
					}
				}
			}
			if crs, _ := e.cs.RbacV1().ClusterRoles().List(context.Background(), metav1.ListOptions{LabelSelector: plan.ManagedByLabel + "=" + plan.ManagedByValue}); len(crs.Items) != 0 {
				t.Errorf("fix created ClusterRoles: %v", crs.Items)
			}

			// The grant survives three operator resyncs.
			e.reconcile(3)
			for _, n := range e.c.Nodes {
				if !e.sar(access.Request{Verb: "get", Resource: "secrets", Namespace: e.c.Namespace, Name: dpf.SecretName(n)}) {
					t.Errorf("after 3 resyncs the SA may not get %s", dpf.SecretName(n))
				}
			}
			// Least privilege: no other Secret, no list, no watch.
			secrets, err := e.cs.CoreV1().Secrets(e.c.Namespace).List(context.Background(), metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			granted := map[string]bool{}
			for _, n := range e.c.Nodes {
				granted[dpf.SecretName(n)] = true
			}
			for _, s := range secrets.Items {
				if !granted[s.Name] && e.sar(access.Request{Verb: "get", Resource: "secrets", Namespace: e.c.Namespace, Name: s.Name}) {
					t.Errorf("the SA may read Secret %s", s.Name)
				}
			}
			for _, r := range []access.Request{
				{Verb: "list", Resource: "secrets", Namespace: e.c.Namespace}, {Verb: "watch", Resource: "secrets", Namespace: e.c.Namespace},
				{Verb: "list", Resource: "secrets"}, {Verb: "get", Resource: "secrets", Namespace: "kube-system", Name: dpf.SecretName(e.c.Nodes[0])},
			} {
				if e.sar(r) {
					t.Errorf("the SA may %s", r)
				}
			}
			// The report is on disk, from measured facts.
			md, err := os.ReadFile(filepath.Join(rep.BackupDir, doctor.ReportMarkdown))
			if err != nil || !strings.Contains(string(md), rep.RollbackCommand) || !strings.Contains(string(md), "Time to Ready") {
				t.Fatalf("report.md: %v\n%s", err, md)
			}
			if _, err := os.Stat(filepath.Join(rep.BackupDir, doctor.ReportJSON)); err != nil {
				t.Fatal(err)
			}

			// Idempotent: two more applies change nothing.
			for i := 0; i < 2; i++ {
				again, err := e.fix(root)
				if err != nil {
					t.Fatalf("apply #%d: %v", i+2, err)
				}
				if again.Outcome != doctor.OutcomeNothingToDo && !again.NoOp {
					t.Fatalf("apply #%d changed something: %q %+v", i+2, again.Outcome, again.Applied)
				}
			}
			if dirs, _ := os.ReadDir(root); len(dirs) != 1 {
				t.Fatalf("%d backups after 3 applies, want 1", len(dirs))
			}

			// Rollback restores the exact pre-state, and is idempotent.
			cl := e.clients()
			res, err := doctor.Rollback(context.Background(), doctor.RollbackOptions{Clients: cl, Dir: rep.BackupDir})
			if err != nil || res.Already || len(res.Deleted) != 2 {
				t.Fatalf("rollback: %+v %v", res, err)
			}
			if got := e.state(); got.String() != pre.String() {
				t.Fatalf("state after rollback differs:\n got %s\nwant %s", got, pre)
			}
			res, err = doctor.Rollback(context.Background(), doctor.RollbackOptions{Clients: cl, Dir: rep.BackupDir})
			if err != nil || !res.Already {
				t.Fatalf("second rollback: %+v %v", res, err)
			}
		})
	}
}

func TestFixDPUDeviceStatus(t *testing.T) {
	t.Parallel()
	e := startSim(t, sim.Options{Nodes: 4, Scenario: string(sim.DPUDeviceStatusForbidden)})
	e.waitFailing(4)
	rep, err := e.fix(t.TempDir())
	if err != nil {
		t.Fatalf("fix: %v (%v)", err, rep.Problems)
	}
	if ready, total := e.readyPods(); ready != 4 || total != 4 {
		t.Fatalf("Ready %d/%d", ready, total)
	}
	r := access.Request{Verb: "patch", Group: dpf.GroupProvisioning, Resource: "dpudevices", Subresource: "status", Namespace: e.c.Namespace}
	if !e.sar(r) {
		t.Fatalf("the SA may not %s", r)
	}
	if e.sar(access.Request{Verb: "delete", Group: dpf.GroupProvisioning, Resource: "dpudevices", Namespace: e.c.Namespace}) {
		t.Fatal("the SA may delete dpudevices")
	}
}

// Problems RBAC cannot fix are left alone, and the outcome says so.
func TestFixLeavesNonRBACProblems(t *testing.T) {
	t.Parallel()
	e := startSim(t, sim.Options{Nodes: 4, Scenario: "apiserver-unreachable=2,certificate-not-ready=2"})
	e.waitFailing(4)
	pre := e.state()
	root := t.TempDir()
	rep, err := e.fix(root)
	if !errors.Is(err, outcome.ErrProblems) {
		t.Fatalf("fix: err %v, want problems", err)
	}
	if len(rep.Plan.Changes) != 0 || len(rep.Plan.Skipped) != 2 || len(rep.Problems) != 2 {
		t.Fatalf("plan changes %d, skipped %d, problems %v", len(rep.Plan.Changes), len(rep.Plan.Skipped), rep.Problems)
	}
	for _, s := range rep.Plan.Skipped {
		if s.NextStep == "" {
			t.Errorf("%s has no next step", s.Code)
		}
	}
	if got := e.state(); got.String() != pre.String() {
		t.Fatalf("fix changed the cluster:\n got %s\nwant %s", got, pre)
	}
	if dirs, _ := os.ReadDir(root); len(dirs) != 0 {
		t.Fatalf("a backup was written for a plan with nothing to do")
	}
}

// v25.4.0 never re-creates a deleted pod whose DPUNode exists: fix must not
// delete it, and the pod recovers at the kubelet's next retry. v25.7
// re-creates deleted pods, so no Node event is needed.
func TestFixRestartSemantics(t *testing.T) {
	t.Parallel()
	t.Run("v25.4.0 with a DPUNode", func(t *testing.T) {
		e := startSim(t, sim.Options{Nodes: 2, Scenario: string(sim.HypotheticalSecretsForbidden)})
		e.waitFailing(2)
		node := e.c.Nodes[0]
		dn := map[string]any{"apiVersion": dpf.GroupProvisioning + "/v1alpha1", "kind": "DPUNode",
			"metadata": map[string]any{"name": node, "namespace": e.c.Namespace}, "spec": map[string]any{}}
		if _, err := e.dyn.Resource(dpunodes).Namespace(e.c.Namespace).Create(context.Background(), unstructuredOf(dn), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		pods, _ := e.cs.CoreV1().Pods(e.c.Namespace).Get(context.Background(), dpf.PodName(node), metav1.GetOptions{})
		rep, err := e.fix(t.TempDir())
		if err != nil {
			t.Fatalf("fix: %v (%v)", err, rep.Problems)
		}
		for _, a := range rep.Plan.Restart {
			want := plan.ActionDelete
			if a.Node == node {
				want = plan.ActionWait
			}
			if a.Action != want {
				t.Errorf("%s: action %s, want %s (%s)", a.Pod, a.Action, want, a.Reason)
			}
		}
		after, err := e.cs.CoreV1().Pods(e.c.Namespace).Get(context.Background(), dpf.PodName(node), metav1.GetOptions{})
		if err != nil || after.UID != pods.UID || !dpf.PodReady(after) {
			t.Fatalf("the waited-for pod was replaced or is not Ready: %v", err)
		}
	})
	t.Run("v25.7.0", func(t *testing.T) {
		// A slower clock, so that the kubelet's back-off outlasts the fix.
		e := startSim(t, sim.Options{Version: "v25.7.0", Nodes: 3, Scenario: string(sim.HypotheticalSecretsForbiddenQuiet), TimeScale: 0.3})
		e.waitFailing(3)
		pre := e.state()
		rep, err := e.fix(t.TempDir())
		if err != nil {
			t.Fatalf("fix: %v (%v)", err, rep.Problems)
		}
		deleted := 0
		for _, p := range rep.Plan.Restart {
			if p.Action != plan.ActionDelete || p.TouchNode {
				t.Errorf("plan for %s: %s, touch node %t", p.Pod, p.Action, p.TouchNode)
			}
		}
		for _, p := range rep.Recovery.Pods {
			if p.NodeEvents != 0 || !p.Ready {
				t.Errorf("%s: node events %d, ready %t", p.Pod, p.NodeEvents, p.Ready)
			}
			if p.Action == plan.ActionDelete {
				deleted++
			}
		}
		if deleted == 0 {
			t.Error("no pod was deleted (all recovered on their own before the fix got to them)")
		}
		if _, err := doctor.Rollback(context.Background(), doctor.RollbackOptions{Clients: e.clients(), Dir: rep.BackupDir}); err != nil {
			t.Fatal(err)
		}
		if got := e.state(); got.String() != pre.String() {
			t.Fatalf("state after rollback differs:\n got %s\nwant %s", got, pre)
		}
	})
}

// A backup altered after the fact is refused before any change.
func TestRollbackRefusesTamperedBackup(t *testing.T) {
	t.Parallel()
	e := startSim(t, sim.Options{Nodes: 2, Scenario: string(sim.HypotheticalSecretsForbidden)})
	e.waitFailing(2)
	rep, err := e.fix(t.TempDir())
	if err != nil {
		t.Fatalf("fix: %v", err)
	}
	after := e.state()
	plan := filepath.Join(rep.BackupDir, apply.PlanFile)
	data, _ := os.ReadFile(plan)
	if err := os.WriteFile(plan, append(data, []byte("# edited\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = doctor.Rollback(context.Background(), doctor.RollbackOptions{Clients: e.clients(), Dir: rep.BackupDir})
	if !errors.Is(err, apply.ErrBadBackup) {
		t.Fatalf("rollback of a tampered backup: %v", err)
	}
	if _, err := doctor.Rollback(context.Background(), doctor.RollbackOptions{Clients: e.clients(), Dir: t.TempDir()}); !errors.Is(err, apply.ErrBadBackup) {
		t.Fatalf("rollback of an empty directory: %v", err)
	}
	if got := e.state(); got.String() != after.String() {
		t.Fatalf("a refused rollback changed the cluster")
	}
}

// A user who may read everything but write no RBAC is refused before any
// change, with the missing permissions named.
func TestFixWithoutRights(t *testing.T) {
	t.Parallel()
	e := startSim(t, sim.Options{Nodes: 2, Scenario: string(sim.HypotheticalSecretsForbidden)})
	e.waitFailing(2)
	ctx := context.Background()
	viewer := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "test-viewer"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}},
	}}
	if _, err := e.cs.RbacV1().ClusterRoles().Create(ctx, viewer, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "test-viewer"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "test-viewer"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "viewer"}}}
	if _, err := e.cs.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg, err := e.c.UserConfig("viewer")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kube.New(cfg, e.c.Namespace, nil)
	if err != nil {
		t.Fatal(err)
	}
	pods, _ := e.cs.CoreV1().Pods(e.c.Namespace).List(ctx, metav1.ListOptions{})
	pre := e.state()
	root := t.TempDir()
	rep, err := doctor.Fix(ctx, doctor.FixOptions{PlanOptions: doctor.PlanOptions{Clients: cl}, BackupRoot: root, ReconcileWait: 100 * time.Millisecond})
	var re *apply.RightsError
	if !errors.Is(err, kube.ErrInsufficientRights) || !errors.As(err, &re) || rep.Outcome != doctor.OutcomeNoRights {
		t.Fatalf("fix as a viewer: %v (outcome %q)", err, rep.Outcome)
	}
	for _, want := range []string{"create roles.rbac.authorization.k8s.io in " + e.c.Namespace, "delete pods in " + e.c.Namespace, "patch nodes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not name %q: %v", want, err)
		}
	}
	if got := e.state(); got.String() != pre.String() {
		t.Fatalf("a refused fix changed the cluster:\n got %s\nwant %s", got, pre)
	}
	after, _ := e.cs.CoreV1().Pods(e.c.Namespace).List(ctx, metav1.ListOptions{})
	for i := range pods.Items {
		if i >= len(after.Items) || after.Items[i].UID != pods.Items[i].UID {
			t.Fatal("a refused fix deleted pods")
		}
	}
	if dirs, _ := os.ReadDir(root); len(dirs) != 0 {
		t.Fatal("a refused fix wrote a backup")
	}
}

// When a fix fails after the v25.4.0 pods were deleted (here: right after
// the quiesce, before the grant), Release sends the Node events that bring
// them back (failing, as before), journalled in the backup.
func TestRecoveryRelease(t *testing.T) {
	t.Parallel()
	e := startSim(t, sim.Options{Nodes: 2, Scenario: string(sim.HypotheticalSecretsForbidden)})
	e.waitFailing(2)
	ctx := context.Background()
	cl := e.clients()
	pl, err := doctor.Plan(ctx, doctor.PlanOptions{Clients: cl})
	if err != nil {
		t.Fatal(err)
	}
	backup := apply.NewBackup(t.TempDir(), pl.Plan, cl.Config.Host, nil)
	r, err := verify.StartRecovery(ctx, cl, verify.RecoverOptions{Namespace: e.c.Namespace, Actions: pl.Plan.Restart, Effects: apply.NewRestarts(cl, backup)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	before, _ := e.cs.CoreV1().Pods(e.c.Namespace).List(ctx, metav1.ListOptions{})
	stop := errors.New("stop before the grant")
	_, err = (&apply.Applier{Clients: cl, BeforeWrite: func(ctx context.Context) error {
		if err := r.Quiesce(ctx); err != nil {
			return err
		}
		return stop
	}}).Apply(ctx, backup)
	if !errors.Is(err, stop) {
		t.Fatalf("apply: %v", err)
	}
	if pods, _ := e.cs.CoreV1().Pods(e.c.Namespace).List(ctx, metav1.ListOptions{}); len(pods.Items) != 0 {
		t.Fatalf("%d pods left after Quiesce", len(pods.Items))
	}
	if err := r.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if got := backup.Receipt().Annotations; len(got) != 2 {
		t.Fatalf("journal: %+v", got)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		pods, _ := e.cs.CoreV1().Pods(e.c.Namespace).List(ctx, metav1.ListOptions{})
		if len(pods.Items) == 2 && pods.Items[0].UID != before.Items[0].UID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pods did not come back: %d", len(pods.Items))
		}
	}
}

// Without a prompt the policy is asked once, by apply right before it
// writes: a refused plan still ends refused (exit 3), with nothing changed.
func TestFixRefusedByPolicy(t *testing.T) {
	t.Parallel()
	e := startSim(t, sim.Options{Nodes: 2, Scenario: string(sim.HypotheticalSecretsForbidden)})
	e.waitFailing(2)
	ctx := context.Background()
	// Someone else's Role under the name dpfdoctor's would take.
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "dpfdoctor-" + e.c.Release.ServiceAccount, Namespace: e.c.Namespace}}
	if _, err := e.cs.RbacV1().Roles(e.c.Namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pre := e.state()
	rep, err := doctor.Fix(ctx, doctor.FixOptions{PlanOptions: doctor.PlanOptions{Clients: e.clients(), Restart: plan.RestartDelete},
		BackupRoot: t.TempDir(), ReconcileWait: 100 * time.Millisecond})
	if !errors.Is(err, policy.ErrRefused) || rep.Outcome != doctor.OutcomeRefused || rep.BackupDir != "" {
		t.Fatalf("fix over someone else's Role: %v (outcome %q, backup %q)", err, rep.Outcome, rep.BackupDir)
	}
	if got := e.state(); got.String() != pre.String() {
		t.Fatalf("a refused fix changed the cluster:\n got %s\nwant %s", got, pre)
	}
	if ready, total := e.readyPods(); total != 2 || ready != 0 {
		t.Fatalf("%d of %d pods Ready, want the 2 failing pods left alone", ready, total)
	}
}

// The grant written out of band (fix -o yaml through GitOps, or an
// interrupted fix) before the pods' next retry: diagnose says the pods wait
// for that retry (DPF-RBAC-002), never that it does not know the failure,
// and fix grants nothing more and brings them back: on v25.7.0 by
// deleting them, on v25.4.0 by waiting for their retry (a delete there
// could race it).
func TestFixAfterGrantWrittenElsewhere(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		version  string
		scenario sim.Scenario
		action   string
	}{
		{"v25.4.0", sim.HypotheticalSecretsForbidden, plan.ActionWait},
		{"v25.7.0", sim.HypotheticalSecretsForbiddenQuiet, plan.ActionDelete},
	} {
		t.Run(tc.version, func(t *testing.T) {
			// Real time, so that the pods' next retry comes well after the grant.
			e := startSim(t, sim.Options{Version: tc.version, Nodes: 3, Scenario: string(tc.scenario), TimeScale: 1})
			e.waitFailing(3)
			ctx := context.Background()
			pl, err := doctor.Plan(ctx, doctor.PlanOptions{Clients: e.clients()})
			if err != nil || len(pl.Plan.Changes) == 0 {
				t.Fatalf("plan: %v %+v", err, pl)
			}
			for _, c := range pl.Plan.Changes { // as a GitOps tool applies `fix -o yaml`
				gvr := dpf.MustGVR(c.Object.GroupVersionKind().Group, c.Object.GetKind())
				if _, err := e.dyn.Resource(gvr).Namespace(c.Object.GetNamespace()).Apply(ctx, c.Object.GetName(), c.Object,
					metav1.ApplyOptions{FieldManager: "gitops"}); err != nil {
					t.Fatal(err)
				}
			}
			granted := false
			for deadline := time.Now().Add(20 * time.Second); !granted && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
				pl, err = doctor.Plan(ctx, doctor.PlanOptions{Clients: e.clients()})
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range pl.Diagnosis.Findings {
					if f.Class == diagnose.ClassUnknown {
						t.Fatalf("a pod waiting for its retry after the grant is Unknown: %+v", f)
					}
					granted = granted || f.Code == diagnose.CodeRBACGranted && len(f.Pods) == 3
				}
			}
			if !granted {
				t.Fatalf("no %s finding for the 3 pods after the grant: %+v", diagnose.CodeRBACGranted, pl.Diagnosis.Findings)
			}
			if len(pl.Plan.Changes) != 0 || len(pl.Plan.Restart) != 3 {
				t.Fatalf("plan after the grant: %d changes, %d restarts", len(pl.Plan.Changes), len(pl.Plan.Restart))
			}
			for _, a := range pl.Plan.Restart {
				if a.Action != tc.action || a.TouchNode {
					t.Errorf("%s: %s (touch node %t), want %s: %s", a.Pod, a.Action, a.TouchNode, tc.action, a.Reason)
				}
			}
			rep, err := e.fix(t.TempDir())
			if err != nil {
				t.Fatalf("fix: %v (%v)", err, rep.Problems)
			}
			if rep.Recovery == nil || rep.Recovery.Ready != rep.Recovery.Total {
				t.Fatalf("recovery: %+v", rep.Recovery)
			}
		})
	}
}
