package sim

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
)

// hostdriverTag is the image tag of the pod's hostdriver image: the
// release's own, except where the scenario is a newer dmsinit.sh running
// against this release's role (a version skew).
func (c *Cluster) hostdriverTag(s Scenario) string {
	switch s {
	case SecretsForbiddenQuiet, DPUDeviceStatusForbidden:
		if dpf.Compare(c.Release.Version, "v25.7.0") < 0 {
			return "v25.7.0"
		}
	}
	return c.Release.Version
}

// dmsPod builds the DMS pod the operator creates for a node (util/dms/util.go
// at v25.4.0; v25.7 moves configure-vf to a container and labels the version).
func (c *Cluster) dmsPod(node *corev1.Node, s Scenario) *corev1.Pod {
	r := c.Release
	ns := c.Namespace
	ip := nodeIP(node)
	image := ImageRepo + "/dpf-hostdriver:" + c.hostdriverTag(s)
	extCert := "TODO"
	if s == SecretsForbidden || s == SecretsForbiddenQuiet {
		// The reported failure runs create_certificate: dms-init reads the
		// Secret with kubectl.
		extCert = "none"
	}
	env := []corev1.EnvVar{
		{Name: "KUBERNETES_SERVICE_HOST", Value: c.vip()},
		{Name: "KUBERNETES_SERVICE_PORT", Value: strconv.Itoa(c.vipPort())},
	}
	privileged := true
	sc := &corev1.SecurityContext{Privileged: &privileged}
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
	if contains(r.InitContainers, dpf.ContainerConfigureVF) {
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
	f := false
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: dpf.PodName(node.Name), Namespace: ns, Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "operator.dpu.nvidia.com/v1alpha1", Kind: "DPFOperatorConfig",
				Name: dpf.OperatorConfigName, UID: c.configUID(), Controller: ptr(true), BlockOwnerDeletion: &f}},
		},
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

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// vip and vipPort are the DPFOperatorConfig's kubernetesAPIServerVIP/Port
// overrides, which the operator passes to DMS pods as KUBERNETES_SERVICE_*.
func (c *Cluster) vip() string {
	if cfg, err := c.op.config(); err == nil {
		if v, ok := nestedString(cfg.Object, "spec", "overrides", "kubernetesAPIServerVIP"); ok && v != "" {
			return v
		}
	}
	return c.apiHost
}

func (c *Cluster) vipPort() int {
	if cfg, err := c.op.config(); err == nil {
		if v, ok := nestedInt(cfg.Object, "spec", "overrides", "kubernetesAPIServerPort"); ok && v > 0 {
			return int(v)
		}
	}
	return c.apiPort
}

func (c *Cluster) configUID() types.UID {
	if cfg, err := c.op.config(); err == nil {
		return cfg.GetUID()
	}
	return ""
}
