package guard

import (
	"bytes"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/diff"
)

// The chart charts/dpfdoctor-guard, rendered and linted by the pinned helm
// of hack/tools.sh. deploy/ is generated from its default values
// (hack/generate-deploy.sh), so these tests hold the chart to deploy/'s
// RBAC and pod security under other values and namespaces too.

// chartCase is one way of installing the chart.
type chartCase struct {
	name       string
	namespace  string
	args       []string // helm flags
	monitoring bool     // whether the chart renders deploy/monitoring/'s objects
	observe    bool     // mode observe: nothing of deploy/'s that writes grants
}

var chartCases = []chartCase{
	{name: "defaults", namespace: "dpf-operator-system"},
	{name: "monitoring", namespace: "dpf-operator-system", args: []string{"--set", "monitoring.enabled=true"}, monitoring: true},
	{name: "values", namespace: "dpf-test", args: []string{"-f", filepath.Join("testdata", "chart-values.yaml")}, monitoring: true, observe: true},
}

// helmPath builds the pinned helm once per test binary.
var helmPath = sync.OnceValues(func() (string, error) {
	cmd := exec.Command(filepath.Join("..", "..", "hack", "tools.sh"), "helm")
	cmd.Stderr = os.Stderr // hack/tools.sh prints its progress
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), err
})

// helm runs the pinned helm on the chart. A cold build of helm takes
// minutes, so -short runs skip when it is not built yet.
func helm(t testing.TB, args ...string) ([]byte, error) {
	t.Helper()
	if testing.Short() && exec.Command(filepath.Join(repoRoot(t), "hack", "tools.sh"), "--check", "helm").Run() != nil {
		t.Skip("helm is not built yet (hack/tools.sh helm); skipped under -short")
	}
	bin, err := helmPath()
	if err != nil {
		t.Fatalf("hack/tools.sh helm: %v", err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stderr = &stderr
	// No repositories, plugins or cache of the user's: a clean helm.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	out, err := cmd.Output()
	if err != nil {
		return out, &helmError{args: args, err: err, stderr: stderr.String() + string(out)}
	}
	return out, nil
}

type helmError struct {
	args   []string
	err    error
	stderr string
}

func (e *helmError) Error() string {
	return "helm " + strings.Join(e.args, " ") + ": " + e.err.Error() + "\n" + e.stderr
}

func chartDir(t testing.TB) string { return filepath.Join(repoRoot(t), "charts", "dpfdoctor-guard") }

// renderChart is `helm template` of the chart as installed in ns.
func renderChart(t testing.TB, ns string, args ...string) []*unstructured.Unstructured {
	t.Helper()
	out, err := helm(t, append([]string{"template", "dpfdoctor-guard", chartDir(t), "--namespace", ns}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return parseObjects(t, "helm template", out)
}

// TestChartLint runs `helm lint --strict` for each case, and checks that the
// schema and the chart's own checks refuse bad values.
func TestChartLint(t *testing.T) {
	for _, tc := range chartCases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := helm(t, append([]string{"lint", "--strict", chartDir(t), "--namespace", tc.namespace}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(out), "0 chart(s) failed") {
				t.Errorf("helm lint: %s", out)
			}
		})
	}
	for _, tc := range []struct {
		name string
		set  string
		want string
	}{
		{"unknown mode", "mode=fix", "mode"},
		{"unknown value", "replica=1", "replica"},
		{"no leader election", "leaderElection=false", "needs leaderElection"},
		{"monitoring without HTTPS", "monitoring.enabled=true,metrics.secure=false", "monitoring.enabled needs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := helm(t, "template", "dpfdoctor-guard", chartDir(t), "--set", tc.set)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("--set %s: %v; want an error naming %q", tc.set, err, tc.want)
			}
		})
	}
}

