package cli

import (
	"fmt"
	"io"

	"github.com/dpfdoctor/dpfdoctor/internal/diagnose"
)

// printNodeCount prints the DPU nodes next to the DMS pods, so "8 DPU
// nodes, 1 DMS pod" is visible at a glance; nothing when no Node was
// listed.
func printNodeCount(w io.Writer, s diagnose.Summary) {
	if s.DPUNodes == 0 {
		return
	}
	count := func(n int, one string) string {
		if n == 1 {
			return fmt.Sprintf("%d %s", n, one)
		}
		return fmt.Sprintf("%d %ss", n, one)
	}
	line := count(s.DPUNodes, "DPU node") + ", " + count(s.Pods, "DMS pod")
	if s.NodesWithoutPod > 0 {
		line += fmt.Sprintf("; %s without a DMS pod or DPUNode (%s)", count(s.NodesWithoutPod, "node"), diagnose.ClassPodMissing)
	}
	fmt.Fprintln(w, line)
}
