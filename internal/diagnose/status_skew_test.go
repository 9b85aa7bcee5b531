package diagnose

import (
	"slices"
	"testing"

	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
)

func TestStatusSubresourceSkew(t *testing.T) {
	const ns = " in dpf-operator-system"
	status := []string{"get dpudevices.provisioning.dpu.nvidia.com/status" + ns, "patch dpudevices.provisioning.dpu.nvidia.com/status" + ns}
	for _, tc := range []struct {
		file string
		want *want
	}{
		{"status_skew/fixable.yaml", &want{
			code: CodeStatusSkewFixable, pods: []string{"w1-dms"}, fixable: true, missing: status,
			evidence: []string{"Failed to update PCI address for DPUDevice", "pods run hostdriver v25.7.0; the operator is v25.4.0"},
			next:     "get and patch on dpudevices/status",
		}},
		{"status_skew/sar-only.yaml", &want{
			code: CodeStatusSkewFixable, pods: []string{"w1-dms"}, fixable: true, missing: status,
			evidence: []string{"may not patch dpudevices.provisioning.dpu.nvidia.com/status"},
		}},
		// The collector does not ask about the patch while kubectl's read
		// before it is denied: both are still missing, and the evidence
		// says which was asked.
		{"status_skew/sar-not-reached.yaml", &want{
			code: CodeStatusSkewFixable, pods: []string{"w1-dms"}, fixable: true, missing: status,
			evidence: []string{"may not get dpudevices.provisioning.dpu.nvidia.com/status", "needs patch dpudevices.provisioning.dpu.nvidia.com/status in dpf-operator-system: not asked"},
		}},
		{"status_skew/crd-without-status.yaml", &want{
			code: CodeStatusSkewCRD, pods: []string{"w1-dms"}, fixable: false,
			evidence: []string{"could not find the requested resource"},
			summary:  "no RBAC change can fix it",
			next:     "align versions",
		}},
		{"status_skew/near-miss-dpunode-forbidden.yaml", nil},
		{"rbac_forbidden/hypothetical-secrets-forbidden-quiet.yaml", nil},
	} {
		t.Run(tc.file, func(t *testing.T) { expect(t, of(ClassStatusSubresourceSkew), tc.file, tc.want) })
	}
}

// The quiet Secret case also needs the status patch later: the skew
// classifier must not claim it, but RBACForbidden lists it.
func TestQuietSecretIsNotSkew(t *testing.T) {
	b := load(t, "rbac_forbidden/hypothetical-secrets-forbidden-quiet.yaml")
	if fs := of(ClassStatusSubresourceSkew).Classify(b); len(fs) != 0 {
		t.Fatalf("skew fired on the quiet Secret case: %+v", fs)
	}
}

// A Forbidden from an earlier run for a call allowed now does not hide the
// status patch that is still refused: the skew, not a pod waiting for its
// retry (DPF-RBAC-002).
func TestStatusSkewBehindAStaleForbidden(t *testing.T) {
	b := load(t, "status_skew/sar-only.yaml")
	b.Logs = append(b.Logs, evidence.Log{Pod: "w1-dms", Container: "dms-init", Instance: "current", Text: "[dmsinit] Creating DPUDevice\n" +
		`Error from server (Forbidden): dpudevices.provisioning.dpu.nvidia.com is forbidden: User "system:serviceaccount:dpf-operator-system:dpf-provisioning-dms-service-account" cannot create resource "dpudevices" in API group "provisioning.dpu.nvidia.com" in the namespace "dpf-operator-system"` + "\n"})
	b.LogGroups[0].Fetched = []string{"w1-dms"}
	b.Gaps = nil
	var codes []string
	for _, f := range Diagnose(b).Findings {
		codes = append(codes, f.Code)
	}
	if !slices.Contains(codes, CodeStatusSkewFixable) || slices.Contains(codes, CodeRBACGranted) {
		t.Errorf("findings %v, want %s and no %s", codes, CodeStatusSkewFixable, CodeRBACGranted)
	}
}
