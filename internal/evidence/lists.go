package evidence

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// PodSelector selects DMS and host-agent pods.
var PodSelector = fmt.Sprintf("%s in (%s,%s)", dpf.ComponentLabel, dpf.ComponentDMS, dpf.ComponentHostAgent)

// pods lists the DMS and host-agent pods with one LIST. Without it there is
// nothing to diagnose, so a refusal is fatal.
func (r *run) pods(ctx context.Context) error {
	ns := r.o.Namespace
	list, err := r.core.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: PodSelector, ResourceVersion: "0"})
	if err != nil {
		return podListError("DMS pods", ns, err)
	}
	out := make([]Pod, 0, len(list.Items))
	for i := range list.Items {
		p := PodFrom(&list.Items[i])
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
	list, err := r.core.CoreV1().Pods(ns).List(ctx, fromCache)
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
	list, err := r.core.CoreV1().Events(ns).List(ctx, fromCache)
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
	list, err := r.core.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: dpf.DPUNodeLabel, ResourceVersion: "0"})
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
