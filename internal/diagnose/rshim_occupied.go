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
	f := Finding{Class: ClassRshimOccupied, Code: CodeRshimOccupied, Severity: SeverityError}
	var pods []evidence.Pod
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
		pods = append(pods, p)
	}
	if len(f.Pods) == 0 {
		return nil
	}
	f.Summary = fmt.Sprintf("rshim-preflight found the DPU's rshim in use by the host on %s", plural(len(f.Pods), "node", "nodes"))
	step := "on each node, stop and disable the host's rshim service: `sudo systemctl stop rshim && sudo systemctl disable rshim`; " +
		"rshim-preflight then passes at its next restart, " + dpf.RetryWithin
	f.NextStep = step + v.retryAtOnce(CodeRshimOccupied, pods)
	return []Finding{f}
}
