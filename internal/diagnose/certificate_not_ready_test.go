package diagnose

import "testing"

func TestCertificateNotReady(t *testing.T) {
	for _, tc := range []struct {
		file string
		want *want
	}{
		{"certificate_not_ready/failed-mount.yaml", &want{
			code: CodeCertificateNotReady, pods: []string{"w1-dms"},
			evidence: []string{
				`secret "w1-server-secret" not found`,
				"Secret dpf-operator-system/w1-server-secret",
				"Ready=False DoesNotExist",
			},
			next: "kubectl describe certificate w1-dms-server-cert -n dpf-operator-system",
		}},
		// Secrets cannot be listed: the FailedMount event alone shows it.
		{"certificate_not_ready/issuer-not-ready.yaml", &want{
			code: CodeCertificateNotReady, pods: []string{"w1-dms"},
			evidence: []string{"FailedMount", "ErrGetKeyPair"},
			next:     "the Issuer dpf-provisioning-issuer is not Ready",
		}},
		{"certificate_not_ready/near-miss-pvc-mount.yaml", nil},
		{"healthy/ready.yaml", nil},
	} {
		t.Run(tc.file, func(t *testing.T) { expect(t, of(ClassCertificateNotReady), tc.file, tc.want) })
	}
}
