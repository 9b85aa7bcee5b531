package diagnose

import (
	"fmt"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
)

// podMissing reports a Node labelled as carrying a DPU that has neither a
// DMS (or host agent) pod nor a DPUNode: the pod was deleted, typically by
// the widely shared script that deletes every non-Running DMS pod, and
// whether it comes back depends on the release (dpf.Release
// RecreatesDeletedPod): v25.4.0's NodeReconciler re-creates it only on a
// Node event while no DPUNode exists (a kubelet status report, every
// ~5 min, is one); later releases re-create it on their own. v25.1 runs
// pods per DPU, which this class does not cover. The finding names nodes,
// not pods: the pod does not exist.
func podMissing(v *view) []Finding {
	b := v.b
	rel, known := release(b.Install.Version)
	if known && rel.PodPerDPU {
		return nil
	}
	var out []Finding
	if known && !rel.RecreatesDeletedPod {
		out = podStranded(v, rel)
	}
	nodes := b.NodesWithoutPod()
	if len(nodes) == 0 {
		return out
	}
	f := Finding{Class: ClassPodMissing, Code: CodePodMissing, Severity: SeverityError, Nodes: nodes, Fixable: known}
	for _, n := range nodes {
		f.Evidence = appendLimited(f.Evidence, Evidence{Kind: EvidenceObject, Source: "Node " + n,
			Text: fmt.Sprintf("labelled %s; no pod %s/%s on it and no DPUNode %s/%s",
				dpf.DPUNodeLabel, b.Install.Namespace, dpf.PodName(n), b.Install.Namespace, n)}, maxQuoted)
	}
	f.Summary = fmt.Sprintf("%s labelled %s %s no DMS pod and no DPUNode: nothing provisions %s DPU",
		plural(len(nodes), "node", "nodes"), dpf.DPUNodeLabel, choose(len(nodes), "has", "have"), choose(len(nodes), "its", "their"))
	rule := "DPF version unknown: whether the operator re-creates a deleted DMS pod by itself is not known"
	switch {
	case !known:
		f.NextStep = "find the DPF version (`dpfdoctor versions`); on v25.4.0 a Node event re-creates the pod, later releases re-create it by themselves"
	case rel.RecreatesDeletedPod:
		rule = fmt.Sprintf("DPF %s re-creates a deleted DMS pod by itself, at once on the delete and at the latest at the operator's next resync", rel.Version)
		f.NextStep = "wait for the operator to re-create the pods (`dpfdoctor fix` watches them come back and writes nothing); " +
			"if they do not, check that the operator is running and not paused"
	default:
		rule = fmt.Sprintf("DPF %s re-creates a deleted DMS pod only on a Node event while the node has no DPUNode; "+
			"the kubelet's status report (every ~5 min) is such an event", rel.Version)
		f.NextStep = fmt.Sprintf("run `dpfdoctor fix`: it annotates each Node (%s), which makes the operator re-create the pod now, "+
			"together with any grant the pods need; or wait for the kubelet's next status report", restartedAtAnnotation)
	}
	f.Evidence = append(f.Evidence, Evidence{Kind: EvidenceConfig, Source: "versions", Text: rule})
	// What the pod the operator will create is denied (its shape from
	// evidence.Bundle.ExpectedPod, one review per distinct call): granted
	// with the re-creation, so the new pods do not fail on it first.
	var missing []access.Request
	quoted := map[string]bool{}
	for _, n := range nodes {
		if ep, ok := b.ExpectedPod(n); ok {
			ds := v.denied(ep)
			for _, d := range ds {
				missing = append(missing, d.req)
			}
			f.Evidence = quoteDenied(f.Evidence, quoted, ds, n)
		}
	}
	if f.Missing = access.Unique(withStatusReads(missing)); len(f.Missing) > 0 && known {
		f.NextStep += fmt.Sprintf("; the pod the operator will create may not make %s, so `dpfdoctor fix` grants %s with it",
			plural(len(f.Missing), "call", "calls"), choose(len(f.Missing), "it", "them"))
	}
	return append(out, f)
}

// podStranded reports DPU nodes whose DMS pod is gone while their DPUNode
// exists, on a release that re-creates a deleted pod only while no DPUNode
// exists (v25.4.0): nothing brings that pod back, so DMS no longer runs
// on the host. Typically a pod deleted by hand or by a script after it had
// registered its node.
func podStranded(v *view, rel dpf.Release) []Finding {
	b := v.b
	nodes := b.NodesWithOnlyDPUNode()
	if len(nodes) == 0 {
		return nil
	}
	f := Finding{Class: ClassPodMissing, Code: CodePodStranded, Severity: SeverityError, Nodes: nodes}
	for _, n := range nodes {
		f.Evidence = appendLimited(f.Evidence, Evidence{Kind: EvidenceObject, Source: "Node " + n,
			Text: fmt.Sprintf("labelled %s; DPUNode %s/%s exists; no pod %s/%s", dpf.DPUNodeLabel, b.Install.Namespace, n, b.Install.Namespace, dpf.PodName(n))}, maxQuoted)
	}
	f.Evidence = append(f.Evidence, Evidence{Kind: EvidenceConfig, Source: "versions", Text: fmt.Sprintf(
		"DPF %s re-creates a deleted DMS pod only on a Node event while the node has no DPUNode; nothing re-creates it while the DPUNode exists", rel.Version)})
	f.Summary = fmt.Sprintf("%s %s a DPUNode but no DMS pod, and DPF %s does not re-create it: DMS no longer runs there",
		plural(len(nodes), "node", "nodes"), choose(len(nodes), "has", "have"), rel.Version)
	f.NextStep = "neither dpfdoctor nor the operator can bring the pod back on this release (so `dpfdoctor fix` never deletes a pod whose DPUNode exists); " +
		"upgrading DPF to v25.7 or later re-creates it: that operator re-creates a DMS pod that is missing while its DPUNode exists"
	return []Finding{f}
}

// restartedAtAnnotation is plan.RestartedAtAnnotation (diagnose does not
// import plan).
const restartedAtAnnotation = "dpfdoctor.dev/restarted-at"
