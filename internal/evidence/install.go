package evidence

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/outcome"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// CRDGVR is the CustomResourceDefinition resource.
var CRDGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// gvr returns the GroupVersionResource dpfdoctor uses for a DPF or
// cert-manager kind.
func gvr(kind string) schema.GroupVersionResource {
	k, _ := dpf.LookupKind(dpf.Kinds(), kind)
	return k.GVR()
}

// operatorConfig finds the DPFOperatorConfig: without it there is no DPF.
func (r *run) operatorConfig(ctx context.Context) error {
	ns := r.o.Namespace
	res := gvr("DPFOperatorConfig")
	list, err := r.cl.Dynamic.Resource(res).Namespace(ns).List(ctx, metav1.ListOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%w: the cluster serves no %s.%s (no DPFOperatorConfig CRD); install the DPF operator, or point --kubeconfig/--context at the cluster that has it",
			outcome.ErrNotInstalled, res.Resource, res.Group)
	case apierrors.IsForbidden(err):
		return needRights(access.Request{Verb: "list", Group: res.Group, Resource: res.Resource, Namespace: ns}, err)
	case err != nil:
		return fmt.Errorf("list DPFOperatorConfigs in %s: %w", ns, kube.Classify(err))
	}
	if len(list.Items) == 0 {
		return fmt.Errorf("%w: no DPFOperatorConfig in namespace %q%s", outcome.ErrNotInstalled, ns, r.elsewhere(ctx, res))
	}
	cfg := PickConfig(list.Items)
	r.b.Install.setConfig(cfg)
	r.configLabels = cfg.GetLabels()
	return nil
}

// PickConfig is the DPFOperatorConfig that counts among items: the one with
// the operator's default name, else the first by name; nil for none.
func PickConfig(items []unstructured.Unstructured) *unstructured.Unstructured {
	var best *unstructured.Unstructured
	for i := range items {
		u := &items[i]
		switch {
		case u.GetName() == dpf.OperatorConfigName:
			return u
		case best == nil || u.GetName() < best.GetName():
			best = u
		}
	}
	return best
}

// setConfig records what the DPFOperatorConfig says: its name, overrides
// and conditions.
func (in *Install) setConfig(cfg *unstructured.Unstructured) {
	in.OperatorConfig = cfg.GetName()
	in.Paused, _, _ = unstructured.NestedBool(cfg.Object, "spec", "overrides", "paused")
	in.APIServerVIP, _, _ = unstructured.NestedString(cfg.Object, "spec", "overrides", "kubernetesAPIServerVIP")
	in.APIServerPort = int64Field(cfg.Object, "spec", "overrides", "kubernetesAPIServerPort")
	in.Conditions = conditions(cfg.Object)
}

// InstallFrom describes the installation from objects the caller already
// holds (the guard's cache): the DPFOperatorConfig, which may be nil, and
// the DMS pods. The version is the config's dpf-version label, else the
// pods' (PodsVersion). The collector reads the same config fields but
// prefers the operator image's tag (detectVersion).
func InstallFrom(namespace string, cfg *unstructured.Unstructured, pods []*corev1.Pod) Install {
	in := Install{Namespace: namespace}
	if cfg == nil {
		return in
	}
	in.setConfig(cfg)
	if v := cfg.GetLabels()[dpf.VersionLabel]; v != "" {
		in.Version, in.VersionSource = normalise(v), VersionFromLabel
		return in
	}
	in.Version, in.VersionSource = PodsVersion(pods)
	return in
}

// PodsVersion is the version most DMS pods run, from each pod's
// dpf-version label, else its dms-init or host-agent image tag, and
// VersionFromPods; "", "" when no pod tells. A hostdriver newer than the
// operator on a few pods (a version skew) does not outvote the rest; a tie
// goes to the older version.
func PodsVersion(pods []*corev1.Pod) (version, source string) {
	counts := map[string]int{}
	best, bestN := "", 0
	for _, p := range pods {
		v := cmp.Or(p.Labels[dpf.VersionLabel], imageTagOf(p.Spec.InitContainers, dpf.ContainerDMSInit),
			imageTagOf(p.Spec.Containers, dpf.ContainerHostAgent))
		if !versionTag.MatchString(v) {
			continue
		}
		v = normalise(v)
		counts[v]++
		if n := counts[v]; n > bestN || (n == bestN && dpf.Compare(v, best) < 0) {
			best, bestN = v, n
		}
	}
	if best == "" {
		return "", ""
	}
	return best, VersionFromPods
}

// imageTagOf is the image tag of the last container named name, or "".
func imageTagOf(cs []corev1.Container, name string) string {
	tag := ""
	for _, c := range cs {
		if c.Name == name {
			tag = dpf.ImageTag(c.Image)
		}
	}
	return tag
}

// elsewhere names namespaces that do hold a DPFOperatorConfig, so the error
// can say which -n to pass. It costs one request, only on this error path.
func (r *run) elsewhere(ctx context.Context, res schema.GroupVersionResource) string {
	list, err := r.cl.Dynamic.Resource(res).List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) == 0 {
		return "; is DPF installed in another namespace? pass it with -n"
	}
	var nss []string
	for _, it := range list.Items {
		nss = append(nss, it.GetNamespace())
	}
	nss = uniqueSorted(nss)
	return fmt.Sprintf("; found one in %s: pass -n %s", strings.Join(nss, ", "), nss[0])
}

