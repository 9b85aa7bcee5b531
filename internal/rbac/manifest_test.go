package rbac

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestLoadManifests(t *testing.T) {
	tests := []struct {
		name                           string
		paths                          []string
		roles, clusterRoles, rbs, crbs int
	}{
		{name: "helm output with Source comments and empty documents", paths: []string{"testdata/helm-rendered.yaml"}, roles: 1, rbs: 1},
		{name: "JSON List, non-RBAC items ignored", paths: []string{"testdata/list.json"}, clusterRoles: 1, crbs: 1},
		{name: "directory walked recursively, other extensions skipped", paths: []string{"testdata/dir"}, roles: 1, rbs: 1, clusterRoles: 1, crbs: 1},
		{name: "several paths", paths: []string{"testdata/helm-rendered.yaml", "testdata/list.json"}, roles: 1, rbs: 1, clusterRoles: 1, crbs: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := LoadManifests(tc.paths...)
			if err != nil {
				t.Fatal(err)
			}
			got := []int{len(s.Roles), len(s.ClusterRoles), len(s.RoleBindings), len(s.ClusterRoleBindings)}
			want := []int{tc.roles, tc.clusterRoles, tc.rbs, tc.crbs}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("roles/clusterRoles/roleBindings/clusterRoleBindings = %v, want %v", got, want)
				}
			}
		})
	}
}

func TestLoadManifestsErrors(t *testing.T) {
	tests := []struct {
		name     string
		path     string
		wantLine int
		wantText string
	}{
		{name: "malformed YAML in the second document", path: "testdata/malformed.yaml", wantLine: 13, wantText: "did not find expected"},
		{name: "unknown field in a rule", path: "testdata/wrong-shape.yaml", wantLine: 2, wantText: `unknown field "resource"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadManifests(tc.path)
			var me *ManifestError
			if !errors.As(err, &me) {
				t.Fatalf("err = %v, want *ManifestError", err)
			}
			if me.File != tc.path || me.Line != tc.wantLine {
				t.Errorf("at %s:%d, want %s:%d (%v)", me.File, me.Line, tc.path, tc.wantLine, err)
			}
			if !strings.Contains(err.Error(), tc.wantText) || !strings.HasPrefix(err.Error(), tc.path+":") {
				t.Errorf("err = %q, want file:line prefix and %q", err, tc.wantText)
			}
		})
	}
	if _, err := LoadManifests("testdata/missing.yaml"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist", err)
	}
}

func TestParseManifests(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		objects int
		wantErr string
	}{
		{name: "empty", data: "", objects: 0},
		{name: "only comments and separators", data: "# x\n---\n---\n# y\n", objects: 0},
		{name: "separator with comment", data: "--- # first\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: a}\n", objects: 1},
		{name: "document end marker", data: "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: a}\n...\n", objects: 1},
		{name: "CRLF line ends", data: "apiVersion: v1\r\nkind: Namespace\r\n---\r\napiVersion: rbac.authorization.k8s.io/v1\r\nkind: Role\r\nmetadata: {name: a, namespace: b}\r\n", objects: 1},
		{name: "typed list", data: "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleList\nitems:\n- apiVersion: rbac.authorization.k8s.io/v1\n  kind: Role\n  metadata: {name: a, namespace: b}\n", objects: 1},
		{name: "top-level JSON array", data: `[{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"a"}}]`, objects: 1},
		{name: "scalar document", data: "just text\n", wantErr: "x.yaml:1: expected a Kubernetes object"},
		{name: "ClusterRoleBinding to a ServiceAccount without a namespace", data: "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: a, namespace: b}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: c}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: r}\nsubjects:\n- {kind: ServiceAccount, name: dms}\n",
			wantErr: "x.yaml:5: ClusterRoleBinding c: subjects[0]: a ServiceAccount subject needs a namespace"},
		{name: "RoleBinding to a ServiceAccount without a namespace", data: "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: c, namespace: b}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}\nsubjects:\n- {kind: ServiceAccount, name: dms}\n", objects: 1},
		{name: "v1beta1 group version still read", data: "apiVersion: rbac.authorization.k8s.io/v1beta1\nkind: ClusterRole\nmetadata: {name: a}\n", objects: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseManifests("x.yaml", []byte(tc.data))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Len() != tc.objects {
				t.Errorf("objects = %d, want %d", s.Len(), tc.objects)
			}
		})
	}
}

func TestSplitDocumentsLines(t *testing.T) {
	docs := SplitDocuments([]byte("a: 1\n---\nb: 2\nc: 3\n--- # x\nd: 4"))
	var lines []int
	for _, d := range docs {
		lines = append(lines, d.Line)
	}
	if fmt.Sprint(lines) != "[1 3 6]" {
		t.Errorf("document lines = %v, want [1 3 6]", lines)
	}
}

// The operator's placeholder namespace moves; a set merged from another
// keeps the other's subjects.
func TestRewriteNamespace(t *testing.T) {
	orig := &Set{
		Roles:               []rbacv1.Role{{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "dpf-provisioning"}}},
		RoleBindings:        []rbacv1.RoleBinding{{ObjectMeta: metav1.ObjectMeta{Name: "rb", Namespace: "other"}, Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "sa", Namespace: "dpf-provisioning"}}}},
		ClusterRoleBindings: []rbacv1.ClusterRoleBinding{{Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "sa", Namespace: "dpf-provisioning"}}}},
	}
	s := &Set{}
	s.Merge(orig)
	s.RewriteNamespace("dpf-provisioning", "dpf-operator-system")
	if s.Roles[0].Namespace != "dpf-operator-system" || s.RoleBindings[0].Namespace != "other" ||
		s.RoleBindings[0].Subjects[0].Namespace != "dpf-operator-system" || s.ClusterRoleBindings[0].Subjects[0].Namespace != "dpf-operator-system" {
		t.Errorf("rewritten: %+v", s)
	}
	if orig.RoleBindings[0].Subjects[0].Namespace != "dpf-provisioning" || orig.ClusterRoleBindings[0].Subjects[0].Namespace != "dpf-provisioning" {
		t.Errorf("the merged set's subjects changed: %+v", orig)
	}
}
