package doctor_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dpfdoctor/dpfdoctor/internal/doctor"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// An audit of dpfdoctor's own requests during `fix --apply` and `rollback`,
// recorded at the transport: no request reads Secret data, and every write
// targets an object the plan names (its RBAC objects, the DPFOperatorConfig
// annotation, the restarted pods and their Nodes) or is an access review.
func TestFixAndRollbackRequestAudit(t *testing.T) {
	t.Parallel()
	e := startSim(t, sim.Options{Nodes: 4, Scenario: string(sim.HypotheticalSecretsForbidden)})
	e.waitFailing(4)
	budget := kube.NewBudget(0).Recording()
	cl, err := kube.New(e.c.Config, e.c.Namespace, budget)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := doctor.Fix(ctx, doctor.FixOptions{PlanOptions: doctor.PlanOptions{Clients: cl}, BackupRoot: t.TempDir(),
		ReconcileWait: 500 * time.Millisecond, Timeout: 90 * time.Second, Log: testLog{t}})
	if err != nil {
		t.Fatalf("fix: %v", err)
	}
	if rep.Plan == nil || len(rep.Plan.Changes) == 0 {
		t.Fatal("fix applied no plan")
	}
	allowed := allowedWrites(rep.Plan)
	audit := func(stage string) {
		records := budget.Records()
		if len(records) == 0 {
			t.Fatalf("%s: no requests recorded", stage)
		}
		writes := 0
		for _, r := range records {
			if strings.Contains(r.Path, "/secrets") {
				metadataOnly := strings.Contains(r.Accept, "as=PartialObjectMetadata")
				if r.Method != http.MethodGet || !metadataOnly || !strings.HasSuffix(r.Path, "/secrets") {
					t.Errorf("%s: request may read Secret data: %s %s (Accept %q)", stage, r.Method, r.Path, r.Accept)
				}
			}
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				continue
			}
			writes++
			if strings.HasSuffix(r.Path, "subjectaccessreviews") || strings.HasSuffix(r.Path, "selfsubjectrulesreviews") { // reviews write nothing
				continue
			}
			if !allowed[r.Method+" "+r.Path] {
				t.Errorf("%s: write outside the plan: %s %s", stage, r.Method, r.Path)
			}
		}
		if writes == 0 {
			t.Errorf("%s: recorded no writes at all", stage)
		}
	}
	audit("fix --apply")

	budget.Reset()
	if _, err := doctor.Rollback(ctx, doctor.RollbackOptions{Clients: cl, Dir: rep.BackupDir}); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	audit("rollback")
}

// allowedWrites lists "METHOD path" for every write the plan may make.
func allowedWrites(p *plan.Plan) map[string]bool {
	out := map[string]bool{}
	add := func(path string, methods ...string) {
		for _, m := range methods {
			out[m+" "+path] = true
		}
	}
	resources := map[string]string{"Role": "roles", "RoleBinding": "rolebindings", "ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings"}
	for _, c := range p.Changes {
		ref := c.Ref()
		base := "/apis/rbac.authorization.k8s.io/v1/"
		if ref.Namespace != "" {
			base += "namespaces/" + ref.Namespace + "/"
		}
		add(base+resources[ref.Kind], http.MethodPost)
		add(base+resources[ref.Kind]+"/"+ref.Name, http.MethodPatch, http.MethodPut, http.MethodDelete)
	}
	add("/apis/operator.dpu.nvidia.com/v1alpha1/namespaces/"+p.Namespace+"/dpfoperatorconfigs/"+p.OperatorConfig, http.MethodPatch, http.MethodPut)
	for _, a := range p.Restart {
		add("/api/v1/namespaces/"+p.Namespace+"/pods/"+a.Pod, http.MethodDelete)
		add("/api/v1/nodes/"+a.Node, http.MethodPatch, http.MethodPut)
	}
	return out
}