// dpuDeviceCRD records whether the DPUDevice CRD has a status subresource.
func (r *run) dpuDeviceCRD(ctx context.Context) error {
	name := DPUDeviceCRDName()
	crd, err := r.cl.Dynamic.Resource(CRDGVR).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return r.optional("customresourcedefinitions", access.Request{Verb: "get", Group: CRDGVR.Group, Resource: CRDGVR.Resource, Name: name},
			"the DPUDevice status subresource is inferred from the DPF version", err)
	}
	r.mu.Lock()
	r.b.Install.DPUDeviceCRD = true
	r.b.Install.DPUDeviceStatusSubresource = HasStatusSubresource(crd)
	r.mu.Unlock()
	return nil
}

// DPUDeviceCRDName is the name of the DPUDevice CRD.
func DPUDeviceCRDName() string {
	res := gvr("DPUDevice")
	return res.Resource + "." + res.Group
}

// HasStatusSubresource reports whether any version of a CRD has a status
// subresource.
func HasStatusSubresource(crd *unstructured.Unstructured) bool {
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	return slices.ContainsFunc(versions, func(v any) bool {
		m, _ := v.(map[string]any)
		_, ok, _ := unstructured.NestedFieldNoCopy(m, "subresources", "status")
		return ok
	})
}

type deploymentImage struct {
	deployment, image string
	labels            map[string]string
}

// deployments remembers the images of the namespace's Deployments: the
// operator's tag is the cluster's DPF version.
func (r *run) deployments(ctx context.Context) error {
	list, err := r.cl.Kube.AppsV1().Deployments(r.o.Namespace).List(ctx, fromCache)
	if err != nil {
		return r.optional("deployments", access.Request{Verb: "list", Group: "apps", Resource: "deployments", Namespace: r.o.Namespace},
			"the DPF version comes from labels or CRD shapes instead of the operator image", err)
	}
	var out []deploymentImage
	for _, d := range list.Items {
		for _, c := range d.Spec.Template.Spec.Containers {
			out = append(out, deploymentImage{deployment: d.Name, image: c.Image, labels: d.Labels})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].deployment < out[j].deployment })
	r.mu.Lock()
	r.deploymentImages = out
	r.mu.Unlock()
	return nil
}

// detectVersion sets the cluster's DPF version: the operator Deployment's
// image tag (a Deployment whose name or image says "operator", else one
// running DPF's dpf-system image), else dpf-version labels; versionFromCRDs
// falls back to the shape of the CRDs.
func (r *run) detectVersion() {
	in := &r.b.Install
	for _, pick := range []func(d deploymentImage) bool{
		func(d deploymentImage) bool {
			return strings.Contains(d.image, "operator") || strings.Contains(d.deployment, "operator")
		},
		func(d deploymentImage) bool {
			return strings.Contains(d.image, "dpf-system") || strings.HasPrefix(d.deployment, "dpf-")
		},
	} {
		for _, d := range r.deploymentImages {
			if !pick(d) {
				continue
			}
			if t := dpf.ImageTag(d.image); versionTag.MatchString(t) {
				in.Version, in.VersionSource, in.OperatorImage = normalise(t), VersionFromOperatorImage, d.image
				return
			}
		}
	}
	labels := []map[string]string{r.configLabels}
	for _, d := range r.deploymentImages {
		labels = append(labels, d.labels)
	}
	for _, p := range r.b.Pods {
		labels = append(labels, p.Labels)
	}
	for _, l := range labels {
		if v := l[dpf.VersionLabel]; v != "" {
			in.Version, in.VersionSource = normalise(v), VersionFromLabel
			return
		}
	}
}

// versionFromCRDs falls back to the CRD shape when nothing else told the
// version.
func (r *run) versionFromCRDs() {
	in := &r.b.Install
	if in.Version != "" || !in.DPUDeviceCRD {
		return
	}
	in.VersionSource = VersionFromCRDShape
	if in.DPUDeviceStatusSubresource {
		in.Version = "v25.7.0" // at least: DPUDevice has a status subresource
	} else {
		in.Version = "v25.4.0" // DPUDevice without a status subresource
	}
}

// needCRD reports whether the DPUDevice CRD matters: a failing pod's
// dmsinit.sh patches DPUDevice status, or the version is still unknown.
func (r *run) needCRD() bool {
	v := r.b.Install.Version
	return v == "" || slices.ContainsFunc(r.b.Pods, func(p Pod) bool {
		return !p.Ready && slices.ContainsFunc(p.Calls(v), func(c dpf.Call) bool { return c.Resource == "dpudevices" && c.Subresource == "status" })
	})
}

// needIssuers reports whether a failing pod could be blocked by its
// certificate (it never started, or it runs the certificate path) and that
// Certificate is absent or not Ready: only then can the Issuer be why.
func (r *run) needIssuers() bool {
	ready := make(map[string]bool, len(r.b.Certificates))
	for _, c := range r.b.Certificates {
		ready[c.Name] = c.Ready()
	}
	for _, p := range r.b.Pods {
		if p.Ready || (p.Started() && !p.Args().CertPath()) {
			continue
		}
		if !ready[p.CertificateName()] {
			return true
		}
	}
	return false
}

func normalise(v string) string { return "v" + strings.TrimPrefix(v, "v") }

func int64Field(obj map[string]any, path ...string) int64 {
	v, ok, _ := unstructured.NestedFieldNoCopy(obj, path...)
	if !ok {
		return 0
	}
	switch n := v.(type) {
	case int64:
		return n
	case float64:
		return int64(n)
	case string:
		i, _ := strconv.ParseInt(n, 10, 64)
		return i
	}
	return 0
}

func conditions(obj map[string]any) []Condition {
	list, _, _ := unstructured.NestedSlice(obj, "status", "conditions")
	var out []Condition
	for _, it := range list {
		m, ok := it.(map[string]any)
		if !ok {
			continue
		}
		str := func(k string) string { s, _ := m[k].(string); return s }
		out = append(out, Condition{Type: str("type"), Status: str("status"), Reason: str("reason"), Message: str("message")})
	}
	return out
}
