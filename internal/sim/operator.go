package sim

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
)

// operator simulates the DPF operator (inventory reconcile) and the
// provisioning controller's NodeReconciler (certificates and DMS pods).
type operator struct {
	c          *Cluster
	reconciles atomic.Int64
	trigger    chan struct{}
	queue      workqueue.TypedRateLimitingInterface[string]

	nodes    listersv1.NodeLister
	pods     listersv1.PodLister
	dpuNodes cache.GenericLister
	configs  cache.GenericLister
	synced   []cache.InformerSynced
}

func newOperator(c *Cluster) *operator {
	return &operator{c: c, trigger: make(chan struct{}, 1),
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())}
}

func (o *operator) start(ctx context.Context, wg *sync.WaitGroup) error {
	c := o.c
	ns := c.Namespace
	nodeInf := informers.NewSharedInformerFactoryWithOptions(c.kube, 0,
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) { lo.LabelSelector = dpf.DPUNodeLabel }))
	podInf := informers.NewSharedInformerFactoryWithOptions(c.kube, 0, informers.WithNamespace(ns))
	dynInf := dynamicinformer.NewFilteredDynamicSharedInformerFactory(c.dyn, 0, ns, nil)

	ni := nodeInf.Core().V1().Nodes()
	pi := podInf.Core().V1().Pods()
	di := dynInf.ForResource(gvrDPUNode)
	ci := dynInf.ForResource(gvrOperatorCfg)
	o.nodes, o.pods, o.dpuNodes, o.configs = ni.Lister(), pi.Lister(), di.Lister(), ci.Lister()

	enqueueNode := func(obj any) {
		if n, ok := obj.(*corev1.Node); ok {
			o.queue.Add(n.Name)
		}
	}
	if _, err := ni.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueueNode, UpdateFunc: func(_, n any) { enqueueNode(n) },
	}); err != nil {
		return err
	}
	if c.Release.RecreatesDeletedPod {
		// v25.7 on: the NodeReconciler also watches pods named *dms and
		// re-creates a deleted one.
		if _, err := pi.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				if node, ok := dpf.NodeFromPodName(p.Name); ok {
					o.queue.Add(node)
				}
			}
		}}); err != nil {
			return err
		}
	}
	if _, err := ci.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{UpdateFunc: func(oldObj, newObj any) {
		a, b := oldObj.(*unstructured.Unstructured), newObj.(*unstructured.Unstructured)
		// Spec, labels and annotations trigger a reconcile; the operator's
		// own status writes do not.
		if a.GetGeneration() != b.GetGeneration() || !reflect.DeepEqual(a.GetAnnotations(), b.GetAnnotations()) || !reflect.DeepEqual(a.GetLabels(), b.GetLabels()) {
			o.kick()
		}
	}}); err != nil {
		return err
	}
	o.synced = []cache.InformerSynced{ni.Informer().HasSynced, pi.Informer().HasSynced, di.Informer().HasSynced, ci.Informer().HasSynced}
	nodeInf.Start(ctx.Done())
	podInf.Start(ctx.Done())
	dynInf.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), o.synced...) {
		return fmt.Errorf("operator caches did not sync")
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		<-ctx.Done()
		o.queue.ShutDown()
	}()
	go func() {
		defer wg.Done()
		o.inventoryLoop(ctx)
	}()
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o.processNode(ctx) {
			}
		}()
	}
	return nil
}

func (o *operator) kick() {
	select {
	case o.trigger <- struct{}{}:
	default:
	}
}

// inventoryLoop reconciles the inventory every resync and whenever the
// DPFOperatorConfig's spec, labels or annotations change.
func (o *operator) inventoryLoop(ctx context.Context) {
	t := time.NewTicker(o.c.scale(o.c.opts.Resync))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-o.trigger:
		}
		if err := o.reconcileInventory(ctx); err != nil && ctx.Err() == nil {
			o.c.logf("operator: reconcile: %v", err)
		}
	}
}

func (o *operator) config() (*unstructured.Unstructured, error) {
	obj, err := o.configs.ByNamespace(o.c.Namespace).Get(dpf.OperatorConfigName)
	if err != nil {
		return nil, err
	}
	return obj.(*unstructured.Unstructured), nil
}

func (o *operator) paused() bool {
	cfg, err := o.config()
	if err != nil {
		return false
	}
	p, _, _ := unstructured.NestedBool(cfg.Object, "spec", "overrides", "paused")
	return p
}

// reconcileInventory server-side applies the operator's objects with force
// ownership, reverting any change to them; a paused config is left alone.
func (o *operator) reconcileInventory(ctx context.Context) error {
	if o.paused() {
		o.c.logf("operator: Reconciling Paused")
		return nil
	}
	inv := inventory{release: o.c.Release, namespace: o.c.Namespace, imageTag: o.c.Release.Version, rbac: o.c.opts.RBAC}
	if _, err := inv.apply(ctx, o.c.kube, o.c.dyn); err != nil {
		return err
	}
	o.reconciles.Add(1)
	return o.setConfigReady(ctx)
}

func (o *operator) setConfigReady(ctx context.Context) error {
	cfg, err := o.config()
	if err != nil {
		return nil
	}
	if conds, _, _ := unstructured.NestedSlice(cfg.Object, "status", "conditions"); len(conds) > 0 {
		return nil
	}
	cfg = cfg.DeepCopy()
	now := metav1.Now().UTC().Format(time.RFC3339)
	var conds []any
	for _, t := range []string{"Ready", "ImagePullSecretsReconciled", "SystemComponentsReconciled", "SystemComponentsReady"} {
		conds = append(conds, map[string]any{"type": t, "status": "True", "reason": "Success", "lastTransitionTime": now})
	}
	_ = unstructured.SetNestedSlice(cfg.Object, conds, "status", "conditions")
	_ = unstructured.SetNestedField(cfg.Object, cfg.GetGeneration(), "status", "observedGeneration")
	_, err = o.c.dyn.Resource(gvrOperatorCfg).Namespace(o.c.Namespace).UpdateStatus(ctx, cfg, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		return nil
	}
	return err
}

