package plan

import (
	"fmt"
	"sort"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
)

// AffectedPod is a pod the plan's changes should bring back.
type AffectedPod struct {
	Name string
	Node string
	// Ready pods need nothing; Deleting pods are already on their way out.
	Ready, Deleting bool
}

// Restart modes (fix --restart).
const (
	RestartAuto   = "auto"   // delete or none, by version and fleet size
	RestartDelete = "delete" // delete where the operator re-creates the pod
	RestartNone   = "none"   // write only the grant; the back-off retries pick it up
)

// AutoDeleteMax is the most pods auto deletes on DPF v25.4.0: each costs a
// DELETE and a Node PATCH, and waiting costs at most one back-off cap.
const AutoDeleteMax = 1000

// chooseRestart resolves mode for n affected pods and says why.
func chooseRestart(mode string, release dpf.Release, known bool, n int) (string, string) {
	switch {
	case mode != RestartAuto:
		return mode, "--restart=" + mode
	case !known:
		return RestartNone, "auto: the DPF version is unknown, so a deleted pod might not come back"
	case !release.RecreatesDeletedPod && n > AutoDeleteMax:
		return RestartNone, fmt.Sprintf("auto: %d pods on DPF %s would cost %d deletes and Node patches; "+
			"each pod retries "+dpf.RetryWithin+" anyway", n, release.Version, 2*n)
	}
	return RestartDelete, fmt.Sprintf("auto: DPF %s, %d pods: deleting costs at most two requests a pod and skips the back-off", release.Version, n)
}

// waitNone is why a pod waits under --restart=none.
const waitNone = "--restart=none: dpfdoctor writes only the grant; the pod picks it up at the kubelet's next back-off retry, " + dpf.RetryWithin

// RestartActions decides, per affected pod, how it gets back to running
// without the crash-loop back-off, for the DPF release the cluster runs
// (docs/versions.md):
//   - releases that re-create a deleted DMS pod (v25.7 on): delete it;
//   - v25.4.0: the NodeReconciler re-creates a pod only on a Node event and
//     only while the node has no DPUNode. Without a DPUNode: delete the pod,
//     then annotate the Node. With one: do not delete (the pod would never
//     come back); wait for the kubelet's next back-off retry;
//   - an unknown release, or mode RestartNone: wait.
//
// dpuNodes holds the names of the DPUNodes that exist. The result is sorted
// by pod name.
func RestartActions(mode string, release dpf.Release, known bool, pods []AffectedPod, dpuNodes map[string]bool) []PodAction {
	var out []PodAction
	for _, p := range pods {
		if p.Ready || p.Deleting {
			continue
		}
		a := PodAction{Pod: p.Name, Node: p.Node}
		switch {
		case !known:
			a.Action = ActionWait
			a.Reason = "DPF version unknown: a deleted pod might not be re-created, so dpfdoctor waits for the kubelet's next back-off retry"
		case mode == RestartNone:
			a.Action, a.Reason = ActionWait, waitNone
		case release.RecreatesDeletedPod:
			a.Action = ActionDelete
			a.Reason = fmt.Sprintf("DPF %s re-creates a deleted DMS pod at once; the new pod skips the back-off", release.Version)
		case p.Node != "" && !dpuNodes[p.Node]:
			a.Action, a.TouchNode = ActionDelete, true
			a.Reason = fmt.Sprintf("DPF %s re-creates a deleted DMS pod only on a Node event, and only while the node has no DPUNode: "+
				"dpfdoctor deletes the pod before the grant and annotates the Node (%s) after it", release.Version, RestartedAtAnnotation)
		default:
			a.Action = ActionWait
			a.Reason = fmt.Sprintf("the node's DPUNode exists, so DPF %s would never re-create a deleted pod: dpfdoctor leaves it; "+
				"it recovers at the kubelet's next back-off retry, "+dpf.RetryWithin, release.Version)
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pod < out[j].Pod })
	return out
}

// GrantedPodActions decides, per pod that failed on RBAC granted since its
// last run (diagnose's DPF-RBAC-002), as RestartActions does, except on
// v25.4.0: with the grant already in place the pod's own retry may run
// dms-init to the end, which creates the DPUNode, while its delete is under
// way, and v25.4.0 never re-creates a pod whose DPUNode exists; so there
// the pod is left to that retry.
func GrantedPodActions(mode string, release dpf.Release, known bool, pods []AffectedPod) []PodAction {
	out := RestartActions(mode, release, known, pods, nil)
	for i := range out {
		if known && !release.RecreatesDeletedPod && out[i].Action == ActionDelete {
			out[i].Action, out[i].TouchNode = ActionWait, false
			out[i].Reason = fmt.Sprintf("the grant is in place already: on DPF %s a delete now could race the pod's own retry, whose dms-init "+
				"may create the DPUNode first, and the pod would not come back; it recovers at that retry, "+dpf.RetryWithin, release.Version)
		}
	}
	return out
}

// MissingPodActions decides, per DPU node without its DMS pod (diagnose's
// PodMissing), how the pod comes back: on a release that re-creates
// deleted pods by itself, wait for the operator; on v25.4.0, whose
// NodeReconciler re-creates a pod only on a Node event while the node has
// no DPUNode, annotate the Node (after any grant). The result is sorted by
// pod name.
func MissingPodActions(mode string, release dpf.Release, nodes []string) []PodAction {
	var out []PodAction
	for _, n := range nodes {
		a := PodAction{Pod: dpf.PodName(n), Node: n, Action: ActionRecreate, TouchNode: true,
			Reason: fmt.Sprintf("the pod is gone and DPF %s re-creates it only on a Node event while the node has no DPUNode "+
				"(the kubelet's status report, every ~5 minutes, is one): dpfdoctor annotates the Node (%s) after any grant", release.Version, RestartedAtAnnotation)}
		if mode == RestartNone && !release.RecreatesDeletedPod {
			a.Action, a.TouchNode = ActionWait, false
			a.Reason = "--restart=none: the pod is gone and comes back at the kubelet's next Node status report (about every 5 minutes)"
		}
		if release.RecreatesDeletedPod {
			a.Action, a.TouchNode = ActionWait, false
			a.Reason = fmt.Sprintf("the pod is gone and DPF %s re-creates it by itself: at once on the delete, at the latest at the operator's next resync "+
				"(10 minutes by default); dpfdoctor writes nothing and watches for it", release.Version)
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pod < out[j].Pod })
	return out
}
