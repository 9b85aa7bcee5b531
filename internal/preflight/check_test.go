package preflight

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/fanout"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
)

// v254 is a healthy v25.4.0 installation on nodes a, b and c: the
// operator's inventory RBAC, a DPUDevice CRD without status subresource.
func v254(t *testing.T) *evidence.Bundle {
	t.Helper()
	r, err := dpf.Lookup("v25.4.0")
	if err != nil {
		t.Fatal(err)
	}
	ns := dpf.DefaultNamespace
	b := &evidence.Bundle{Install: evidence.Install{Namespace: ns, Version: r.Version, OperatorConfig: dpf.OperatorConfigName,
		APIServerVIP: "127.0.0.1", APIServerPort: 6443, DPUDeviceCRD: true}}
	for _, n := range []string{"a", "b", "c"} {
		b.Pods = append(b.Pods, evidence.Pod{Name: dpf.PodName(n), Node: n, Namespace: ns})
	}
	b.Issuers = []evidence.Object{{Kind: "Issuer", Name: dpf.Issuer}}
	role, binding := r.InventoryRBAC(ns)
	role.Labels = map[string]string{dpf.ApplySetPartOfLabel: dpf.ApplySetID(dpf.ProvisioningComponent, ns)}
	binding.Labels = role.Labels
	b.RBAC.ClusterRoles, b.RBAC.ClusterRoleBindings = []rbacv1.ClusterRole{*role}, []rbacv1.ClusterRoleBinding{*binding}
	return b
}

func check(t *testing.T, b *evidence.Bundle, to, source string, manifests *rbac.Set) *Report {
	t.Helper()
	target, err := dpf.Lookup(to)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := evidence.Answer(Patterns(b, target), fanout.Limit, Local(AfterUpgrade(b, target, manifests, source)))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Check(Input{Bundle: b, Target: target, RBAC: source, Access: acc})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func codes(r *Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.Code)
	}
	return out
}

