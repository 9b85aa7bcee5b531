package guard

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dpfdoctor/dpfdoctor/internal/diagnose"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// The guard, with exactly deploy/'s RBAC, in repair mode: the failing pods
// are fixed; a new DPU host's pod recovers by itself with its Secret name
// added to the grant; a deleted or altered grant returns; the operator's
// resync does not fight it; /metrics matches the cluster.
func TestGuardRepairs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := startEnv(t, sim.Options{Nodes: 8, Scenario: "hypothetical-secrets-forbidden=6,healthy=2"})
	// The healthy pods Ready first: a pod still starting when the guard's
	// (test-short) startup grace ends is diagnosed like any other.
	e.eventually(60*time.Second, "6 pods failing in dms-init and 2 Ready", func() bool {
		ready := 0
		for _, p := range e.pods() {
			if dpf.PodReady(&p) {
				ready++
			}
		}
		return e.failingCount() == 6 && ready == 2
	})

	start := time.Now()
	g := e.startGuard(Options{Mode: ModeRepair})
	e.eventually(90*time.Second, "every pod Ready after the guard's repair", func() bool { return e.allReady(8) })
	t.Logf("6 failing pods Ready %.1fs after the guard started", time.Since(start).Seconds())

	names := e.grantedSecrets()
	if len(names) != 6 {
		t.Fatalf("grant allows %d Secrets, want the 6 failing nodes': %v", len(names), names)
	}
	diagnosed := e.eventedPods(ReasonDiagnosed)
	for i, n := range e.c.Nodes {
		pod := dpf.PodName(n)
		ev, ok := diagnosed[pod]
		switch {
		case i < 6 && (!ok || !strings.HasPrefix(ev.Message, string(diagnose.ClassRBACForbidden)+": ") || ev.Type != "Warning"):
			t.Errorf("pod %s: no %s event with the class and next step: %+v", pod, ReasonDiagnosed, ev)
		case i >= 6 && ok:
			t.Errorf("healthy pod %s got a %s event: %s", pod, ReasonDiagnosed, ev.Message)
		}
	}
	if got := len(e.eventedPods(ReasonRepaired)); got != 6 {
		t.Errorf("%d pods have a %s event, want 6", got, ReasonRepaired)
	}
	// The guard sees the last recovery at its next reconcile.
	e.eventually(30*time.Second, "time to ready observed for the 6 pods", func() bool {
		return e.scrape(g)[MetricTimeToReady+"_count"] >= 6
	})
	m := e.scrape(g)
	if m[MetricRepairs+`{result="applied"}`] < 1 || m[MetricRepairs+`{result="failed"}`] != 0 || m[MetricRepairs+`{result="refused"}`] != 0 {
		t.Errorf("repairs: %v", m.with(MetricRepairs))
	}

	// A new DPU host joins and fails like the others: no human action.
	node, err := e.c.AddNode(ctx, sim.HypotheticalSecretsForbidden)
	if err != nil {
		t.Fatal(err)
	}
	e.eventually(90*time.Second, "the new node's pod Ready", func() bool { return e.allReady(9) })
	if names := e.grantedSecrets(); !names[dpf.SecretName(node)] || len(names) != 7 {
		t.Fatalf("grant after the new node: %v, want the 6 and %s", names, dpf.SecretName(node))
	}
	if _, ok := e.eventedPods(ReasonDiagnosed)[dpf.PodName(node)]; !ok {
		t.Errorf("no %s event on the new node's pod", ReasonDiagnosed)
	}

	// The grant is deleted: it returns, binding and role.
	for _, del := range []func() error{
		func() error {
			return e.cs.RbacV1().RoleBindings(e.c.Namespace).Delete(ctx, e.grantName(), metav1.DeleteOptions{})
		},
		func() error {
			return e.cs.RbacV1().Roles(e.c.Namespace).Delete(ctx, e.grantName(), metav1.DeleteOptions{})
		},
	} {
		if err := del(); err != nil {
			t.Fatal(err)
		}
		e.eventually(30*time.Second, "the deleted grant restored", func() bool {
			_, err := e.cs.RbacV1().RoleBindings(e.c.Namespace).Get(ctx, e.grantName(), metav1.GetOptions{})
			return err == nil && len(e.grantedSecrets()) == 7
		})
	}
	if len(e.guardEvents(ReasonRestored)) == 0 {
		t.Errorf("no %s event", ReasonRestored)
	}

	// Someone edits the grant and drops a node's Secret: it is put back.
	role, err := e.cs.RbacV1().Roles(e.c.Namespace).Get(ctx, e.grantName(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range role.Rules {
		for _, res := range r.Resources {
			if res == "secrets" {
				role.Rules[i].ResourceNames = r.ResourceNames[1:]
			}
		}
	}
	if _, err := e.cs.RbacV1().Roles(e.c.Namespace).Update(ctx, role, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	e.eventually(30*time.Second, "the altered grant restored", func() bool { return len(e.grantedSecrets()) == 7 })

	// The operator's resync: it re-applies its inventory, leaves the grant
	// alone, and the guard does not react.
	time.Sleep(2 * time.Second)
	before := e.scrape(g)[MetricRepairs+`{result="applied"}`]
	grant, err := e.cs.RbacV1().Roles(e.c.Namespace).Get(ctx, e.grantName(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := e.c.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(3 * time.Second)
	after, err := e.cs.RbacV1().Roles(e.c.Namespace).Get(ctx, e.grantName(), metav1.GetOptions{})
	if err != nil || after.ResourceVersion != grant.ResourceVersion {
		t.Errorf("the grant changed around the operator's resync: %v", err)
	}
	op, err := e.cs.RbacV1().ClusterRoles().Get(ctx, e.c.Release.ClusterRole, metav1.GetOptions{})
	if err != nil || !plan.SameRules(op.Rules, e.c.Release.Rules) {
		t.Errorf("the operator's ClusterRole is not as the release ships it: %v", err)
	}
	m = e.scrape(g)
	if got := m[MetricRepairs+`{result="applied"}`]; got != before {
		t.Errorf("repairs after the operator's resync: %v, before %v (a repair loop)", got, before)
	}

	// /metrics agrees with the cluster.
	sum, err := e.c.Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pods := m.with(MetricDMSPods)
	if len(pods) != len(sum.States) {
		t.Errorf("dms_pods %v, cluster %v", pods, sum.States)
	}
	for state, n := range sum.States {
		if got := pods[fmt.Sprintf(`{state=%q}`, state)]; got != float64(n) {
			t.Errorf("dms_pods{state=%q} = %v, cluster has %d", state, got, n)
		}
	}
	if got := m[MetricFindings+`{class="Healthy"}`]; got != float64(sum.Ready) {
		t.Errorf("findings{Healthy} = %v, %d pods Ready", got, sum.Ready)
	}
	if m[MetricLeader] != 1 {
		t.Errorf("leader gauge %v", m[MetricLeader])
	}

	// The grant's Role becomes part of the operator's applyset and its
	// binding is deleted: the policy refuses the restore, nothing is
	// written.
	role, err = e.cs.RbacV1().Roles(e.c.Namespace).Get(ctx, e.grantName(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	role.Labels[dpf.ApplySetPartOfLabel] = "applyset-x-v1"
	if _, err := e.cs.RbacV1().Roles(e.c.Namespace).Update(ctx, role, metav1.UpdateOptions{FieldManager: "dpf-operator"}); err != nil {
		t.Fatal(err)
	}
	if err := e.cs.RbacV1().RoleBindings(e.c.Namespace).Delete(ctx, e.grantName(), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.eventually(30*time.Second, "the restore refused", func() bool { return e.scrape(g)[MetricRepairs+`{result="refused"}`] >= 1 })
	if _, err := e.cs.RbacV1().RoleBindings(e.c.Namespace).Get(ctx, e.grantName(), metav1.GetOptions{}); err == nil {
		t.Error("the guard restored a binding of an applyset's Role")
	}
	refusals := e.guardEvents(ReasonRepairRefused)
	if len(refusals) == 0 || !strings.Contains(refusals[0].Message, "part of applyset") {
		t.Errorf("refusal events: %+v", refusals)
	}
}

// Observe mode diagnoses and records events but changes nothing; then two
// repair-mode replicas with leader election: only one acts, and the other
// takes over when it stops.
func TestGuardObserveThenLeaderElection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t0 := time.Now()
	e := startEnv(t, sim.Options{Nodes: 4, Scenario: "hypothetical-secrets-forbidden"})
	t.Logf("sim up in %s", time.Since(t0))
	e.eventually(60*time.Second, "4 pods failing in dms-init", func() bool { return e.failingCount() == 4 })
	t.Logf("pods failing after %s", time.Since(t0))

	obs := e.startGuard(Options{Mode: ModeObserve})
	e.eventually(30*time.Second, "a diagnosis event on every pod", func() bool { return len(e.eventedPods(ReasonDiagnosed)) == 4 })
	e.eventually(30*time.Second, "findings in /metrics", func() bool {
		return e.scrape(obs)[MetricFindings+`{class="RBACForbidden"}`] == 4
	})
	time.Sleep(2 * time.Second)
	if n := e.managedCount(); n != 0 {
		t.Fatalf("observe mode wrote %d RBAC objects", n)
	}
	if n := e.failingCount(); n != 4 {
		t.Fatalf("%d pods failing in observe mode, want 4 (nothing repaired)", n)
	}
	m := e.scrape(obs)
	for _, r := range []string{ResultApplied, ResultNoOp, ResultFailed, ResultRefused} {
		if v := m[MetricRepairs+fmt.Sprintf(`{result=%q}`, r)]; v != 0 {
			t.Errorf("observe mode: repairs{%s} = %v", r, v)
		}
	}
	obs.stop()

	le := Options{Mode: ModeRepair, LeaderElect: true, LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond}
	a, b := le, le
	a.Identity, b.Identity = "replica-a", "replica-b"
	ra, rb := e.startGuard(a), e.startGuard(b)
	e.eventually(90*time.Second, "every pod Ready", func() bool { return e.allReady(4) })

	leader, follower := ra, rb
	if e.scrape(rb)[MetricLeader] == 1 {
		leader, follower = rb, ra
	}
	ml, mf := e.scrape(leader), e.scrape(follower)
	if ml[MetricLeader] != 1 || mf[MetricLeader] != 0 {
		t.Fatalf("leader gauges: %v and %v, want exactly one leader", ml[MetricLeader], mf[MetricLeader])
	}
	if ml[MetricRepairs+`{result="applied"}`] < 1 {
		t.Errorf("the leader did not repair: %v", ml.with(MetricRepairs))
	}
	for k, v := range mf.with(MetricRepairs) {
		if v != 0 {
			t.Errorf("the follower acted: repairs%s = %v", k, v)
		}
	}
	if len(mf.with(MetricFindings)) != 0 {
		t.Errorf("the follower diagnosed: %v", mf.with(MetricFindings))
	}
	lease, err := e.cs.CoordinationV1().Leases(e.c.Namespace).Get(ctx, DefaultLeaderElectionID, metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != leader.g.opts.Identity {
		t.Fatalf("lease holder: %v (err %v), want %s", lease.Spec.HolderIdentity, err, leader.g.opts.Identity)
	}

	// The leader stops (and releases the lease); the other takes over and
	// restores a grant deleted afterwards.
	leader.stop()
	e.eventually(30*time.Second, "the other replica leading", func() bool { return e.scrape(follower)[MetricLeader] == 1 })
	e.eventually(30*time.Second, "the new leader's first reconcile", func() bool {
		return e.scrape(follower)[MetricDMSPods+`{state="Running"}`] == 4
	})
	if err := e.cs.RbacV1().RoleBindings(e.c.Namespace).Delete(ctx, e.grantName(), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.eventually(30*time.Second, "the grant restored by the new leader", func() bool {
		_, err := e.cs.RbacV1().RoleBindings(e.c.Namespace).Get(ctx, e.grantName(), metav1.GetOptions{})
		return err == nil
	})
	// The binding is visible before the repair's bookkeeping ends (backup
	// receipt, then the counter).
	e.eventually(10*time.Second, "the new leader's repair counted", func() bool {
		return e.scrape(follower)[MetricRepairs+`{result="applied"}`] >= 1
	})
}

// deploy/ grants nothing on Secrets, no wildcards, and writes only
// dpfdoctor's grants by name: one for each provisioning ServiceAccount of
// the DPF releases.
func TestDeployRBACLeastPrivilege(t *testing.T) {
	var grants []string
	for _, sa := range grantServiceAccounts() {
		grants = append(grants, plan.NamePrefix+sa)
	}
	for _, u := range deployObjects(t, "rbac.yaml") {
		var rules []rbacv1.PolicyRule
		switch u.GetKind() {
		case "Role":
			var r rbacv1.Role
			fromUnstructured(t, u, &r)
			rules = r.Rules
		case "ClusterRole":
			var r rbacv1.ClusterRole
			fromUnstructured(t, u, &r)
			rules = r.Rules
		default:
			continue
		}
		for _, r := range rules {
			for _, list := range [][]string{r.Verbs, r.APIGroups, r.Resources, r.ResourceNames} {
				for _, s := range list {
					if strings.Contains(s, "*") {
						t.Errorf("%s %s: wildcard in %+v", u.GetKind(), u.GetName(), r)
					}
				}
			}
			writes := false
			for _, v := range r.Verbs {
				switch v {
				case "create", "patch", "update", "delete", "escalate", "bind", "impersonate", "deletecollection":
					writes = true
				}
			}
			for _, res := range r.Resources {
				if strings.HasPrefix(res, "secrets") {
					t.Errorf("%s %s grants %v on %s", u.GetKind(), u.GetName(), r.Verbs, res)
				}
				if writes && (res == "roles" || res == "rolebindings" || res == "clusterroles" || res == "clusterrolebindings") {
					if !slices.Equal(r.ResourceNames, grants) {
						t.Errorf("%s %s writes %s beyond dpfdoctor's grants %v: %+v", u.GetKind(), u.GetName(), res, grants, r)
					}
				}
			}
			if u.GetKind() == "ClusterRole" && writes {
				for _, res := range r.Resources {
					if res != "subjectaccessreviews" && res != "tokenreviews" {
						t.Errorf("ClusterRole writes %s: %+v", res, r)
					}
				}
			}
		}
	}
}

// deploy/deployment.yaml runs the guard hardened: non-root, read-only root
// filesystem with an emptyDir at /tmp for backups, seccomp RuntimeDefault,
// no privilege escalation, no capabilities, requests, probes, leader
// election and repair mode.
func TestDeployDeploymentHardened(t *testing.T) {
	objs := deployObjects(t, "deployment.yaml")
	if len(objs) != 1 {
		t.Fatalf("%d objects", len(objs))
	}
	var d appsv1.Deployment
	fromUnstructured(t, objs[0], &d)
	ps := d.Spec.Template.Spec
	if ps.ServiceAccountName != "dpfdoctor-guard" || ps.SecurityContext == nil || ps.SecurityContext.RunAsNonRoot == nil || !*ps.SecurityContext.RunAsNonRoot ||
		ps.SecurityContext.SeccompProfile == nil || ps.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context: %+v", ps.SecurityContext)
	}
	if len(ps.Containers) != 1 {
		t.Fatalf("%d containers", len(ps.Containers))
	}
	c := ps.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("container security context: %+v", sc)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources: %+v", c.Resources)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("probes: %+v %+v", c.LivenessProbe, c.ReadinessProbe)
	}
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"guard", "--mode=repair", "--leader-elect", "--backup-dir=/tmp/"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	tmp := false
	for _, m := range c.VolumeMounts {
		for _, v := range ps.Volumes {
			if v.Name == m.Name && m.MountPath == "/tmp" && v.EmptyDir != nil {
				tmp = true
			}
		}
	}
	if !tmp {
		t.Error("no emptyDir at /tmp: backups need a writable path")
	}
}