// TestChartRBACMatchesDeploy renders the chart for each case and compares
// its objects and RBAC with deploy/ as `kubectl apply -k` builds it: the
// same object names, the same rules, and bindings with the same subjects
// and roles. The case's namespace is mapped to deploy/'s.
func TestChartRBACMatchesDeploy(t *testing.T) {
	deploy := renderDeploy(t, ".")
	monitoring := slices.Concat(deploy, renderDeploy(t, "monitoring"))
	for _, tc := range chartCases {
		t.Run(tc.name, func(t *testing.T) {
			want := deploy
			if tc.monitoring {
				want = monitoring
			}
			if tc.observe {
				want = withoutGrantWrites(t, want)
			}
			chart := renderChart(t, tc.namespace, tc.args...)
			checkNamespaces(t, chart, tc.namespace)
			ns := deploy[0].GetNamespace()
			w, g := rbacOf(t, want, ns), rbacOf(t, chart, tc.namespace)
			keys := slices.Sorted(maps.Keys(w))
			for k := range g {
				if _, ok := w[k]; !ok {
					keys = append(keys, k)
				}
			}
			for _, k := range keys {
				if !equality.Semantic.DeepEqual(w[k], g[k]) {
					t.Errorf("%s: the chart differs from deploy/ (- deploy/, + chart):\n%s", k, diff.Diff(w[k], g[k]))
				}
			}
		})
	}
}

// checkNamespaces: every namespaced object is in ns, and the guard watches ns.
func checkNamespaces(t *testing.T, objs []*unstructured.Unstructured, ns string) {
	t.Helper()
	for _, u := range objs {
		clusterScoped := slices.Contains([]string{"ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}, u.GetKind())
		if clusterScoped != (u.GetNamespace() == "") || !clusterScoped && u.GetNamespace() != ns {
			t.Errorf("%s %s: namespace %q, want %q", u.GetKind(), u.GetName(), u.GetNamespace(), ns)
		}
	}
	var d appsv1.Deployment
	fromUnstructured(t, findObject(t, objs, "Deployment", ControllerName), &d)
	if args := d.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--namespace="+ns) {
		t.Errorf("the guard runs with %v, not --namespace=%s", args, ns)
	}
}

// withoutGrantWrites is objs as the chart renders them in observe mode:
// without the admission policy, and without the Role rules that write
// RBAC objects (the grants).
func withoutGrantWrites(t *testing.T, objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, u := range objs {
		switch u.GetKind() {
		case "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
			continue
		case "Role":
			var r rbacv1.Role
			fromUnstructured(t, u, &r)
			r.Rules = slices.DeleteFunc(r.Rules, func(p rbacv1.PolicyRule) bool {
				return slices.Contains(p.APIGroups, rbacv1.GroupName) && !slices.Contains(p.Verbs, "get")
			})
			m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&r)
			if err != nil {
				t.Fatal(err)
			}
			u = &unstructured.Unstructured{Object: m}
		}
		out = append(out, u)
	}
	return out
}

// rbacOf collects what the comparison sees of a set of objects: their
// names ("objects"), each role's rules ("<Kind> <ns>/<name> rules") and each
// binding's roleRef and subjects. Namespace ns reads as "NS", so that
// installations in different namespaces compare equal.
func rbacOf(t *testing.T, objs []*unstructured.Unstructured, ns string) map[string]any {
	t.Helper()
	norm := func(s string) string {
		if s == ns {
			return "NS"
		}
		return s
	}
	var names []string
	v := map[string]any{}
	for _, u := range objs {
		key := u.GetKind() + " " + norm(u.GetNamespace()) + "/" + u.GetName()
		names = append(names, key)
		var subjects []rbacv1.Subject
		switch u.GetKind() {
		case "Role":
			var r rbacv1.Role
			fromUnstructured(t, u, &r)
			v[key+" rules"] = r.Rules
		case "ClusterRole":
			var r rbacv1.ClusterRole
			fromUnstructured(t, u, &r)
			v[key+" rules"] = r.Rules
		case "RoleBinding":
			var b rbacv1.RoleBinding
			fromUnstructured(t, u, &b)
			v[key+" roleRef"], subjects = b.RoleRef, b.Subjects
		case "ClusterRoleBinding":
			var b rbacv1.ClusterRoleBinding
			fromUnstructured(t, u, &b)
			v[key+" roleRef"], subjects = b.RoleRef, b.Subjects
		default:
			continue
		}
		for i := range subjects {
			subjects[i].Namespace = norm(subjects[i].Namespace)
		}
		if subjects != nil {
			v[key+" subjects"] = subjects
		}
	}
	slices.Sort(names)
	v["objects"] = names
	return v
}