func load(t *testing.T, path string) *rbac.Set {
	t.Helper()
	s, err := rbac.LoadManifests(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCheck(t *testing.T) {
	withStatus := func(b *evidence.Bundle) { b.Install.DPUDeviceStatusSubresource = true }
	for _, tc := range []struct {
		name, to, source string
		manifests        string
		change           func(*evidence.Bundle)
		want             []string
		says             []string
	}{
		{name: "release RBAC, v25.4 CRD", to: "v25.7.0", want: []string{CodeCRD},
			says: []string{"dpudevices.provisioning.dpu.nvidia.com has no status subresource", "Failed to update PCI address for DPUDevice"}},
		{name: "release RBAC, v25.7 CRD", to: "v25.7.0", change: withStatus},
		{name: "same version", to: "v25.4.0", says: []string{"not newer"}},
		{name: "v25.4 manifests", to: "v25.7.0", source: RBACManifests, manifests: "testdata/rbac-v25.4.0", change: withStatus,
			want: []string{CodeRBAC}, says: []string{"get provisioning.dpu.nvidia.com/dpudevices/status", "patch dpudevices.provisioning.dpu.nvidia.com/status"}},
		{name: "v25.7 manifests", to: "v25.7.0", source: RBACManifests, manifests: "testdata/rbac-v25.7.0", change: withStatus},
		{name: "paused, no VIP, CRD absent", to: "v25.7.0", change: func(b *evidence.Bundle) {
			b.Install.Paused, b.Install.APIServerVIP, b.Install.DPUDeviceCRD = true, "", false
		}, want: []string{CodeCRD, CodeAPIServer, CodePaused}, says: []string{"is not installed", "paused"}},
		{name: "issuer absent, one certificate not ready", to: "v25.7.0", change: func(b *evidence.Bundle) {
			withStatus(b)
			b.Issuers = nil
			b.Certificates = []evidence.Object{{Kind: "Certificate", Name: dpf.CertificateName("b"), Conditions: []evidence.Condition{{Type: "Ready", Status: "False"}}}}
		}, want: []string{CodeIssuer, CodeCertificate}},
		{name: "host agent: no certificate volume, new ServiceAccount", to: "v25.10.0", change: func(b *evidence.Bundle) {
			withStatus(b)
			b.Issuers = nil
		}, says: []string{"instead of dpf-provisioning-dms-service-account"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := v254(t)
			if tc.change != nil {
				tc.change(b)
			}
			var m *rbac.Set
			if tc.manifests != "" {
				m = load(t, tc.manifests)
			}
			r := check(t, b, tc.to, tc.source, m)
			if got := codes(r); !slices.Equal(got, tc.want) {
				t.Fatalf("findings %v, want %v: %+v", got, tc.want, r.Findings)
			}
			text := strings.Join(r.Assumptions, "\n")
			for _, f := range r.Findings {
				text += "\n" + f.Summary
			}
			for _, w := range tc.says {
				if !strings.Contains(text, w) && !strings.Contains(strings.Join(missingOf(r), "\n"), w) {
					t.Errorf("report lacks %q:\n%s\n%v", w, text, missingOf(r))
				}
			}
			if r.WillBreak() != (len(tc.want) > 0) {
				t.Errorf("WillBreak %t", r.WillBreak())
			}
			hasRBAC := slices.Contains(tc.want, CodeRBAC)
			if (len(r.Grant) > 0) != hasRBAC {
				t.Errorf("grant %d objects, RBAC finding %t", len(r.Grant), hasRBAC)
			}
		})
	}
}

func missingOf(r *Report) []string {
	var out []string
	for _, f := range r.Findings {
		for _, m := range f.Missing {
			out = append(out, m.String(), m.Verb+" "+m.Group+"/"+m.RBACResource())
		}
	}
	return out
}

// The grant is fix's: a dpfdoctor- Role in the DPF namespace binding the
// target's ServiceAccount to exactly the missing verbs.
func TestGrantIsFixs(t *testing.T) {
	b := v254(t)
	b.Install.DPUDeviceStatusSubresource = true
	r := check(t, b, "v25.7.0", RBACManifests, load(t, "testdata/rbac-v25.4.0"))
	y, err := r.GrantYAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"kind: Role\n", "kind: RoleBinding\n", "name: dpfdoctor-dpf-provisioning-dms-service-account", "dpudevices/status",
		"- get\n  - patch\n", "app.kubernetes.io/managed-by: dpfdoctor", "namespace: dpf-operator-system"} {
		if !strings.Contains(string(y), w) {
			t.Errorf("grant lacks %q:\n%s", w, y)
		}
	}
	if strings.Contains(string(y), "update") || strings.Contains(string(y), "secrets") {
		t.Errorf("grant is wider than the missing calls:\n%s", y)
	}
}

// A per-name grant that survives the upgrade covers some nodes: the
// finding names only the others.
func TestPerNode(t *testing.T) {
	b := v254(t)
	b.Install.DPUDeviceStatusSubresource = true
	m := load(t, "testdata/rbac-v25.7.0")
	m.ClusterRoles[0].Rules = slices.DeleteFunc(m.ClusterRoles[0].Rules, func(r rbacv1.PolicyRule) bool { return r.Resources[0] == "nodes" })
	subj := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: "dpf-provisioning-dms-service-account", Namespace: dpf.DefaultNamespace}
	b.RBAC.ClusterRoles = append(b.RBAC.ClusterRoles, rbacv1.ClusterRole{Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get"}, ResourceNames: []string{"a"}}}})
	b.RBAC.ClusterRoles[1].Name = "pinned"
	b.RBAC.ClusterRoleBindings = append(b.RBAC.ClusterRoleBindings, rbacv1.ClusterRoleBinding{Subjects: []rbacv1.Subject{subj},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "pinned"}})
	b.RBAC.ClusterRoleBindings[1].Name = "pinned"
	r := check(t, b, "v25.7.0", RBACManifests, m)
	if len(r.Findings) != 1 || !slices.Equal(r.Findings[0].Nodes, []string{"b", "c"}) {
		t.Fatalf("want one finding on nodes b, c: %+v", r.Findings)
	}
	if got := missingOf(r); !slices.Contains(got, "get nodes b (cluster-scoped)") || slices.Contains(got, "get nodes a (cluster-scoped)") {
		t.Errorf("missing %v", got)
	}
}

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// The JSON report of v25.4.0 → v25.7.0 with the v25.4.0 manifests: the
// layout `-o json` prints (cli's table golden renders the same report).
func TestReportGolden(t *testing.T) {
	b, paths := v254(t), []string{"testdata/rbac-v25.4.0"}
	target, err := dpf.Lookup("v25.7.0")
	if err != nil {
		t.Fatal(err)
	}
	acc, err := evidence.Answer(Patterns(b, target), fanout.Limit, Local(AfterUpgrade(b, target, load(t, paths[0]), RBACManifests)))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Check(Input{Bundle: b, Target: target, RBAC: RBACManifests, ManifestPaths: paths, Access: acc})
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	file := filepath.Join("testdata", "v25.4-to-v25.7.json.golden")
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs (go test ./internal/preflight -run %s -update to accept):\n%s", file, t.Name(), got)
	}
}
