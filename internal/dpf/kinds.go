package dpf

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Kind maps a kind and its kubectl spellings to the resource RBAC sees.
type Kind struct {
	Kind       string   `json:"kind"`
	Group      string   `json:"group"`
	Version    string   `json:"version"`
	Resource   string   `json:"resource"`
	Namespaced bool     `json:"namespaced"`
	ShortNames []string `json:"shortNames,omitempty"`
}

// Kinds returns the built-in kinds: the core ones a provisioning script
// touches, cert-manager's and DPF's. A fresh slice on each call.
func Kinds() []Kind {
	return []Kind{
		{Kind: "Secret", Version: "v1", Resource: "secrets", Namespaced: true},
		{Kind: "ConfigMap", Version: "v1", Resource: "configmaps", Namespaced: true, ShortNames: []string{"cm"}},
		{Kind: "Pod", Version: "v1", Resource: "pods", Namespaced: true, ShortNames: []string{"po"}},
		{Kind: "Node", Version: "v1", Resource: "nodes", ShortNames: []string{"no"}},
		{Kind: "Namespace", Version: "v1", Resource: "namespaces", ShortNames: []string{"ns"}},
		{Kind: "Service", Version: "v1", Resource: "services", Namespaced: true, ShortNames: []string{"svc"}},
		{Kind: "ServiceAccount", Version: "v1", Resource: "serviceaccounts", Namespaced: true, ShortNames: []string{"sa"}},
		{Kind: "Event", Version: "v1", Resource: "events", Namespaced: true, ShortNames: []string{"ev"}},
		{Kind: "PersistentVolumeClaim", Version: "v1", Resource: "persistentvolumeclaims", Namespaced: true, ShortNames: []string{"pvc"}},
		{Kind: "Deployment", Group: "apps", Version: "v1", Resource: "deployments", Namespaced: true, ShortNames: []string{"deploy"}},
		{Kind: "DaemonSet", Group: "apps", Version: "v1", Resource: "daemonsets", Namespaced: true, ShortNames: []string{"ds"}},
		{Kind: "Role", Group: GroupRBAC, Version: "v1", Resource: "roles", Namespaced: true},
		{Kind: "RoleBinding", Group: GroupRBAC, Version: "v1", Resource: "rolebindings", Namespaced: true},
		{Kind: "ClusterRole", Group: GroupRBAC, Version: "v1", Resource: "clusterroles"},
		{Kind: "ClusterRoleBinding", Group: GroupRBAC, Version: "v1", Resource: "clusterrolebindings"},
		{Kind: "Lease", Group: "coordination.k8s.io", Version: "v1", Resource: "leases", Namespaced: true},
		{Kind: "CertificateSigningRequest", Group: "certificates.k8s.io", Version: "v1", Resource: "certificatesigningrequests", ShortNames: []string{"csr"}},
		{Kind: "Certificate", Group: GroupCertManager, Version: "v1", Resource: "certificates", Namespaced: true, ShortNames: []string{"cert", "certs"}},
		{Kind: "Issuer", Group: GroupCertManager, Version: "v1", Resource: "issuers", Namespaced: true},
		{Kind: "ClusterIssuer", Group: GroupCertManager, Version: "v1", Resource: "clusterissuers"},
		{Kind: "CertificateRequest", Group: GroupCertManager, Version: "v1", Resource: "certificaterequests", Namespaced: true, ShortNames: []string{"cr", "crs"}},
		{Kind: "DPUNode", Group: GroupProvisioning, Version: "v1alpha1", Resource: "dpunodes", Namespaced: true},
		{Kind: "DPUDevice", Group: GroupProvisioning, Version: "v1alpha1", Resource: "dpudevices", Namespaced: true},
		{Kind: "DPU", Group: GroupProvisioning, Version: "v1alpha1", Resource: "dpus", Namespaced: true},
		{Kind: "DPUSet", Group: GroupProvisioning, Version: "v1alpha1", Resource: "dpusets", Namespaced: true},
		{Kind: "BFB", Group: GroupProvisioning, Version: "v1alpha1", Resource: "bfbs", Namespaced: true},
		{Kind: "DPUCluster", Group: GroupProvisioning, Version: "v1alpha1", Resource: "dpuclusters", Namespaced: true},
		{Kind: "DPUFlavor", Group: GroupProvisioning, Version: "v1alpha1", Resource: "dpuflavors", Namespaced: true},
		{Kind: "DPFOperatorConfig", Group: GroupOperator, Version: "v1alpha1", Resource: "dpfoperatorconfigs", Namespaced: true},
	}
}

// LookupKind resolves what kubectl accepts as a resource argument: a kind
// ("DPUDevice"), a resource ("dpudevices"), its singular ("dpudevice"), a
// short name ("cert") or a qualified form ("certificates.cert-manager.io").
func LookupKind(kinds []Kind, word string) (Kind, bool) {
	w := strings.ToLower(word)
	w, group, _ := strings.Cut(w, ".")
	for _, k := range kinds {
		if (group == "" || k.Group == group) && (w == strings.ToLower(k.Kind) || w == k.Resource || slices.Contains(k.ShortNames, w)) {
			return k, true
		}
	}
	return Kind{}, false
}

// KindByGVK finds a kind by apiVersion ("group/version" or "v1") and kind.
func KindByGVK(kinds []Kind, apiVersion, kind string) (Kind, bool) {
	group := ""
	if i := strings.LastIndex(apiVersion, "/"); i >= 0 {
		group = apiVersion[:i]
	}
	return findKind(kinds, group, kind)
}

func findKind(kinds []Kind, group, kind string) (Kind, bool) {
	i := slices.IndexFunc(kinds, func(k Kind) bool { return k.Kind == kind && k.Group == group })
	if i < 0 {
		return Kind{}, false
	}
	return kinds[i], true
}

// GVR returns the resource of a built-in kind, by group and kind: the one
// kind → resource table every package uses. An unknown kind is an error,
// never an empty resource.
func GVR(group, kind string) (schema.GroupVersionResource, error) {
	if k, ok := findKind(Kinds(), group, kind); ok {
		return k.GVR(), nil
	}
	return schema.GroupVersionResource{}, fmt.Errorf("unknown kind %s", schema.GroupKind{Group: group, Kind: kind})
}

// MustGVR is GVR for the kinds this package itself lists; it panics on a
// kind that is not in Kinds, which is a programming error.
func MustGVR(group, kind string) schema.GroupVersionResource {
	g, err := GVR(group, kind)
	if err != nil {
		panic(err)
	}
	return g
}

// GVR is the kind's group, version and resource.
func (k Kind) GVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: k.Group, Version: k.Version, Resource: k.Resource}
}
