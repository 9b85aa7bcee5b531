package evidence_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dpfdoctor/dpfdoctor/internal/diagnose"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/fanout"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

const scaleScenarios = "hypothetical-secrets-forbidden=2,hypothetical-secrets-forbidden-quiet=1,dpudevice-status-forbidden=1,apiserver-unreachable=1," +
	"certificate-not-ready=1,rshim-occupied=1,no-dpu-found=1,healthy=2"

// splitLogs counts log reads and every other request.
func splitLogs(b *kube.Budget) (logs, other int) {
	for _, r := range b.Records() {
		if strings.HasSuffix(r.Path, "/log") {
			logs++
		} else {
			other++
		}
	}
	return logs, other
}

// The request count at 10 and at 400 pods is the same apart from log
// reads: above the log budget, 3 pods per failure signature whose sample
// agrees, and every pod of one whose sample disagrees.
func TestRequestsDoNotGrowWithPods(t *testing.T) {
	const grown = 400
	if testing.Short() {
		t.Skip("starts an API server (envtest); skipped under -short")
	}
	// MaxAddresses 10: the sim's kubelet serves logs on the addresses of
	// the nodes it starts with, so the nodes added later share them. No
	// Node status reports: nothing here reads them, and 400 nodes'
	// would cost more than the rest. 16 operator workers: with the
	// default 4, reconciling the added nodes one API call after another
	// is most of this test's time.
	c, err := startShared(sim.Options{Nodes: 10, Scenario: scaleScenarios, TimeScale: 0.05, SecretWaitAttempts: 1,
		KubectlMaxNodes: -1, Resync: time.Hour, MaxAddresses: 10, NodeStatusReport: -1, OperatorWorkers: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	ctx := context.Background()

	b10, budget10, err := collect(t, c.Config, evidence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logs10, other10 := splitLogs(budget10)

	// Grow to 400 DPU hosts with the same scenario mix: about 300 failing
	// pods, above evidence.DefaultLogBudget, so signatures are sampled.
	scen := make([]sim.Scenario, 0, len(c.Nodes))
	for _, n := range c.Nodes {
		scen = append(scen, c.byNode[n])
	}
	added := make([]string, grown-len(c.byNode))
	if err := fanout.Each(len(added), fanout.Limit, func(i int) (err error) {
		added[i], err = c.AddNode(ctx, scen[i%len(scen)])
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for i, name := range added {
		c.byNode[name] = scen[i%len(scen)]
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if err := c.settle(sctx, 1); err != nil {
		t.Fatal(err)
	}
	bN, budgetN, err := collect(t, c.Config, evidence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logsN, otherN := splitLogs(budgetN)
	t.Logf("10 pods: %d requests (%d log reads); %d pods: %d requests (%d log reads)", b10.Requests, logs10, grown, bN.Requests, logsN)
	if len(bN.Pods) != grown {
		t.Fatalf("%d pods", len(bN.Pods))
	}
	if other10 != otherN {
		t.Errorf("requests other than log reads: %d at 10 pods, %d at %d", other10, otherN, grown)
		for _, r := range budgetN.Records() {
			t.Logf("%s %s", r.Method, r.Path)
		}
	}
	// Above the log budget a signature whose sample agrees costs 3 pods'
	// logs; one whose sample disagrees is read in full.
	sampled := 0
	for _, g := range bN.LogGroups {
		if g.Unread == evidence.UnreadSampled {
			sampled++
			if len(g.Fetched) > 3 {
				t.Errorf("signature %s: %d pods' logs read although its sample agrees", g.Signature, len(g.Fetched))
			}
		}
	}
	if sampled == 0 {
		t.Errorf("no signature was sampled at %d pods: the log budget was not exceeded", grown)
	}
	if len(bN.LogGroups) != len(b10.LogGroups) {
		t.Errorf("failure signatures: %d at 10 pods, %d at %d", len(b10.LogGroups), len(bN.LogGroups), grown)
	}
	for _, r := range budgetN.Records() {
		if strings.Contains(r.Path, "/secrets") && !strings.Contains(r.Accept, "as=PartialObjectMetadataList") {
			t.Errorf("request may read Secret data: %+v", r)
		}
	}

	// Every failing pod's class is exact, log-only causes sharing one
	// failure signature included.
	d := diagnose.Diagnose(bN)
	exact := map[sim.Scenario]diagnose.Class{
		sim.HypotheticalSecretsForbiddenQuiet: diagnose.ClassRBACForbidden, sim.DPUDeviceStatusForbidden: diagnose.ClassStatusSubresourceSkew,
		sim.CertificateNotReady: diagnose.ClassCertificateNotReady, sim.RshimOccupied: diagnose.ClassRshimOccupied,
		sim.HypotheticalSecretsForbidden: diagnose.ClassRBACForbidden, sim.APIServerUnreachable: diagnose.ClassAPIServerUnreachable,
		sim.NoDPUFound: diagnose.ClassNoDPUFound,
	}
	for _, p := range d.Pods {
		if w, ok := exact[c.byNode[p.Node]]; ok && p.Class != w {
			t.Errorf("%s (%s): %s, want %s: %s [%s]", p.Name, c.byNode[p.Node], p.Class, w, p.Detail, p.LogNotRead)
		}
	}
	t.Logf("%d pods by class: %v", grown, d.Summary.ByClass)
	for _, l := range bN.Logs {
		if l.Error != "" {
			t.Logf("log %s %s: %s", l.Pod, l.Instance, l.Error)
			break
		}
	}

	// Last: a pod granted its Secret may heal while the grant lasts, and
	// the fleet above must not wait for it.
	t.Run("per-node grant", func(t *testing.T) { perNodeGrant(t, c) })
}

// A dpfdoctor-managed Role granting one node's Secret by name: the review
// is asked for a node it does not cover, and the granted node is answered
// from the listed Role. Its RoleBinding is not labelled and names the
// ServiceAccount without a namespace (the binding's, as for the API
// server), so the collector keeps it because it binds the pods' subject.
func perNodeGrant(t *testing.T, c *simCluster) {
	ctx := context.Background()
	nodes := c.nodesOf(sim.HypotheticalSecretsForbidden)
	granted, other := nodes[0], nodes[1]
	labels := map[string]string{evidence.ManagedByLabel: evidence.ManagedByValue}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "dpfdoctor-test-secrets", Namespace: c.Namespace, Labels: labels},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}, ResourceNames: []string{dpf.SecretName(granted)}}}}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: c.Namespace},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: c.Release.ServiceAccount}}}
	if _, err := c.kube.RbacV1().Roles(c.Namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.kube.RbacV1().RoleBindings(c.Namespace).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = c.kube.RbacV1().RoleBindings(c.Namespace).Delete(ctx, rb.Name, metav1.DeleteOptions{})
		_ = c.kube.RbacV1().Roles(c.Namespace).Delete(ctx, role.Name, metav1.DeleteOptions{})
	}()
	time.Sleep(200 * time.Millisecond) // the RBAC authorizer reads informers
	b, _, err := collect(t, c.Config, evidence.Options{Nodes: nodes})
	if err != nil {
		t.Fatal(err)
	}
	var check *evidence.AccessCheck
	for i := range b.Access {
		if b.Access[i].Request.Resource == "secrets" && b.Access[i].Request.Group == "" {
			check = &b.Access[i]
		}
	}
	if check == nil {
		t.Fatalf("no Secret access check: %+v", b.Access)
	}
	if check.Request.Name != dpf.SecretName(other) || check.Allowed {
		t.Errorf("review asked for %q (allowed %t), want the uncovered %q, denied", check.Request.Name, check.Allowed, dpf.SecretName(other))
	}
	if !check.AllowedFor(granted) || check.AllowedFor(other) || len(check.NodeOverrides) != 1 ||
		!strings.Contains(check.NodeOverrides[0].Source, "Role "+c.Namespace+"/"+role.Name) {
		t.Errorf("per-node answers: %+v", check.NodeOverrides)
	}
	if len(b.RBAC.Roles) == 0 || len(b.RBAC.RoleBindings) == 0 {
		t.Errorf("the Role and its RoleBinding are not in the bundle: %+v", b.RBAC)
	}
	d := diagnose.Diagnose(b)
	for _, p := range d.Pods {
		if p.Node == other && p.Class != diagnose.ClassRBACForbidden {
			t.Errorf("%s: %s", p.Name, p.Class)
		}
	}
}

