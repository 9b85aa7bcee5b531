package sim

import (
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
)

// hostdriverTag is the image tag of the pod's hostdriver image: the
// release's own, except where the scenario is a newer dmsinit.sh running
// against this release's role (a version skew).
func (c *Cluster) hostdriverTag(s Scenario) string {
	switch s {
	case HypotheticalSecretsForbiddenQuiet, DPUDeviceStatusForbidden:
		if dpf.Compare(c.Release.Version, "v25.7.0") < 0 {
			return "v25.7.0"
		}
	}
	return c.Release.Version
}

// subject is what the DMS pod, its Certificate and Secret are named after:
// the node, or in v25.1 (pods per DPU) the node's DPU.
func (c *Cluster) subject(node string) string {
	if c.Release.PodPerDPU {
		return dpuName(node)
	}
	return node
}

// dpuName is the DPU object of a node's (only) DPU.
func dpuName(node string) string { return node + "-0000-3b-00-0" }

// podName is the DMS pod of a node.
func (c *Cluster) podName(node string) string { return dpf.PodName(c.subject(node)) }

// dmsPod builds the DMS pod the operator creates for a node (util/dms/util.go
// at v25.4.0; v25.7 moves configure-vf to a container and labels the version;
// v25.1 creates it per DPU; v25.10 runs the host agent instead).
func (c *Cluster) dmsPod(node *corev1.Node, s Scenario) *corev1.Pod {
	switch {
	case c.Release.Script == dpf.ScriptHostAgent:
		return c.hostAgentPod(node)
	case c.Release.PodPerDPU:
		return c.perDPUPod(node)
	}
	r := c.Release
	ns := c.Namespace
	ip := nodeIP(node)
	image := ImageRepo + "/dpf-hostdriver:" + c.hostdriverTag(s)
	extCert := "TODO"
	if s == HypotheticalSecretsForbidden || s == HypotheticalSecretsForbiddenQuiet {
		// Hypothetical: the operator never passes "none"; these scenarios
		// run create_certificate in the pod as the widely shared story
		// assumes.
		extCert = "none"
	}
	env, sc := c.apiEnv(), privileged()
	mounts := []corev1.VolumeMount{{Name: "dms-config", MountPath: "/opt/dpf/dms"}, {Name: dpf.ServerVolume, MountPath: "/opt/dpf/dms/certs"},
		{Name: "dev", MountPath: "/dev"}, {Name: "sys", MountPath: "/sys"}, {Name: "bfb", MountPath: "/bfb"}}
	initContainers := []corev1.Container{
		{Name: dpf.ContainerRshimPreflight, Image: image, Command: []string{"/opt/dpf/dmsinit.sh"}, Args: []string{"--cmd", "check-rshim-not-occupied"},
			SecurityContext: sc, VolumeMounts: mounts, TerminationMessagePath: "/dev/termination-log"},
		{Name: dpf.ContainerDMSInit, Image: image, Command: []string{"/bin/bash"}, Args: dpf.OperatorArgs(node.Name, ip, extCert),
			Env: env, SecurityContext: sc, VolumeMounts: mounts},
	}
	configureVF := corev1.Container{Name: dpf.ContainerConfigureVF, Image: image, Command: []string{"/opt/dpf/hostnetwork.sh", "--restore-vf"}, SecurityContext: sc}
	dms := corev1.Container{Name: dpf.ContainerDMS, Image: ImageRepo + "/dpf-dms:" + c.Release.Version,
		Command: []string{"/bin/bash", "-c", "./rshim.sh && /opt/mellanox/doca/services/dms/dmsd $(cat /opt/dpf/dms/dms.conf)"},
		Env:     env, SecurityContext: sc, VolumeMounts: mounts,
		StartupProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "df -h | grep /bfb"}}},
			PeriodSeconds: 10, FailureThreshold: 30}}
	containers := []corev1.Container{dms}
	if slices.Contains(r.InitContainers, dpf.ContainerConfigureVF) {
		initContainers = append(initContainers, configureVF)
	} else {
		containers = append(containers, configureVF)
	}
	labels := map[string]string{dpf.ComponentLabel: r.Component}
	if r.LabelsVersion {
		labels[dpf.VersionLabel] = r.Version
	}
	hostPath := func(p string) corev1.VolumeSource {
		return corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: p}}
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: dpf.PodName(node.Name), Namespace: ns, Labels: labels, OwnerReferences: c.configOwner()},
		Spec: corev1.PodSpec{
			NodeName: node.Name, ServiceAccountName: r.ServiceAccount, HostNetwork: true, RestartPolicy: corev1.RestartPolicyAlways,
			InitContainers: initContainers, Containers: containers,
			Volumes: []corev1.Volume{
				{Name: "dms-config", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: dpf.ServerVolume, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: dpf.SecretName(node.Name)}}},
				{Name: "dev", VolumeSource: hostPath("/dev")}, {Name: "sys", VolumeSource: hostPath("/sys")},
				{Name: "bfb", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "bfb-pvc"}}},
			},
		},
	}
}

