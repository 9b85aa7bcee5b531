package dpf

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// PodState renders a pod's state the way `kubectl get pods` shows it in the
// STATUS column: "Running", "Init:CrashLoopBackOff", "Init:0/3",
// "PodInitializing", "Terminating", …
func PodState(p *corev1.Pod) string {
	if p.DeletionTimestamp != nil {
		return "Terminating"
	}
	reason := string(p.Status.Phase)
	if p.Status.Reason != "" {
		reason = p.Status.Reason
	}
	initializing := false
	for i, c := range p.Status.InitContainerStatuses {
		switch {
		case c.State.Terminated != nil && c.State.Terminated.ExitCode == 0:
			continue
		case c.State.Terminated != nil:
			if c.State.Terminated.Reason != "" {
				reason = "Init:" + c.State.Terminated.Reason
			} else {
				reason = fmt.Sprintf("Init:ExitCode:%d", c.State.Terminated.ExitCode)
			}
		case c.State.Waiting != nil && c.State.Waiting.Reason != "" && c.State.Waiting.Reason != "PodInitializing":
			reason = "Init:" + c.State.Waiting.Reason
		default:
			reason = fmt.Sprintf("Init:%d/%d", i, len(p.Spec.InitContainers))
		}
		initializing = true
		break
	}
	if !initializing {
		for _, c := range p.Status.ContainerStatuses {
			if c.State.Waiting != nil && c.State.Waiting.Reason != "" {
				reason = c.State.Waiting.Reason
			} else if c.State.Terminated != nil && c.State.Terminated.Reason != "" {
				reason = c.State.Terminated.Reason
			}
		}
	}
	if reason == "" {
		reason = "Pending"
	}
	return reason
}

// PodReady reports the pod's Ready condition.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// KindDPU is the provisioning kind that owns v25.1's per-DPU DMS pods.
const KindDPU = "DPU"

// IsPerDPUPod reports whether p is a v25.1 DMS pod: named "<dpu>-dms" and
// controlled by a DPU (provisioning.dpu.nvidia.com). Those pods carry no
// component label.
func IsPerDPUPod(p *corev1.Pod) bool {
	if _, ok := NodeFromPodName(p.Name); !ok {
		return false
	}
	for _, ref := range p.OwnerReferences {
		if ref.Controller != nil && *ref.Controller && ref.Kind == KindDPU && strings.HasPrefix(ref.APIVersion, GroupProvisioning+"/") {
			return true
		}
	}
	return false
}
