package diagnose

import (
	"fmt"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
)

// hostAgentNoDPU is the v25.10 host agent's message when it finds no DPU, as
// internal/sim models it.
const hostAgentNoDPU = "no DPU found on this host"

// noDPUFound reports dms-init finding no BlueField in sysfs ("No DPUs found
// on this system"): the node is labelled as carrying a DPU but shows none.
func noDPUFound(v *view) []Finding {
	f := Finding{Class: ClassNoDPUFound, Code: CodeNoDPUFound, Severity: SeverityError}
	for _, p := range v.failing() {
		l, ok := find(v.log(p.Name), dpf.MsgNoDPUs, hostAgentNoDPU)
		if !ok {
			continue
		}
		f.Evidence = appendLimited(f.Evidence, logEvidence(l), maxQuoted)
		f.addPod(p.Name, "no BlueField (PCI 15b3:a2dc / 15b3:a2d6) visible on the host")
	}
	if len(f.Pods) == 0 {
		return nil
	}
	f.Summary = fmt.Sprintf("dms-init found no DPU on %s labelled %s", plural(len(f.Pods), "node", "nodes"), dpf.DPUNodeLabel)
	f.NextStep = fmt.Sprintf("on each node, check the PCI devices: `lspci -nn -d 15b3:a2dc` (BlueField-3) and `lspci -nn -d 15b3:a2d6` (BlueField-2); "+
		"if the DPU is there, check its firmware/mode and that /sys/bus/pci is visible to the pod; if the host has no DPU, remove the label: "+
		"kubectl label node %s %s-", v.pods[f.Pods[0]].Node, dpf.DPUNodeLabel)
	return []Finding{f}
}
