package diagnose

import "testing"

func TestUnknown(t *testing.T) {
	expect(t, unknown{}, "unknown/serial-number.yaml", &want{
		code: CodeUnknown, pods: []string{"w1-dms"},
		evidence: []string{"last exit 2 (Error)", "lspci: command not found", "Failed to get serial number"},
		summary:  "dms-init exits 2",
		next:     "--bundle",
	})
	expect(t, unknown{}, "unknown/near-miss-known.yaml", nil)
	// rshim-preflight failing without a PCI address is not RshimOccupied.
	expect(t, unknown{}, "rshim_occupied/near-miss-other-message.yaml", &want{
		code: CodeUnknown, pods: []string{"w1-dms"}, summary: "rshim-preflight exits 1",
		evidence: []string{"termination message: rshim: cannot open /dev/rshim0"},
	})
}
