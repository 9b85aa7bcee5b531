package diagnose

import (
	"cmp"
	"fmt"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
)

// tailLines is how many log lines an Unknown finding quotes.
const tailLines = 10

// unknown reports failing pods no other classifier explains, with the raw
// evidence: the blocking container's state, exit code, reason and
// termination message, and the last log lines.
func unknown(v *view) []Finding {
	var others []Finding
	for _, c := range All() {
		switch c.Class() {
		case ClassUnknown, ClassHealthy, ClassOperatorPaused:
			continue
		}
		others = append(others, c.(classifier).classify(v)...)
	}
	return unclaimed(v, others)
}

// unclaimed reports the failing pods no finding names.
func unclaimed(v *view, findings []Finding) []Finding {
	b := v.b
	claimed := map[string]bool{}
	for _, f := range findings {
		for _, p := range f.Pods {
			claimed[p] = true
		}
	}
	bySig := map[string]*Finding{}
	var order []string
	for _, p := range v.failing() {
		if claimed[p.Name] {
			continue
		}
		sig := p.Signature()
		f, ok := bySig[sig]
		if !ok {
			f = &Finding{Class: ClassUnknown, Code: CodeUnknown, Severity: SeverityError}
			bySig[sig] = f
			order = append(order, sig)
			f.Evidence = rawEvidence(v, p)
			f.Summary = unknownSummary(v, p)
		}
		f.addPod(p.Name, unknownSummary(v, p))
	}
	var out []Finding
	for _, sig := range order {
		f := bySig[sig]
		f.Summary = fmt.Sprintf("%s: %s", plural(len(f.Pods), "pod", "pods"), f.Summary)
		first := f.Pods[0]
		f.NextStep = fmt.Sprintf("dpfdoctor does not recognise this failure; read the evidence above, then `kubectl describe pod %s -n %s` and "+
			"`kubectl logs %s -n %s --all-containers --previous`; for a support case, attach `dpfdoctor diagnose --bundle support.tar.gz`",
			first, b.Install.Namespace, first, b.Install.Namespace)
		out = append(out, *f)
	}
	return out
}

func unknownSummary(_ *view, p evidence.Pod) string {
	c, ok := p.Blocking()
	if !ok {
		return "not Ready, no container is blocking"
	}
	if t, ok := c.LastTermination(); ok {
		return fmt.Sprintf("%s exits %d (%s) with no known failure signature", c.Name, t.ExitCode, cmp.Or(t.Reason, "unknown"))
	}
	if c.State.Kind == evidence.StateRunning && p.Restarts() == 0 {
		return fmt.Sprintf("not Ready yet: %s is running and has not failed (still starting?)", c.Name)
	}
	return fmt.Sprintf("%s is %s with no known failure signature", c.Name, cmp.Or(c.State.Reason, c.State.Kind, "unknown"))
}

// rawEvidence quotes what is known about a pod dpfdoctor cannot classify.
func rawEvidence(v *view, p evidence.Pod) []Evidence {
	var ev []Evidence
	if c, ok := p.Blocking(); ok {
		state := fmt.Sprintf("state %s", cmp.Or(c.State.Kind, "unknown"))
		if c.State.Reason != "" {
			state += " (" + c.State.Reason + ")"
		}
		if t, ok := c.LastTermination(); ok {
			state += fmt.Sprintf("; last exit %d (%s)", t.ExitCode, cmp.Or(t.Reason, "unknown"))
			if m := strings.TrimSpace(t.Message); m != "" {
				state += "; termination message: " + shorten(m, 300)
			}
		}
		state += fmt.Sprintf("; restarts %d", c.RestartCount)
		ev = append(ev, Evidence{Kind: EvidenceObject, Source: fmt.Sprintf("pod %s container %s", p.Name, c.Name), Text: state})
	}
	for _, e := range v.events[p.Name] {
		if e.Type == "Warning" {
			ev = appendLimited(ev, Evidence{Kind: EvidenceEvent, Source: "pod " + p.Name + " event " + e.Reason, Text: e.Message}, maxQuoted)
		}
	}
	lines := v.log(p.Name)
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	for _, l := range lines {
		ev = append(ev, logEvidence(l))
	}
	if len(lines) == 0 {
		if why := v.logNotRead(p); why != "" {
			if !v.b.HasGap("pods/log") {
				why += ": run with --node " + p.Node
			}
			ev = append(ev, Evidence{Kind: EvidenceConfig, Source: "dpfdoctor", Text: why})
		}
	}
	return ev
}
