package diagnose

import "testing"

func TestAPIServerUnreachable(t *testing.T) {
	for _, tc := range []struct {
		file string
		want *want
	}{
		{"apiserver_unreachable/refused.yaml", &want{
			code: CodeAPIServerUnreachable, pods: []string{"w1-dms", "w2-dms"},
			evidence: []string{
				"Failed to check kubectl version: The connection to the server 127.0.10.99:6443 was refused",
				"kubernetesAPIServerVIP: 127.0.10.10, kubernetesAPIServerPort: 6443",
				"KUBERNETES_SERVICE_HOST=127.0.10.10, KUBERNETES_SERVICE_PORT=6443",
			},
			next: `kubectl patch dpfoperatorconfig dpfoperatorconfig -n dpf-operator-system --type merge -p '{"spec":{"overrides":{"kubernetesAPIServerVIP":"<reachable address>","kubernetesAPIServerPort":6443}}}'`,
		}},
		{"apiserver_unreachable/near-miss-other-error.yaml", nil},
		{"rbac_forbidden/hypothetical-secrets-forbidden.yaml", nil},
	} {
		t.Run(tc.file, func(t *testing.T) { expect(t, of(ClassAPIServerUnreachable), tc.file, tc.want) })
	}
}

// The v25.10 host agent logs its failures in klog form.
func TestHostAgent(t *testing.T) {
	expect(t, of(ClassAPIServerUnreachable), "apiserver_unreachable/hostagent.yaml", &want{
		code: CodeAPIServerUnreachable, pods: []string{"h1-dms"},
		evidence: []string{"unable to reach the Kubernetes API server", "pod h1-dms hostagent env"},
	})
	expect(t, of(ClassNoDPUFound), "apiserver_unreachable/hostagent.yaml", &want{
		code: CodeNoDPUFound, pods: []string{"h2-dms"}, evidence: []string{"no DPU found on this host"},
	})
}
