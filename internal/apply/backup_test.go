package apply

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/dpfdoctor/dpfdoctor/internal/plan"
)

// newTestBackup writes a backup of a plan without changes that set one
// Node annotation.
func newTestBackup(t *testing.T, root string) string {
	t.Helper()
	p := &plan.Plan{SchemaVersion: plan.SchemaVersion, ID: "test", Namespace: "ns", ServiceAccount: "sa"}
	b := NewBackup(root, p, "https://example:6443", func() time.Time { return time.Unix(1700000000, 0) })
	if err := b.record(plan.AnnotationChange{Ref: plan.ObjectRef{Kind: "Node", Name: "w1"}, Key: plan.RestartedAtAnnotation, Value: "v"}); err != nil {
		t.Fatal(err)
	}
	return b.Dir
}

func TestBackupLayoutAndLatest(t *testing.T) {
	root := t.TempDir()
	first := newTestBackup(t, root)
	second := newTestBackup(t, root) // same second: a suffixed name
	if first == second || filepath.Base(first) != "20231114T221320Z" {
		t.Fatalf("dirs %s, %s", first, second)
	}
	if info, _ := os.Stat(first); info.Mode().Perm() != 0o700 {
		t.Errorf("backup dir mode %v", info.Mode().Perm())
	}
	for _, f := range []string{ManifestFile, PlanFile, ReceiptFile} {
		info, err := os.Stat(filepath.Join(first, f))
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, err, info)
		}
	}
	if l, err := Load(first); err != nil || len(l.Receipt.Annotations) != 1 || l.Plan.ID != "test" {
		t.Fatalf("Load: %+v %v", l, err)
	}
	if latest, err := Latest(root); err != nil || latest != second {
		t.Fatalf("Latest = %s, %v; want %s", latest, err, second)
	}
	if _, err := Latest(t.TempDir()); !errors.Is(err, ErrBadBackup) {
		t.Fatalf("Latest of an empty root: %v", err)
	}
}

func TestLoadRefusesForeignContent(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(m *Manifest, r *Receipt)
	}{
		{"an operator object", func(m *Manifest, _ *Receipt) {
			m.Objects = append(m.Objects, Entry{Ref: plan.ObjectRef{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "dpf-provisioning-dms-role"}})
		}},
		{"a path out of the backup", func(m *Manifest, _ *Receipt) {
			m.Objects = append(m.Objects, Entry{Ref: plan.ObjectRef{Group: "rbac.authorization.k8s.io", Kind: "Role", Namespace: "ns", Name: "dpfdoctor-x"},
				Existed: true, File: "../../etc/passwd"})
		}},
		{"a foreign annotation", func(_ *Manifest, r *Receipt) { r.Annotations[0].Key = "kubernetes.io/hostname" }},
		{"an annotation on another kind", func(_ *Manifest, r *Receipt) { r.Annotations[0].Ref.Kind = "Secret" }},
		{"another schema", func(m *Manifest, _ *Receipt) { m.SchemaVersion = "v0" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := newTestBackup(t, t.TempDir())
			var m Manifest
			var r Receipt
			readJSON(t, filepath.Join(dir, ManifestFile), &m)
			readJSON(t, filepath.Join(dir, ReceiptFile), &r)
			tc.mutate(&m, &r)
			writeJSON(t, filepath.Join(dir, ManifestFile), m)
			writeJSON(t, filepath.Join(dir, ReceiptFile), r)
			if _, err := Load(dir); !errors.Is(err, ErrBadBackup) {
				t.Fatalf("Load: %v, want ErrBadBackup", err)
			}
		})
	}
}

func readJSON(t *testing.T, file string, v any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}

func writeJSON(t *testing.T, file string, v any) {
	t.Helper()
	data, _ := json.Marshal(v)
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Backups made within one second sort by their counter, not as text.
func TestCompareBackupNames(t *testing.T) {
	names := []string{"20261203T145237Z-10", "20261203T145238Z", "20261203T145237Z-2", "20261203T145237Z", "20261203T145237Z-1"}
	slices.SortFunc(names, compareBackupNames)
	want := []string{"20261203T145237Z", "20261203T145237Z-1", "20261203T145237Z-2", "20261203T145237Z-10", "20261203T145238Z"}
	if !slices.Equal(names, want) {
		t.Errorf("sorted %v, want %v", names, want)
	}
}