// The request budget of one diagnosis, apart from log reads, for the
// benchmark's mix (every pod failing), every scenario at once, and the
// plain v25.4.0 story. docs/diagnose.md quotes these budgets.
func TestRequestBudget(t *testing.T) {
	startMixed(t)
	for _, tc := range []struct {
		name     string
		scenario string
		nodes    int
		budget   int
		// logBudget, when set, forces sampling: one cause then costs at
		// most 3 pods' logs.
		logBudget int
	}{
		// BenchmarkDiagnose5000's mix on ten nodes.
		{"every pod failing", "dpudevice-status-forbidden=2,apiserver-unreachable=2,certificate-not-ready=2,rshim-occupied=2,no-dpu-found=2", 10, 15, 0},
		// Adds the Secret review to the status one.
		{"every scenario", mixedScenarios, 10, 16, 0},
		{"v25.4.0 hypothetical-secrets-forbidden, sampled", "hypothetical-secrets-forbidden", 4, 13, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mixed(t)
			if tc.scenario != mixedScenarios {
				var err error
				// dms-init through client-go, not kubectl: the budget is
				// dpfdoctor's requests, and the pods fail sooner.
				c, err = startShared(sim.Options{Nodes: tc.nodes, Scenario: tc.scenario, TimeScale: 0.05, SecretWaitAttempts: 1, Resync: time.Hour, KubectlMaxNodes: -1})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = c.Stop() })
			}
			b, budget, err := collect(t, c.Config, evidence.Options{LogBudget: tc.logBudget})
			if err != nil {
				t.Fatal(err)
			}
			if tc.logBudget > 0 {
				d := diagnose.Diagnose(b)
				if n := podsRead(b); n > 3 || d.Summary.Inferred != tc.nodes-n || d.Summary.ByClass[diagnose.ClassRBACForbidden] != tc.nodes {
					t.Errorf("one cause, sampled: %d pods' logs read, %d inferred, classes %v", n, d.Summary.Inferred, d.Summary.ByClass)
				}
			}
			logs, other := splitLogs(budget)
			// A 429 (API priority and fairness shedding load while the sim
			// starts) is retried by client-go: the budget counts requests
			// dpfdoctor chose to make.
			throttled := 0
			for _, r := range budget.Records() {
				if r.Status == http.StatusTooManyRequests {
					throttled++
				}
			}
			other -= throttled
			t.Logf("%d requests and %d log reads (%d throttled and retried)", other, logs, throttled)
			if other > tc.budget {
				t.Errorf("%d requests apart from log reads, budget %d:", other, tc.budget)
				for _, r := range budget.Records() {
					t.Logf("  %s %s %s %d", r.Method, r.Path, r.Query, r.Status)
				}
			}
		})
	}
}
