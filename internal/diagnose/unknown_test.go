package diagnose

import "testing"

func TestUnknown(t *testing.T) {
	expect(t, of(ClassUnknown), "unknown/serial-number.yaml", &want{
		code: CodeUnknown, pods: []string{"w1-dms"},
		evidence: []string{"last exit 2 (Error)", "lspci: command not found", "Failed to get serial number"},
		summary:  "dms-init exits 2",
		next:     "--bundle",
	})
	expect(t, of(ClassUnknown), "unknown/near-miss-known.yaml", nil)
	// rshim-preflight failing without a PCI address is not RshimOccupied.
	expect(t, of(ClassUnknown), "rshim_occupied/near-miss-other-message.yaml", &want{
		code: CodeUnknown, pods: []string{"w1-dms"}, summary: "rshim-preflight exits 1",
		evidence: []string{"termination message: rshim: cannot open /dev/rshim0"},
	})
}

// Pods whose logs were not read share their group's class only when the
// pods read for the group agree.
func TestGroupInference(t *testing.T) {
	expect(t, of(ClassUnknown), "unknown/group-disagrees.yaml", &want{
		code: CodeUnknown, pods: []string{"w2-dms"}, evidence: []string{"fail differently: run with --node w2"},
	})
	d := Diagnose(load(t, "unknown/group-disagrees.yaml"))
	for _, p := range d.Pods {
		if p.LogsFrom != "" {
			t.Errorf("%s inferred from %s", p.Name, p.LogsFrom)
		}
	}
	d = Diagnose(load(t, "apiserver_unreachable/refused.yaml"))
	if d.Pods[1].Name != "w2-dms" || d.Pods[1].LogsFrom != "w1-dms" || d.Pods[1].Class != ClassAPIServerUnreachable {
		t.Errorf("w2 not inferred from w1: %+v", d.Pods[1])
	}
}