func (o *operator) processNode(ctx context.Context) bool {
	name, quit := o.queue.Get()
	if quit {
		return false
	}
	defer o.queue.Done(name)
	if err := o.reconcileNode(ctx, name); err != nil && ctx.Err() == nil {
		o.c.logf("operator: node %s: %v", name, err)
		o.queue.AddRateLimited(name)
		return true
	}
	o.queue.Forget(name)
	return true
}

// reconcileNode is the NodeReconciler: for a DPU node without a DPUNode it
// ensures the DMS server Certificate (and, as cert-manager would, its
// Secret) and the DMS pod. In v25.4.0 it returns early once the DPUNode
// exists, so a DMS pod deleted then is not re-created.
func (o *operator) reconcileNode(ctx context.Context, name string) error {
	node, err := o.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	if _, err := o.dpuNodes.ByNamespace(o.c.Namespace).Get(name); err == nil && !o.c.Release.RecreatesDeletedPod {
		return nil
	}
	if nodeIP(node) == "" {
		// Not registered yet: the sim registers nodes it did not create;
		// the status update brings the node back here.
		return o.c.register(ctx, node)
	}
	scen := o.c.scenarioOf(node)
	if o.c.Release.CertVolume {
		if err := o.ensureCertificate(ctx, node, scen); err != nil {
			return err
		}
	}
	if o.c.Release.PodPerDPU {
		if err := o.ensureDPU(ctx, node); err != nil {
			return err
		}
	}
	if _, err := o.pods.Pods(o.c.Namespace).Get(o.c.podName(name)); err == nil {
		return nil
	}
	pod := o.c.dmsPod(node, scen)
	if _, err := o.c.kube.CoreV1().Pods(o.c.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create pod: %w", err)
	}
	return nil
}

func (c *Cluster) scenarioOf(node *corev1.Node) Scenario {
	if s := Scenario(node.Labels[ScenarioLabel]); s.valid() {
		return s
	}
	return c.mix[0].Scenario
}

// ensureCertificate creates <node>-dms-server-cert and, unless the scenario
// is certificate-not-ready, the <node>-server-secret cert-manager would
// issue for it.
func (o *operator) ensureCertificate(ctx context.Context, node *corev1.Node, scen Scenario) error {
	ns, c := o.c.Namespace, o.c
	subject := c.subject(node.Name)
	certName := dpf.CertificateName(subject)
	ready := scen != CertificateNotReady
	cert := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
		"metadata": map[string]any{"name": certName, "namespace": ns},
		"spec": map[string]any{
			"secretName": dpf.SecretName(subject), "duration": "8760h", "renewBefore": "4380h",
			"ipAddresses": []any{nodeIP(node)}, "issuerRef": map[string]any{"name": dpf.Issuer, "kind": "Issuer"},
		},
	}}
	created, err := c.dyn.Resource(gvrCertificate).Namespace(ns).Create(ctx, cert, metav1.CreateOptions{})
	switch {
	case apierrors.IsAlreadyExists(err):
	case err != nil:
		return fmt.Errorf("create certificate: %w", err)
	default:
		cond := map[string]any{"type": "Ready", "status": "True", "reason": "Ready", "message": "Certificate is up to date and has not expired",
			"lastTransitionTime": metav1.Now().UTC().Format(time.RFC3339)}
		if !ready {
			cond = map[string]any{"type": "Ready", "status": "False", "reason": "DoesNotExist", "message": "Issuing certificate as Secret does not exist",
				"lastTransitionTime": metav1.Now().UTC().Format(time.RFC3339)}
		}
		_ = unstructured.SetNestedSlice(created.Object, []any{cond}, "status", "conditions")
		if _, err := c.dyn.Resource(gvrCertificate).Namespace(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("set certificate status: %w", err)
		}
	}
	if !ready {
		return nil
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: dpf.SecretName(subject), Namespace: ns,
			Annotations: map[string]string{"cert-manager.io/certificate-name": certName, "cert-manager.io/issuer-name": dpf.Issuer}},
		Type: corev1.SecretTypeTLS,
		Data: c.secretData(),
	}
	if _, err := c.kube.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create secret: %w", err)
	}
	return nil
}

func nodeIP(n *corev1.Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}

// ensureDPU creates the node's DPU object (v25.1 owns the DMS pod by it).
func (o *operator) ensureDPU(ctx context.Context, node *corev1.Node) error {
	dpu := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "provisioning.dpu.nvidia.com/v1alpha1", "kind": "DPU",
		"metadata": map[string]any{"name": dpuName(node.Name), "namespace": o.c.Namespace},
		"spec":     map[string]any{"nodeName": node.Name, "pciAddress": PCIAddress},
	}}
	created, err := o.c.dyn.Resource(gvrDPU).Namespace(o.c.Namespace).Create(ctx, dpu, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	} else if err != nil {
		return fmt.Errorf("create DPU: %w", err)
	}
	o.c.dpuUIDs.Store(created.GetName(), created.GetUID())
	return nil
}

func (o *operator) dpuUID(name string) types.UID {
	if v, ok := o.c.dpuUIDs.Load(name); ok {
		return v.(types.UID)
	}
	return ""
}
