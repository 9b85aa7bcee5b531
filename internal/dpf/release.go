package dpf

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Release is one DPF release line as far as DMS provisioning is concerned.
type Release struct {
	// Version is the canonical version, e.g. "v25.4.0".
	Version string `json:"version"`
	// Component is the provisioning pod's component label value; empty when
	// the release does not label its pods (v25.1).
	Component string `json:"component,omitempty"`
	// ServiceAccount the pod runs as; empty when the pod runs as the
	// namespace's default ServiceAccount (v25.1).
	ServiceAccount string `json:"serviceAccount,omitempty"`
	// ClusterRole and ClusterRoleBinding the operator ships for it.
	ClusterRole        string `json:"clusterRole,omitempty"`
	ClusterRoleBinding string `json:"clusterRoleBinding,omitempty"`
	// Rules are the ClusterRole's rules exactly as the operator applies them.
	Rules []rbacv1.PolicyRule `json:"rules,omitempty"`
	// PodPerDPU is true when pods are created per DPU (v25.1) rather than per
	// node.
	PodPerDPU bool `json:"podPerDPU"`
	// InitContainers and Containers of the pod, in order.
	InitContainers []string `json:"initContainers,omitempty"`
	Containers     []string `json:"containers"`
	// Script is the dmsinit.sh variant the release's hostdriver image ships.
	Script ScriptVariant `json:"script"`
	// DPUDeviceStatusSubresource is true when the DPUDevice CRD has a status
	// subresource.
	DPUDeviceStatusSubresource bool `json:"dpuDeviceStatusSubresource"`
	// RecreatesDeletedPod is true when the operator re-creates a deleted DMS
	// pod even while the node's DPUNode exists. v25.4.0 does not: there a
	// deleted pod only comes back on a Node event while no DPUNode exists.
	RecreatesDeletedPod bool `json:"recreatesDeletedPod"`
	// LabelsVersion is true when pods carry VersionLabel.
	LabelsVersion bool `json:"labelsVersion"`
	// CertVolume is true when the pod mounts the node's server Secret, so a
	// missing Secret blocks every container (FailedMount).
	CertVolume bool `json:"certVolume"`
	// Notes are shown by `dpfdoctor versions`.
	Notes string `json:"notes"`
}

// Releases returns every release dpfdoctor knows, oldest first. It returns a
// fresh slice on each call.
func Releases() []Release {
	dmsRules := []rbacv1.PolicyRule{
		{APIGroups: []string{GroupProvisioning}, Resources: []string{"dpunodes"}, Verbs: []string{"create", "get"}},
		{APIGroups: []string{GroupProvisioning}, Resources: []string{"dpudevices"}, Verbs: []string{"create", "get"}},
		{APIGroups: []string{GroupCertManager}, Resources: []string{"certificates"}, Verbs: []string{"create", "get"}},
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list"}},
	}
	dmsRulesWithStatus := append(clone(dmsRules),
		rbacv1.PolicyRule{APIGroups: []string{GroupProvisioning}, Resources: []string{"dpudevices/status"}, Verbs: []string{"update", "patch", "get"}})
	crud := []string{"create", "delete", "get", "list", "patch", "update", "watch"}
	read := []string{"get", "list", "patch", "update", "watch"}
	hostAgentRules := []rbacv1.PolicyRule{
		{APIGroups: []string{GroupProvisioning}, Resources: []string{"dpunodes", "dpudevices"}, Verbs: crud},
		{APIGroups: []string{GroupProvisioning}, Resources: []string{"bfbs", "dpuclusters", "dpudiscoveries", "dpus", "dpusets"}, Verbs: read},
		{APIGroups: []string{GroupProvisioning}, Resources: []string{"dpus/status", "dpunodes/status", "dpudevices/status"}, Verbs: []string{"get", "patch", "update"}},
		{APIGroups: []string{GroupProvisioning}, Resources: []string{"dpuflavors"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "patch", "watch"}},
		{APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"certificatesigningrequests"}, Verbs: []string{"create", "get", "list", "watch"}},
		{APIGroups: []string{GroupOperator}, Resources: []string{"dpfoperatorconfigs"}, Verbs: []string{"get", "list", "watch"}},
	}
	return []Release{
		{
			Version: "v25.1.0", PodPerDPU: true, Script: ScriptNone, CertVolume: true,
			InitContainers: []string{ContainerRshimPreflight, "devlink-grace-period"}, Containers: []string{ContainerDMS},
			Notes: "DMS pods per DPU in the DPU namespace, no DMS ServiceAccount and no dmsinit.sh; pods are unlabelled.",
		},
		{
			Version: "v25.4.0", Component: ComponentDMS, Script: ScriptB, CertVolume: true,
			ServiceAccount: "dpf-provisioning-dms-service-account", ClusterRole: "dpf-provisioning-dms-role", ClusterRoleBinding: "dpf-provisioning-dms-rolebinding",
			Rules:          dmsRules,
			InitContainers: []string{ContainerRshimPreflight, ContainerDMSInit, ContainerConfigureVF}, Containers: []string{ContainerDMS},
			Notes: "First release with dms-init; a deleted DMS pod is re-created only on a Node event while the node has no DPUNode.",
		},
		{
			Version: "v25.7.0", Component: ComponentDMS, Script: ScriptE, CertVolume: true,
			DPUDeviceStatusSubresource: true, RecreatesDeletedPod: true, LabelsVersion: true,
			ServiceAccount: "dpf-provisioning-dms-service-account", ClusterRole: "dpf-provisioning-dms-role", ClusterRoleBinding: "dpf-provisioning-dms-rolebinding",
			Rules:          dmsRulesWithStatus,
			InitContainers: []string{ContainerRshimPreflight, ContainerDMSInit}, Containers: []string{ContainerDMS, ContainerConfigureVF},
			Notes: "dms-init waits for the Secret with stderr hidden and patches dpudevices/status; deleted DMS pods are re-created.",
		},
		{
			Version: "v25.10.0", Component: ComponentHostAgent, Script: ScriptHostAgent,
			DPUDeviceStatusSubresource: true, RecreatesDeletedPod: true, LabelsVersion: true,
			ServiceAccount: "dpf-provisioning-hostagent-service-account", ClusterRole: "dpf-provisioning-hostagent-role", ClusterRoleBinding: "dpf-provisioning-hostagent-rolebinding",
			Rules:      hostAgentRules,
			Containers: []string{ContainerDMS, ContainerHostAgent},
			Notes:      "The host agent replaces dmsinit.sh; no init containers and no certificate volume.",
		},
	}
}

