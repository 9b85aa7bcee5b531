package guard

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
)

// operatorConfigGVK is the DPFOperatorConfig, read as unstructured so the
// guard needs no DPF API types.
var operatorConfigGVK = schema.GroupVersionKind{Group: dpf.GroupOperator, Version: "v1alpha1", Kind: "DPFOperatorConfig"}

func newOperatorConfig() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(operatorConfigGVK)
	return u
}

func newOperatorConfigList() *unstructured.UnstructuredList {
	l := &unstructured.UnstructuredList{}
	l.SetGroupVersionKind(operatorConfigGVK.GroupVersion().WithKind(operatorConfigGVK.Kind + "List"))
	return l
}

// selectors are the label selectors the cache lists and watches with: the
// API server filters, so nothing else is ever sent to the guard.
type selectors struct {
	pods, nodes, managed labels.Selector
}

func newSelectors() (selectors, error) {
	comp, err := labels.NewRequirement(dpf.ComponentLabel, selection.In, []string{dpf.ComponentDMS, dpf.ComponentHostAgent})
	if err != nil {
		return selectors{}, fmt.Errorf("pod selector: %w", err)
	}
	dpu, err := labels.NewRequirement(dpf.DPUNodeLabel, selection.Exists, nil)
	if err != nil {
		return selectors{}, fmt.Errorf("node selector: %w", err)
	}
	return selectors{
		pods:    labels.NewSelector().Add(*comp),
		nodes:   labels.NewSelector().Add(*dpu),
		managed: labels.SelectorFromSet(labels.Set{plan.ManagedByLabel: plan.ManagedByValue}),
	}, nil
}

// cacheOptions restrict the shared informer cache to what the guard reads:
// namespaced kinds in the DPF namespace only, DMS and host-agent pods, DPU
// Nodes, and the Roles and RoleBindings dpfdoctor manages there. Nothing else (Secrets
// above all) is ever listed or watched: a read of any other kind fails
// instead of starting an informer.
func cacheOptions(namespace string, sel selectors) cache.Options {
	resync := 10 * time.Hour
	return cache.Options{
		DefaultNamespaces: map[string]cache.Config{namespace: {}},
		SyncPeriod:        &resync,
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:         {Label: sel.pods, Transform: trimPod},
			&corev1.Node{}:        {Label: sel.nodes, Transform: trimNode},
			&rbacv1.Role{}:        {Label: sel.managed},
			&rbacv1.RoleBinding{}: {Label: sel.managed},
			newOperatorConfig():   {},
		},
		ReaderFailOnMissingInformer: true,
	}
}

// trimPod drops what the guard never reads from a cached pod: managed
// fields and annotations.
func trimPod(obj any) (any, error) {
	if p, ok := obj.(*corev1.Pod); ok {
		p.ManagedFields = nil
		p.Annotations = nil
	}
	return obj, nil
}

// trimNode keeps a Node's name, labels and addresses: a few hundred bytes
// instead of several kilobytes per node.
func trimNode(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	return &corev1.Node{
		TypeMeta: n.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, UID: n.UID, ResourceVersion: n.ResourceVersion, Labels: n.Labels,
			CreationTimestamp: n.CreationTimestamp, DeletionTimestamp: n.DeletionTimestamp},
		Status: corev1.NodeStatus{Addresses: n.Status.Addresses},
	}, nil
}
