package apply_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/dpfdoctor/dpfdoctor/internal/apply"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
)

// FuzzLoadBackup feeds arbitrary manifest, plan and receipt files to the
// backup loader rollback trusts: it must refuse or load, never panic.
func FuzzLoadBackup(f *testing.F) {
	// A real backup of an empty plan as the seed.
	seed := f.TempDir()
	b := apply.NewBackup(seed, &plan.Plan{Namespace: "dpf-operator-system", ServiceAccount: "sa"}, "https://127.0.0.1:6443", nil)
	if err := b.Ensure(); err != nil {
		f.Fatal(err)
	}
	read := func(name string) []byte {
		data, _ := os.ReadFile(filepath.Join(b.Dir, name))
		return data
	}
	f.Add(read(apply.ManifestFile), read(apply.PlanFile), read(apply.ReceiptFile))
	f.Add([]byte(`{"schemaVersion":"x"}`), []byte("changes: [{object: {kind: Role}}]"), []byte("{}"))
	f.Add([]byte(`{`), []byte(":"), []byte(nil))
	f.Fuzz(func(t *testing.T, manifest, planYAML, receipt []byte) {
		dir := t.TempDir()
		for name, data := range map[string][]byte{apply.ManifestFile: manifest, apply.PlanFile: planYAML, apply.ReceiptFile: receipt} {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		_, _ = apply.Load(dir)
	})
}
