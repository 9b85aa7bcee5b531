package evidence

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/outcome"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// PodSelector selects DMS and host-agent pods.
var PodSelector = fmt.Sprintf("%s in (%s,%s)", dpf.ComponentLabel, dpf.ComponentDMS, dpf.ComponentHostAgent)

// pods lists the DMS and host-agent pods with one LIST, or, on a refresh,
// takes them from Options.Pods when given. Without them there is nothing
// to diagnose, so a refusal is fatal.
func (r *run) pods(ctx context.Context, refresh bool) error {
	ns := r.o.Namespace
	var items []*corev1.Pod
	if sel, _ := labels.Parse(PodSelector); refresh && r.o.Pods != nil {
		for _, p := range r.o.Pods {
			if p.Namespace == ns && sel.Matches(labels.Set(p.Labels)) {
				items = append(items, p)
			}
		}
	} else {
		list, err := r.cl.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: PodSelector, ResourceVersion: "0"})
		if err != nil {
			return podListError("DMS pods", ns, err)
		}
		for i := range list.Items {
			items = append(items, &list.Items[i])
		}
	}
	out := make([]Pod, 0, len(items))
	for _, item := range items {
		p := PodFrom(item)
		if r.keep(p.Node) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	r.b.Pods = out
	return nil
}

// podListError is the error of a failed pod LIST: a refusal needs rights.
func podListError(what, ns string, err error) error {
	if apierrors.IsForbidden(err) {
		return needRights(access.Request{Verb: "list", Resource: "pods", Namespace: ns}, err)
	}
	return fmt.Errorf("list %s in %s: %w", what, ns, kube.Classify(err))
}

// needRights is the error for a refused request the collection cannot do
// without.
func needRights(req access.Request, err error) error {
	return fmt.Errorf("%w: dpfdoctor needs %q (bind the ClusterRole in docs/rbac/dpfdoctor-readonly.yaml to your user): %v",
		kube.ErrInsufficientRights, req.String(), err)
}

// needPerDPUPods reports whether the DMS pods may be v25.1's: unlabelled,
// so the label LIST cannot find them. That is so when the detected
// version's release creates pods per DPU, or when the label LIST found
// nothing.
func (r *run) needPerDPUPods() bool {
	if len(r.b.Pods) == 0 {
		return true
	}
	rel, err := dpf.Lookup(r.b.Install.Version)
	return err == nil && rel.PodPerDPU
}

// perDPUPods lists the namespace's pods once, without a selector, and adds
// the v25.1 DMS pods among them (dpf.IsPerDPUPod): one more LIST however
// many pods there are.
func (r *run) perDPUPods(ctx context.Context) error {
	ns := r.o.Namespace
	list, err := r.cl.Kube.CoreV1().Pods(ns).List(ctx, fromCache)
	if err != nil {
		return podListError("per-DPU DMS pods", ns, err)
	}
	seen := make(map[string]bool, len(r.b.Pods))
	for _, p := range r.b.Pods {
		seen[p.Name] = true
	}
	for i := range list.Items {
		if seen[list.Items[i].Name] || !dpf.IsPerDPUPod(&list.Items[i]) {
			continue
		}
		if p := PodFrom(&list.Items[i]); r.keep(p.Node) {
			r.b.Pods = append(r.b.Pods, p)
		}
	}
	sort.Slice(r.b.Pods, func(i, j int) bool { return r.b.Pods[i].Name < r.b.Pods[j].Name })
	return nil
}

// events lists the namespace's Events once.
func (r *run) events(ctx context.Context) error {
	ns := r.o.Namespace
	list, err := r.cl.Kube.CoreV1().Events(ns).List(ctx, fromCache)
	if err != nil {
		return r.optional("events", access.Request{Verb: "list", Resource: "events", Namespace: ns},
			"FailedMount and other pod events are not used; certificate problems are judged from Certificates and Secrets", err)
	}
	r.rawEvents = list.Items
	return nil
}

// keepEvents keeps the events about our pods and about DPF and
// cert-manager objects.
func (r *run) keepEvents() {
	pods := make(map[string]bool, len(r.b.Pods))
	for _, p := range r.b.Pods {
		pods[p.Name] = true
	}
	kinds := map[string]bool{"Certificate": true, "CertificateRequest": true, "Issuer": true, "DPUNode": true, "DPUDevice": true, "DPFOperatorConfig": true}
	var out []Event
	for i := range r.rawEvents {
		o := r.rawEvents[i].InvolvedObject
		if !(o.Kind == "Pod" && pods[o.Name]) && !kinds[o.Kind] {
			continue
		}
		out = append(out, EventFrom(&r.rawEvents[i]))
	}
	slices.SortStableFunc(out, func(a, b Event) int {
		return cmp.Or(cmp.Compare(a.Kind+"/"+a.Name, b.Kind+"/"+b.Name), cmp.Compare(a.LastSeen, b.LastSeen))
	})
	r.b.Events, r.rawEvents = out, nil
}

// objectList is one DPF or cert-manager list: its kind, the fields kept and
// where the result goes.
type objectList struct {
	kind   string
	fields [][]string
	impact string
	// node maps an object name to its node, for the --node filter.
	node func(name string) string
	put  func(b *Bundle, os []Object)
}

