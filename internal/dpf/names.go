// Package dpf holds what dpfdoctor knows about NVIDIA DPF as data: names,
// labels, the operator's RBAC per release, the kubectl calls each dmsinit.sh
// variant makes and the log lines it prints. Everything here is taken from
// the DPF source (see docs/versions.md); nothing here talks to a cluster.
package dpf

import "strings"

const (
	// DefaultNamespace is where the operator, its DPFOperatorConfig and the
	// DMS pods live. DPF hard-codes it in several places (known issue
	// 4427091 in the DPF v25.4.0 release notes).
	DefaultNamespace = "dpf-operator-system"
	// OperatorConfigName is the default DPFOperatorConfig name.
	OperatorConfigName = "dpfoperatorconfig"

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
