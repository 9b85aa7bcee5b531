package diagnose

import (
	"fmt"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
)

// rshimOccupied reports rshim-preflight exiting 1 with a PCI address as its
// termination message: the host's own rshim service holds the DPU, so DMS
// cannot use it.
func rshimOccupied(v *view) []Finding {
	b := v.b
	f := Finding{Class: ClassRshimOccupied, Code: CodeRshimOccupied, Severity: SeverityError}
	// Deleting a pod brings it back at once when the release re-creates
	// deleted pods, or while its node has no DPUNode.
	rel, known := release(b.Install.Version)
	recreate := true
	for _, p := range v.failing() {
		c, ok := p.Init(dpf.ContainerRshimPreflight)
		if !ok {
			continue
		}
		t, ok := c.LastTermination()
		if !ok || t.ExitCode != 1 || !evidence.IsPCIAddress(t.Message) {
			continue
		}
		msg := strings.TrimSpace(t.Message)
		f.Evidence = appendLimited(f.Evidence, Evidence{Kind: EvidenceObject, Source: fmt.Sprintf("pod %s %s termination message (exit 1)", p.Name, c.Name), Text: msg}, maxQuoted)
		f.addPod(p.Name, "the host's rshim holds the DPU at "+msg)
		recreate = recreate && (known && rel.RecreatesDeletedPod || !v.dpuNode[p.Node])
	}
	if len(f.Pods) == 0 {
		return nil
	}
	f.Summary = fmt.Sprintf("rshim-preflight found the DPU's rshim in use by the host on %s", plural(len(f.Pods), "node", "nodes"))
	step := "on each node, stop and disable the host's rshim service: `sudo systemctl stop rshim && sudo systemctl disable rshim`; " +
		"rshim-preflight then passes at its next restart, " + dpf.RetryWithin
	if recreate {
		step += fmt.Sprintf("; to retry at once: kubectl delete pod %s -n %s (the operator re-creates it)", f.Pods[0], b.Install.Namespace)
	} else {
		step += "; do not delete the pod: on this DPF version it is not re-created while the node's DPUNode exists"
	}
	f.NextStep = step
	return []Finding{f}
}