// apiEnv is KUBERNETES_SERVICE_HOST/PORT as the operator passes them to DMS
// pods: the DPFOperatorConfig's kubernetesAPIServerVIP/Port overrides, else
// the API server's own address.
func (c *Cluster) apiEnv() []corev1.EnvVar {
	host, port := c.apiHost, int64(c.apiPort)
	if cfg, err := c.op.config(); err == nil {
		if v, _, _ := unstructured.NestedString(cfg.Object, "spec", "overrides", "kubernetesAPIServerVIP"); v != "" {
			host = v
		}
		if v, _, _ := unstructured.NestedInt64(cfg.Object, "spec", "overrides", "kubernetesAPIServerPort"); v > 0 {
			port = v
		}
	}
	return []corev1.EnvVar{{Name: "KUBERNETES_SERVICE_HOST", Value: host}, {Name: "KUBERNETES_SERVICE_PORT", Value: strconv.FormatInt(port, 10)}}
}

// configOwner makes the DPFOperatorConfig a pod's controller.
func (c *Cluster) configOwner() []metav1.OwnerReference {
	uid := types.UID("")
	if cfg, err := c.op.config(); err == nil {
		uid = cfg.GetUID()
	}
	return controllerRef("operator.dpu.nvidia.com/v1alpha1", "DPFOperatorConfig", dpf.OperatorConfigName, uid)
}

func controllerRef(apiVersion, kind, name string, uid types.UID) []metav1.OwnerReference {
	return []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: name, UID: uid, Controller: ptr(true), BlockOwnerDeletion: ptr(false)}}
}

func privileged() *corev1.SecurityContext { return &corev1.SecurityContext{Privileged: ptr(true)} }

// hostAgentPod is the v25.10 pod: the host agent and dms, no init
// containers, no certificate volume.
func (c *Cluster) hostAgentPod(node *corev1.Node) *corev1.Pod {
	r := c.Release
	env, sc := c.apiEnv(), privileged()
	image := ImageRepo + "/dpf-system:" + r.Version
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: dpf.PodName(node.Name), Namespace: c.Namespace,
			Labels: map[string]string{dpf.ComponentLabel: r.Component, dpf.VersionLabel: r.Version}, OwnerReferences: c.configOwner()},
		Spec: corev1.PodSpec{
			NodeName: node.Name, ServiceAccountName: r.ServiceAccount, HostNetwork: true, DNSPolicy: corev1.DNSClusterFirstWithHostNet,
			PriorityClassName: "system-node-critical",
			Containers: []corev1.Container{
				{Name: dpf.ContainerDMS, Image: image, Command: []string{"/bin/bash", "-c", "rshim --force && /hostagent rundms"}, Env: env, SecurityContext: sc},
				{Name: dpf.ContainerHostAgent, Image: image, Command: []string{"/hostagent", "serve", "--bfb-registry-address=127.0.0.1:8080"}, Env: env, SecurityContext: sc},
			},
		},
	}
}

// perDPUPod is the v25.1 pod: per DPU, unlabelled, the namespace's default
// ServiceAccount, owned by the DPU, the DPU's Secret mounted for dmsd.
func (c *Cluster) perDPUPod(node *corev1.Node) *corev1.Pod {
	dpu := dpuName(node.Name)
	sc := privileged()
	image := ImageRepo + "/dpf-system:" + c.Release.Version
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: dpf.PodName(dpu), Namespace: c.Namespace,
			OwnerReferences: controllerRef("provisioning.dpu.nvidia.com/v1alpha1", dpf.KindDPU, dpu, c.op.dpuUID(dpu))},
		Spec: corev1.PodSpec{
			NodeName: node.Name, HostNetwork: true,
			InitContainers: []corev1.Container{
				{Name: dpf.ContainerRshimPreflight, Image: image, Command: []string{"/bin/bash", "-c", "! systemctl is-active rshim"}, SecurityContext: sc, TerminationMessagePath: "/dev/termination-log"},
				{Name: "devlink-grace-period", Image: image, Command: []string{"bash", "-xc", "devlink health set pci/" + PCIAddress + " reporter fw_fatal grace_period 0"}, SecurityContext: sc},
			},
			Containers: []corev1.Container{{Name: dpf.ContainerDMS, Image: image, SecurityContext: sc,
				Command:      []string{"/bin/bash", "-c", "./rshim.sh && dmsd -bind_address 0.0.0.0:9339 -ca /etc/ssl/certs/server/ca.crt"},
				VolumeMounts: []corev1.VolumeMount{{Name: dpf.ServerVolume, MountPath: "/etc/ssl/certs/server"}}}},
			Volumes: []corev1.Volume{{Name: dpf.ServerVolume, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: dpf.SecretName(dpu)}}}},
		},
	}
}
