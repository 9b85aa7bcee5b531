package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
)

// A user bound to exactly the read-only ClusterRole docs/ publishes can
// diagnose (exit 3: problems found) but not fix: `fix --apply` refuses
// before any change, naming what is missing (exit 6).
func TestReadOnlyUser(t *testing.T) {
	parallel(t)
	ctx := context.Background()
	set, err := rbac.LoadManifests(filepath.Join("..", "..", "docs", "rbac", "dpfdoctor-readonly.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(set.ClusterRoles) != 1 {
		t.Fatalf("docs/rbac/dpfdoctor-readonly.yaml has %d ClusterRoles, want 1", len(set.ClusterRoles))
	}
	cs := kubernetes.NewForConfigOrDie(s.dpf.Config)
	role := set.ClusterRoles[0].DeepCopy()
	role.ResourceVersion = ""
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "e2e-readonly"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "reader"}}}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.RbacV1().ClusterRoleBindings().Delete(ctx, binding.Name, metav1.DeleteOptions{})
		_ = cs.RbacV1().ClusterRoles().Delete(ctx, role.Name, metav1.DeleteOptions{})
	})
	reader, err := s.dpf.UserConfig("reader")
	if err != nil {
		t.Fatal(err)
	}
	kc := kubeconfig(t, reader, nil)
	time.Sleep(200 * time.Millisecond) // the RBAC authorizer's informers

	r := dpfdoctor(t, kc, "diagnose", "-o", "json")
	if r.code != 3 {
		t.Fatalf("diagnose as the read-only user: exit %d, want 3\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var d struct {
		Gaps []any `json:"gaps"`
	}
	if err := yaml.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Gaps) != 0 {
		t.Errorf("the published read-only role leaves gaps: %v", d.Gaps)
	}

	before := managed(t, cs, s.dpf.Namespace)
	dir := t.TempDir()
	r = dpfdoctor(t, kc, "fix", "--apply", "--yes", "--backup-dir", filepath.Join(dir, "b"))
	if r.code != 6 || !strings.Contains(r.stderr, "create") {
		t.Fatalf("fix --apply as the read-only user: exit %d, want 6 naming what is missing\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if after := managed(t, cs, s.dpf.Namespace); after != before {
		t.Fatalf("a refused fix changed the cluster: %d → %d dpfdoctor objects", before, after)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "b")); len(entries) != 0 {
		t.Errorf("a refused fix left a backup folder: %v", entries)
	}
}
