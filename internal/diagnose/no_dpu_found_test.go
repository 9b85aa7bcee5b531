package diagnose

import "testing"

func TestNoDPUFound(t *testing.T) {
	for _, tc := range []struct {
		file string
		want *want
	}{
		{"no_dpu_found/no-dpu.yaml", &want{
			code: CodeNoDPUFound, pods: []string{"w1-dms"},
			evidence: []string{"No DPUs found on this system"},
			next:     "kubectl label node w1 feature.node.kubernetes.io/dpu-enabled-",
		}},
		{"no_dpu_found/near-miss-dpu-found.yaml", nil},
	} {
		t.Run(tc.file, func(t *testing.T) { expect(t, of(ClassNoDPUFound), tc.file, tc.want) })
	}
}
