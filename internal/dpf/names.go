// Package dpf holds what dpfdoctor knows about NVIDIA DPF as data: names,
// labels, the operator's RBAC per release, the kubectl calls each dmsinit.sh
// variant makes and the log lines it prints. Everything here is taken from
// the DPF source (see docs/versions.md); nothing here talks to a cluster.
package dpf

import (
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	corev1 "k8s.io/api/core/v1"
)

const (
	// DefaultNamespace is where the operator, its DPFOperatorConfig and the
	// DMS pods live. DPF hard-codes it in several places (known issue
	// 4427091 in the DPF v25.4.0 release notes).
	DefaultNamespace = "dpf-operator-system"
	// PlaceholderNamespace is the namespace the operator's manifests name;
	// the operator rewrites it to the DPFOperatorConfig's namespace.
	PlaceholderNamespace = "dpf-provisioning"
	// OperatorConfigName is the default DPFOperatorConfig name.
	OperatorConfigName = "dpfoperatorconfig"

	// RetryWithin is how soon a crash-looping init container runs again:
	// the kubelet caps CrashLoopBackOff at 5 minutes and restarts the
	// container at its next sync of the pod, at most half its 1-minute
	// sync period after the back-off ends (completeWork in
	// pkg/kubelet/pod_workers.go, Kubernetes v1.37).
	RetryWithin = "within 5.5 minutes (the kubelet's 5-minute back-off cap, then its next sync of the pod)"

	// ComponentLabel selects provisioning pods; its value is ComponentDMS or
	// ComponentHostAgent.
	ComponentLabel     = "provisioning.dpu.nvidia.com/component"
	ComponentDMS       = "dms"
	ComponentHostAgent = "hostagent"
	// VersionLabel is set on objects from v25.7 on.
	VersionLabel = "operator.dpu.nvidia.com/dpf-version"
	// DPUNodeLabel marks Nodes that carry a DPU.
	DPUNodeLabel = "feature.node.kubernetes.io/dpu-enabled"
	// OverridePodNameAnnotation renames the DMS pod (v25.7 on).
	OverridePodNameAnnotation = "provisioning.dpu.nvidia.com/override-dms-pod-name"
	// RebootMethodLabel and ScriptNameLabel on a Node feed dms-init flags.
	RebootMethodLabel = "provisioning.dpu.nvidia.com/reboot-method"
	ScriptNameLabel   = "provisioning.dpu.nvidia.com/script-name"

	// OperatorFieldManager is the field manager the operator applies its
	// inventory with (server-side apply, force ownership).
	OperatorFieldManager = "dpfoperatorconfig-controller"
	// ApplySetPartOfLabel marks every object of the operator's inventory.
	ApplySetPartOfLabel = "applyset.kubernetes.io/part-of"
	// ApplySetIDLabel and ApplySetInventoryAnnotation sit on the parent.
	ApplySetIDLabel             = "applyset.kubernetes.io/id"
	ApplySetInventoryAnnotation = "applyset.kubernetes.io/inventory"
	ApplySetToolingAnnotation   = "applyset.kubernetes.io/tooling"
	// ProvisioningComponent is the operator component that owns the DMS RBAC.
	ProvisioningComponent = "provisioning-controller"

	// Issuer signs the per-node DMS server certificates.
	Issuer = "dpf-provisioning-issuer"

	// Container names in the DMS pod.
	ContainerRshimPreflight = "rshim-preflight"
	ContainerDMSInit        = "dms-init"
	ContainerConfigureVF    = "configure-vf"
	ContainerDMS            = "dms"
	ContainerHostAgent      = "hostagent"

	// ServerVolume is the pod volume that mounts the node's server Secret.
	ServerVolume = "server-volume"
	// DMSPort is the port dmsd listens on.
	DMSPort = 9339
)

// PodName is the DMS (or host agent) pod name for a node: "<node>-dms".
func PodName(node string) string { return node + "-dms" }

// NodeFromPodName inverts PodName; ok is false when the name does not end in
// "-dms".
func NodeFromPodName(pod string) (node string, ok bool) {
	if node, ok = strings.CutSuffix(pod, "-dms"); !ok || node == "" {
		return "", false
	}
	return node, true
}

// CertificateName is the node's DMS server Certificate: "<node>-dms-server-cert".
func CertificateName(node string) string { return node + "-dms-server-cert" }

// SecretName is the Secret cert-manager writes for that Certificate:
// "<node>-server-secret", with keys ca.crt, tls.crt and tls.key.
func SecretName(node string) string { return node + "-server-secret" }

// SecretKeys are the data keys dmsinit.sh reads from the server Secret.
var SecretKeys = []string{"ca.crt", "tls.crt", "tls.key"}

// ApplySetID computes the applyset ID the operator labels its inventory
// with: "applyset-" + base64url-no-pad(sha256("<name>.<ns>.Secret.")) + "-v1",
// where name is "<component>-applyset".
func ApplySetID(component, namespace string) string {
	sum := sha256.Sum256([]byte(ApplySetParentName(component) + "." + namespace + ".Secret."))
	return "applyset-" + base64.RawURLEncoding.EncodeToString(sum[:]) + "-v1"
}

// ApplySetParentName is the parent Secret of a component's applyset.
func ApplySetParentName(component string) string { return component + "-applyset" }

// PodState renders a pod's state the way `kubectl get pods` shows it in the
// STATUS column: "Running", "Init:CrashLoopBackOff", "Init:0/3",
// "PodInitializing", "Terminating", …
func PodState(p *corev1.Pod) string {
	if p.DeletionTimestamp != nil {
		return "Terminating"
	}
	reason := cmp.Or(p.Status.Reason, string(p.Status.Phase))
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
	return cmp.Or(reason, "Pending")
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
	_, named := NodeFromPodName(p.Name)
	ref := metav1.GetControllerOf(p)
	return named && ref != nil && ref.Kind == KindDPU && strings.HasPrefix(ref.APIVersion, GroupProvisioning+"/")
}
