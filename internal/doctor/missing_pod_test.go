package doctor_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/diagnose"
	"github.com/dpfdoctor/dpfdoctor/internal/doctor"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// After the widely shared steps on v25.4.0 (secrets patched into the
// operator's ClusterRole, non-Running DMS pods deleted, the patch reverted
// by the operator's next reconcile), diagnose names every DPU node left
// without its pod, and fix brings every one back Ready through a Node
// event, next to the grant the remaining pod shows is needed; rollback
// removes the Node annotations. Node status reports are off, so nothing
// but fix re-creates the pods. As in the reproduction, two of the
// three pods are deleted: the one left shows the grant all of them need.
// When every failing pod is deleted, no pod shows it: the grant comes from
// reviews of the pod the operator will create (evidence.Bundle.ExpectedPod:
// the DPUDevices the v25.7-era script left say which script it runs).
func TestFixAfterWidelySharedScript(t *testing.T) {
	t.Parallel()
	for _, all := range []bool{false, true} {
		t.Run(map[bool]string{false: "two of three deleted", true: "every pod deleted"}[all], func(t *testing.T) { fixAfterWidelySharedScript(t, all) })
	}
}

func fixAfterWidelySharedScript(t *testing.T, deleteAll bool) {
	e := startSim(t, sim.Options{Nodes: 3, Scenario: string(sim.DPUDeviceStatusForbidden), NodeStatusReport: -1})
	e.waitFailing(3)
	ctx := context.Background()
	rb := e.cs.RbacV1().ClusterRoles()

	// The widely shared steps.
	patch := `[{"op":"add","path":"/rules/-","value":{"apiGroups":[""],"resources":["secrets"],"verbs":["get","list"]}}]`
	if _, err := rb.Patch(ctx, e.c.Release.ClusterRole, types.JSONPatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	deleted := e.c.Nodes[1:]
	if deleteAll {
		deleted = e.c.Nodes
	}
	for _, n := range deleted {
		pod, err := e.cs.CoreV1().Pods(e.c.Namespace).Get(ctx, dpf.PodName(n), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if pod.Status.Phase == "Running" {
			t.Fatalf("%s is Running", pod.Name)
		}
		if err := e.cs.CoreV1().Pods(e.c.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	e.reconcile(1)
	if cr, err := rb.Get(ctx, e.c.Release.ClusterRole, metav1.GetOptions{}); err != nil || strings.Contains(cr.String(), "secrets") {
		t.Fatalf("the operator did not revert its ClusterRole: %v", err)
	}
	pre := e.state()

	// diagnose
	pl, err := doctor.Plan(ctx, doctor.PlanOptions{Clients: e.clients()})
	if err != nil {
		t.Fatal(err)
	}
	d := pl.Diagnosis
	if d.Summary.DPUNodes != 3 || d.Summary.Pods != 3-len(deleted) || d.Summary.NodesWithoutPod != len(deleted) {
		t.Errorf("summary %+v, want 3 DPU nodes, %d pods, %d nodes without", d.Summary, 3-len(deleted), len(deleted))
	}
	var missing []string
	for _, f := range d.Findings {
		if f.Class == diagnose.ClassPodMissing && f.Code == diagnose.CodePodMissing && f.Fixable {
			missing = append(missing, f.Nodes...)
			// The re-created pods will patch dpudevices/status (one
			// review per call, not per node).
			if !slices.ContainsFunc(f.Missing, func(r access.Request) bool {
				return r.Resource == "dpudevices" && r.Subresource == "status" && r.Verb == "patch"
			}) {
				t.Errorf("PodMissing does not name the grant the re-created pods need: %v", f.Missing)
			}
		}
	}
	if !slices.Equal(missing, deleted) {
		t.Fatalf("PodMissing nodes %v, want %v; findings %+v", missing, deleted, d.Findings)
	}

	// fix
	rep, err := e.fix(t.TempDir())
	if err != nil {
		t.Fatalf("fix: %v (%v)", err, rep.Problems)
	}
	if ready, total := e.readyPods(); ready != 3 || total != 3 {
		t.Fatalf("Ready %d/%d after fix", ready, total)
	}
	events := 0
	for _, p := range rep.Recovery.Pods {
		if slices.Contains(deleted, p.Node) {
			if p.Action != plan.ActionRecreate || p.NodeEvents < 1 || !p.Ready {
				t.Errorf("%s: %+v, want re-created after a Node event", p.Pod, p)
			}
			events += p.NodeEvents
		}
	}
	if events < len(deleted) {
		t.Errorf("the report records %d Node events for %d re-created pods", events, len(deleted))
	}
	if len(e.state().Annotations) == 0 {
		t.Error("no Node annotation after fix")
	}

	// rollback removes the grant and the Node annotations.
	if _, err := doctor.Rollback(ctx, doctor.RollbackOptions{Clients: e.clients(), Dir: rep.BackupDir}); err != nil {
		t.Fatal(err)
	}
	if got := e.state(); got.String() != pre.String() {
		t.Fatalf("state after rollback differs:\n got %s\nwant %s", got, pre)
	}
}
