package diagnose

import (
	"strings"
	"testing"
)

// dms-init (script B, --external-certificate none) completed after
// Forbidden Secret reads and dms fails: EmptyCertificateFiles, not fixable
// by a grant, and never RBACForbidden. A dms-init that fails on the
// Secret is the near miss.
func TestEmptyCertificateFiles(t *testing.T) {
	const file = "empty_certificate_files/empty-files.yaml"
	expect(t, of(ClassEmptyCertificateFiles), file, &want{
		code: CodeEmptyCertificateFiles, pods: []string{"w1-dms", "w2-dms"},
		evidence: []string{"init container dms-init completed (exit 0); container dms exited 1 (Error)",
			`cannot get resource "secrets"`, "may not get secrets w1-server-secret"},
		summary: "left empty certificate files",
		next:    "not an RBAC fix",
	})
	expect(t, of(ClassRBACForbidden), file, nil)
	expect(t, of(ClassEmptyCertificateFiles), "rbac_forbidden/hypothetical-secrets-forbidden.yaml", nil)
	if d := Diagnose(load(t, file)); !strings.Contains(d.WidelySharedDiagnosis, "completed with empty certificate files") {
		t.Errorf("widely shared paragraph: %s", d.WidelySharedDiagnosis)
	}
}