func (r *run) objects(ctx context.Context) error {
	lists := []objectList{
		{kind: "DPUNode", fields: [][]string{{"status", "kubeNodeRef"}}, node: func(n string) string { return n },
			impact: "DPUNode state is not used", put: func(b *Bundle, os []Object) { b.DPUNodes = os }},
		{kind: "DPUDevice", fields: [][]string{{"spec", "pciAddress"}, {"spec", "serialNumber"}, {"status", "pciAddress"}},
			impact: "DPUDevice state is not used", put: func(b *Bundle, os []Object) { b.DPUDevices = os }},
		{kind: "Certificate", fields: [][]string{{"spec", "secretName"}, {"spec", "issuerRef", "name"}, {"spec", "issuerRef", "kind"}},
			node:   func(n string) string { return strings.TrimSuffix(n, "-dms-server-cert") },
			impact: "Certificate readiness is not checked", put: func(b *Bundle, os []Object) { b.Certificates = os }},
	}
	fns := make([]func() error, len(lists))
	for i, l := range lists {
		fns[i] = func() error { return r.objectList(ctx, l) }
	}
	return parallel(fns...)
}

// issuerList is listed only when a pod may be blocked by its certificate.
var issuerList = objectList{kind: "Issuer", fields: [][]string{{"spec", "ca", "secretName"}},
	impact: "Issuer readiness is not checked", put: func(b *Bundle, os []Object) { b.Issuers = os }}

func (r *run) objectList(ctx context.Context, l objectList) error {
	res := gvr(l.kind)
	items, err := r.listObjects(ctx, res)
	if err != nil {
		return r.optional(res.Resource, access.Request{Verb: "list", Group: res.Group, Resource: res.Resource, Namespace: r.o.Namespace}, l.impact, err)
	}
	out := make([]Object, 0, len(items))
	for i := range items {
		it := &items[i]
		if l.node != nil && !r.keep(l.node(it.Metadata.Name)) {
			continue
		}
		out = append(out, it.object(l.kind, l.fields))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	r.mu.Lock()
	l.put(r.b, out)
	r.mu.Unlock()
	return nil
}

// listedObject is a DPF or cert-manager object as a LIST returns it, decoded
// into just what diagnosis reads: name, labels, spec and status. The rest
// of the metadata (managedFields above all, thousands of times over) is
// skipped by the decoder instead of built into maps, as an unstructured
// list would.
type listedObject struct {
	Metadata struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels,omitempty"`
	} `json:"metadata"`
	Spec   map[string]any `json:"spec,omitempty"`
	Status map[string]any `json:"status,omitempty"`
}

// listObjects lists a custom resource in the namespace from the watch cache,
// as JSON decoded into listedObjects. Any of the clientset's REST clients
// can send it (AbsPath replaces the group path); the core one carries the
// clients' timeout and rate limiter, and decodes error Statuses.
func (r *run) listObjects(ctx context.Context, res schema.GroupVersionResource) ([]listedObject, error) {
	body, err := r.cl.Kube.CoreV1().RESTClient().Get().
		AbsPath("/apis", res.Group, res.Version, "namespaces", r.o.Namespace, res.Resource).
		Param("resourceVersion", "0").
		SetHeader("Accept", "application/json").
		DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	var list struct {
		Items []listedObject `json:"items"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("decode %s: %w", res.Resource, err)
	}
	return list.Items, nil
}

func (o *listedObject) object(kind string, fields [][]string) Object {
	obj := map[string]any{"spec": o.Spec, "status": o.Status}
	out := Object{Kind: kind, Name: o.Metadata.Name, Labels: o.Metadata.Labels, Conditions: conditions(obj)}
	for _, f := range fields {
		v, ok, _ := unstructured.NestedFieldNoCopy(obj, f...)
		if !ok || v == nil {
			continue
		}
		if out.Fields == nil {
			out.Fields = map[string]string{}
		}
		out.Fields[strings.Join(f, ".")] = fmt.Sprint(v)
	}
	return out
}

// nodeList lists the Nodes labelled as carrying a DPU.
func (r *run) nodeList(ctx context.Context) error {
	list, err := r.cl.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: dpf.DPUNodeLabel, ResourceVersion: "0"})
	if err != nil {
		return r.optional("nodes", access.Request{Verb: "list", Resource: "nodes"}, "node labels and addresses are not shown", err)
	}
	out := make([]Node, 0, len(list.Items))
	for i := range list.Items {
		if r.keep(list.Items[i].Name) {
			out = append(out, NodeFrom(&list.Items[i]))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	r.mu.Lock()
	r.b.Nodes = out
	r.mu.Unlock()
	return nil
}

// secrets lists Secret metadata only, through the metadata client: the
// request asks for PartialObjectMetadata, so the server never sends data.
func (r *run) secrets(ctx context.Context) error {
	list, err := r.cl.Metadata.Resource(dpf.MustGVR("", "Secret")).Namespace(r.o.Namespace).List(ctx, fromCache)
	if err != nil {
		return r.optional("secrets", access.Request{Verb: "list", Resource: "secrets", Namespace: r.o.Namespace},
			"whether a node's server Secret exists is inferred from FailedMount events", err)
	}
	out := make([]SecretMeta, 0, len(list.Items))
	for _, s := range list.Items {
		out = append(out, SecretMeta{Name: s.Name, Labels: s.Labels, Created: s.CreationTimestamp.UTC().Format(time.RFC3339)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	r.mu.Lock()
	r.b.Secrets, r.b.SecretsListed = out, true
	r.mu.Unlock()
	return nil
}

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
