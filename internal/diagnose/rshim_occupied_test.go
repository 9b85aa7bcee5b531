package diagnose

import "testing"

func TestRshimOccupied(t *testing.T) {
	for _, tc := range []struct {
		file string
		want *want
	}{
		{"rshim_occupied/pci-in-use.yaml", &want{
			code: CodeRshimOccupied, pods: []string{"w1-dms"},
			evidence: []string{"0000:3b:00.0"},
			next:     "sudo systemctl stop rshim",
		}},
		{"rshim_occupied/near-miss-other-message.yaml", nil},
		{"no_dpu_found/no-dpu.yaml", nil},
	} {
		t.Run(tc.file, func(t *testing.T) { expect(t, of(ClassRshimOccupied), tc.file, tc.want) })
	}
}
