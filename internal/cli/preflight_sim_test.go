package cli

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/preflight"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// dpfdoctor preflight --to v25.7.0 on a v25.4.0 cluster: the CRD and, with
// RBAC pinned, the permission; an admin applies the v25.7 CRD and the
// printed grant, and preflight passes. Its requests do not grow with nodes.
func TestPreflightOnSim(t *testing.T) {
	requireAssets(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c, err := sim.Start(ctx, sim.Options{Version: "v25.4.0", Nodes: 3, TimeScale: 0.05, Resync: time.Hour, KubectlMaxNodes: -1,
		ControlPlane: sharedControlPlane(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	cs := kubernetes.NewForConfigOrDie(c.Config)
	waitReady(ctx, t, cs, c, 3)
	kc := []string{"--kubeconfig", c.KubeconfigPath}
	preflightJSON := func(t *testing.T, wantCode int, args ...string) *preflight.Report {
		t.Helper()
		code, out, errOut := run(t, append(append([]string{"preflight", "--to", "v25.7.0", "-o", "json"}, kc...), args...)...)
		if code != wantCode {
			t.Fatalf("exit %d, want %d; stderr %s\n%s", code, wantCode, errOut, out)
		}
		validate(t, schemas(t)["preflight-v1alpha1"], "preflight -o json", []byte(out))
		var r preflight.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		if r.SchemaVersion != preflight.SchemaVersion || r.From != "v25.4.0" || r.To != "v25.7.0" {
			t.Errorf("report header: %+v", r)
		}
		return &r
	}

	t.Run("release RBAC: the CRD", func(t *testing.T) {
		code, out, errOut := run(t, append([]string{"preflight", "--to", "v25.7.0"}, kc...)...)
		if code != ExitProblems {
			t.Fatalf("exit %d; stderr %s\n%s", code, errOut, out)
		}
		for _, w := range []string{preflight.CodeCRD, "DPUDevice CRD dpudevices.provisioning.dpu.nvidia.com has no status subresource",
			"helm upgrade does not upgrade CRDs", "Apply the v25.7.0 CRDs first", "ASSUMPTIONS", "re-applies its own v25.7.0 inventory"} {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
		if strings.Contains(out, preflight.CodeRBAC) {
			t.Errorf("the release's own RBAC covers its calls:\n%s", out)
		}
	})

	var grant *preflight.Report
	t.Run("current RBAC: also the permission", func(t *testing.T) {
		code, out, errOut := run(t, append([]string{"preflight", "--to", "v25.7.0", "--rbac", "current"}, kc...)...)
		if code != ExitProblems {
			t.Fatalf("exit %d; stderr %s\n%s", code, errOut, out)
		}
		for _, w := range []string{preflight.CodeCRD, preflight.CodeRBAC, "patch dpudevices.provisioning.dpu.nvidia.com/status",
			"SubjectAccessReviews as system:serviceaccount:dpf-operator-system:dpf-provisioning-dms-service-account",
			"kind: Role\n", "dpudevices/status"} {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
		grant = preflightJSON(t, ExitProblems, "--rbac", "current")
		if len(grant.Grant) != 2 || grant.Reviews == 0 {
			t.Fatalf("grant %d objects, %d reviews", len(grant.Grant), grant.Reviews)
		}
	})

	t.Run("manifests", func(t *testing.T) {
		r := preflightJSON(t, ExitProblems, "--rbac", filepath.Join("..", "preflight", "testdata", "rbac-v25.4.0"))
		if len(r.Findings) != 2 || r.Findings[1].Code != preflight.CodeRBAC || r.Reviews != 0 {
			t.Errorf("findings %+v, %d reviews", r.Findings, r.Reviews)
		}
		r = preflightJSON(t, ExitProblems, "--rbac", filepath.Join("..", "preflight", "testdata", "rbac-v25.7.0"))
		if len(r.Findings) != 1 || r.Findings[0].Code != preflight.CodeCRD {
			t.Errorf("findings %+v", r.Findings)
		}
	})
	if grant == nil {
		t.FailNow()
	}

	t.Run("after the CRD and the grant: nothing breaks", func(t *testing.T) {
		applyReleaseCRDs(ctx, t, c, "v25.7.0")
		dyn := dynamic.NewForConfigOrDie(c.Config)
		for _, o := range grant.Grant {
			data, err := o.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			gvr := schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: strings.ToLower(o.GetKind()) + "s"}
			if _, err := dyn.Resource(gvr).Namespace(o.GetNamespace()).Patch(ctx, o.GetName(), types.ApplyPatchType, data,
				metav1.PatchOptions{FieldManager: "admin"}); err != nil {
				t.Fatal(err)
			}
		}
		subj := access.ServiceAccount(c.Namespace, c.Release.ServiceAccount)
		waitReview(ctx, t, cs, access.Request{Verb: "patch", Group: dpf.GroupProvisioning, Resource: "dpudevices", Subresource: "status", Namespace: c.Namespace}.SubjectAccessReview(subj))
		for _, source := range []string{"current", "release"} {
			code, out, errOut := run(t, append([]string{"preflight", "--to", "v25.7.0", "--rbac", source}, kc...)...)
			if code != ExitOK || !strings.Contains(out, "Nothing will break") {
				t.Errorf("--rbac %s: exit %d; stderr %s\n%s", source, code, errOut, out)
			}
		}
	})

	t.Run("requests stay constant in the number of nodes", func(t *testing.T) {
		at3 := preflightJSON(t, ExitOK, "--rbac", "current")
		if len(at3.Nodes) != 3 {
			t.Fatalf("nodes %v", at3.Nodes)
		}
		for range 27 {
			if _, err := c.AddNode(ctx, sim.Healthy); err != nil {
				t.Fatal(err)
			}
		}
		waitReady(ctx, t, cs, c, 30)
		at30 := preflightJSON(t, ExitOK, "--rbac", "current")
		if len(at30.Nodes) != 30 || at30.Requests != at3.Requests || at30.Reviews != at3.Reviews || at3.Requests > 40 {
			t.Errorf("3 nodes: %d requests, %d reviews; 30 nodes (%d): %d requests, %d reviews",
				at3.Requests, at3.Reviews, len(at30.Nodes), at30.Requests, at30.Reviews)
		}
		t.Logf("preflight --rbac current: %d API requests (%d access reviews) at 3 and at 30 nodes", at30.Requests, at30.Reviews)
	})
}

// waitReady waits until n DMS pods are Ready.
func waitReady(ctx context.Context, t *testing.T, cs kubernetes.Interface, c *sim.Cluster, n int) {
	t.Helper()
	for {
		pods, err := cs.CoreV1().Pods(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: evidence.PodSelector})
		if err != nil {
			t.Fatal(err)
		}
		ready := 0
		for i := range pods.Items {
			if dpf.PodReady(&pods.Items[i]) {
				ready++
			}
		}
		if ready == n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d pods Ready", ready, n)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitReview waits until the RBAC authorizer allows a review (it reads
// bindings through informers).
func waitReview(ctx context.Context, t *testing.T, cs kubernetes.Interface, sar *authorizationv1.SubjectAccessReview) {
	t.Helper()
	for {
		r, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err == nil && r.Status.Allowed {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("not allowed: %+v", sar.Spec)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// applyReleaseCRDs updates the cluster's CRDs to a release's, as an admin
// does before a helm upgrade.
func applyReleaseCRDs(ctx context.Context, t *testing.T, c *sim.Cluster, version string) {
	t.Helper()
	r, err := dpf.Lookup(version)
	if err != nil {
		t.Fatal(err)
	}
	ax := apiextensionsclient.NewForConfigOrDie(c.Config).ApiextensionsV1().CustomResourceDefinitions()
	for _, want := range sim.ReleaseCRDs(r) {
		have, err := ax.Get(ctx, want.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		have.Spec = want.Spec
		if _, err := ax.Update(ctx, have, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}