func clone(rs []rbacv1.PolicyRule) []rbacv1.PolicyRule {
	out := make([]rbacv1.PolicyRule, len(rs))
	for i := range rs {
		rs[i].DeepCopyInto(&out[i])
	}
	return out
}

// ErrUnknownVersion is returned for a version no release line matches.
var ErrUnknownVersion = fmt.Errorf("unknown DPF version")

// Lookup finds the release for a version such as "v25.4.0", "25.4",
// "v25.7.1" or "v25.10.0-rc.2": the same major.minor line. Patch releases
// share their line's facts.
func Lookup(version string) (Release, error) {
	rs := Releases()
	if i := slices.IndexFunc(rs, func(r Release) bool { return Line(r.Version) == Line(version) }); i >= 0 {
		return rs[i], nil
	}
	return Release{}, fmt.Errorf("%w %q (known: %s)", ErrUnknownVersion, version, strings.Join(Versions(), ", "))
}

// Line is the "vMAJOR.MINOR" of a version: "v25.4.0-rc.1" → "v25.4".
func Line(version string) string {
	v := core(version)
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return "v" + v
	}
	return "v" + parts[0] + "." + parts[1]
}

// Versions lists the known release versions, oldest first.
func Versions() []string {
	var out []string
	for _, r := range Releases() {
		out = append(out, r.Version)
	}
	return out
}

// Compare orders two versions by major, minor and patch (pre-release suffixes
// ignored). It returns -1, 0 or 1.
func Compare(a, b string) int {
	pa, pb := numbers(a), numbers(b)
	for i := range pa {
		if c := cmp.Compare(pa[i], pb[i]); c != 0 {
			return c
		}
	}
	return 0
}

// core is a version without its "v" and its pre-release or build suffix.
func core(v string) string {
	v = strings.TrimPrefix(strings.TrimSpace(v), "v")
	v, _, _ = strings.Cut(v, "-")
	v, _, _ = strings.Cut(v, "+")
	return v
}

func numbers(v string) [3]int {
	var out [3]int
	for i, p := range strings.SplitN(core(v), ".", 3) {
		n := 0
		for _, c := range p {
			if c < '0' || c > '9' {
				break
			}
			n = n*10 + int(c-'0')
		}
		out[i] = n
	}
	return out
}

// SortVersions sorts versions oldest first, in place.
func SortVersions(vs []string) {
	slices.SortStableFunc(vs, Compare)
}

// InventoryRBAC is the ClusterRole and ClusterRoleBinding the operator's
// inventory applies for the release, with its ServiceAccount in namespace
// ns (and, for the host agent, Group dpf:host-agent) as subjects; nil, nil
// for a release without them (v25.1).
func (r Release) InventoryRBAC(ns string) (*rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding) {
	if r.ClusterRole == "" {
		return nil, nil
	}
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: r.ClusterRole}, Rules: clone(r.Rules)}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: r.ClusterRoleBinding},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: r.ClusterRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: r.ServiceAccount, Namespace: ns}},
	}
	if r.Component == ComponentHostAgent {
		binding.Subjects = append(binding.Subjects, rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "dpf:host-agent"})
	}
	return role, binding
}
