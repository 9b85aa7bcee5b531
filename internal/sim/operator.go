package sim

import (
	"context"
	"encoding/base64"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/selfsigned"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
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
	secrets  listersv1.SecretLister
	dpuNodes cache.GenericLister
	configs  cache.GenericLister
	certs    cache.GenericLister
	// podInformer is shared with the kubelet.
	podInformer cache.SharedIndexInformer
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
	// The NodeReconciler reads through controller-runtime's cache, so it
	// creates a Certificate (and, as cert-manager, its Secret) only when
	// the cache has none: an API request per re-created pod, not three.
	si, cti := podInf.Core().V1().Secrets(), dynInf.ForResource(gvrCertificate)
	o.nodes, o.pods, o.dpuNodes, o.configs, o.podInformer = ni.Lister(), pi.Lister(), di.Lister(), ci.Lister(), pi.Informer()
	o.secrets, o.certs = si.Lister(), cti.Lister()

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
			select {
			case o.trigger <- struct{}{}:
			default:
			}
		}
	}}); err != nil {
		return err
	}
	nodeInf.Start(ctx.Done())
	podInf.Start(ctx.Done())
	dynInf.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), ni.Informer().HasSynced, pi.Informer().HasSynced, di.Informer().HasSynced, ci.Informer().HasSynced,
		si.Informer().HasSynced, cti.Informer().HasSynced) {
		return fmt.Errorf("operator caches did not sync")
	}
	wg.Go(func() { o.inventoryLoop(ctx) })
	work(ctx, wg, o.queue, o.c.opts.OperatorWorkers, func(name string) {
		if err := o.reconcileNode(ctx, name); err != nil && ctx.Err() == nil {
			o.c.logf("operator: node %s: %v", name, err)
			o.queue.AddRateLimited(name)
			return
		}
		o.queue.Forget(name)
	})
	return nil
}

// work runs n workers that hand each name from q to handle until ctx ends,
// then shuts q down.
func work(ctx context.Context, wg *sync.WaitGroup, q workqueue.TypedInterface[string], n int, handle func(name string)) {
	wg.Go(func() {
		<-ctx.Done()
		q.ShutDown()
	})
	for range n {
		wg.Go(func() {
			for {
				name, quit := q.Get()
				if quit {
					return
				}
				handle(name)
				q.Done(name)
			}
		})
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

// reconcileInventory server-side applies the operator's objects with force
// ownership, reverting any change to them; a paused config is left alone.
func (o *operator) reconcileInventory(ctx context.Context) error {
	if cfg, err := o.config(); err == nil {
		if paused, _, _ := unstructured.NestedBool(cfg.Object, "spec", "overrides", "paused"); paused {
			o.c.logf("operator: Reconciling Paused")
			return nil
		}
	}
	if err := o.c.applyInventory(ctx); err != nil {
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
	if _, err := o.certs.ByNamespace(ns).Get(certName); err != nil {
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
				cond["status"], cond["reason"], cond["message"] = "False", "DoesNotExist", "Issuing certificate as Secret does not exist"
			}
			_ = unstructured.SetNestedSlice(created.Object, []any{cond}, "status", "conditions")
			if _, err := c.dyn.Resource(gvrCertificate).Namespace(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("set certificate status: %w", err)
			}
		}
	}
	// The Secret, as cert-manager would issue it once the Certificate is
	// ready, unless the cache holds it.
	if _, err := o.secrets.Secrets(ns).Get(dpf.SecretName(subject)); !ready || err == nil {
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

// The fake key material every simulated server Secret holds: one real
// (throwaway) CA, certificate and key, made once per sim so the API server
// accepts them as kubernetes.io/tls.
type secretMaterial struct {
	once         sync.Once
	ca, crt, key []byte
	err          error
}

func (c *Cluster) secretData() map[string][]byte {
	m := &c.secrets
	m.once.Do(func() { m.ca, m.crt, m.key, m.err = selfsigned.Issue("127.0.0.1") })
	return map[string][]byte{"ca.crt": m.ca, "tls.crt": m.crt, "tls.key": m.key}
}

// SecretFingerprints returns strings that appear in the simulated Secrets'
// data (raw and base64-encoded, as a Secret's JSON carries it) and nowhere
// else. Tests assert that no dpfdoctor output contains any of them.
func (c *Cluster) SecretFingerprints() []string {
	var out []string
	for _, v := range c.secretData() {
		body := strings.Join(strings.Split(string(v), "\n")[1:2], "")
		if len(body) > 40 {
			body = body[:40]
		}
		out = append(out, body, base64.StdEncoding.EncodeToString(v)[:40])
	}
	return out
}

var (
	gvrDPUNode     = dpf.MustGVR(dpf.GroupProvisioning, "DPUNode")
	gvrOperatorCfg = dpf.MustGVR(dpf.GroupOperator, "DPFOperatorConfig")
	gvrCertificate = dpf.MustGVR(dpf.GroupCertManager, "Certificate")
	gvrIssuer      = dpf.MustGVR(dpf.GroupCertManager, "Issuer")
	gvrDPU         = dpf.MustGVR(dpf.GroupProvisioning, "DPU")
)

// inventoryLabels are the labels of every inventory object.
func (c *Cluster) inventoryLabels() map[string]string {
	l := map[string]string{
		"app.kubernetes.io/component": "rbac",
		"app.kubernetes.io/part-of":   "dpf-provisioning-controller-manager",
		dpf.ApplySetPartOfLabel:       dpf.ApplySetID(dpf.ProvisioningComponent, c.Namespace),
		"dpu.nvidia.com/component":    "dpf-provisioning-controller-manager",
	}
	if c.Release.LabelsVersion {
		l[dpf.VersionLabel] = c.Release.Version
	}
	return l
}

// applyInventory writes what the simulated operator server-side applies on
// every reconcile, with force ownership, as field manager
// dpfoperatorconfig-controller.
func (c *Cluster) applyInventory(ctx context.Context) error {
	opts := metav1.ApplyOptions{FieldManager: dpf.OperatorFieldManager, Force: true}
	ns, r, cs, labels := c.Namespace, c.Release, c.kube, c.inventoryLabels()
	var gknn []string
	if r.ServiceAccount != "" {
		sa := corev1ac.ServiceAccount(r.ServiceAccount, ns).WithLabels(labels)
		if _, err := cs.CoreV1().ServiceAccounts(ns).Apply(ctx, sa, opts); err != nil {
			return fmt.Errorf("apply ServiceAccount %s: %w", r.ServiceAccount, err)
		}
		gknn = append(gknn, "ServiceAccount/"+r.ServiceAccount+"."+ns)
	}
	if c.opts.RBAC != nil {
		objs, err := c.applyRBAC(ctx, opts)
		if err != nil {
			return err
		}
		gknn = append(gknn, objs...)
	} else if r.ClusterRole != "" {
		cr := rbacv1ac.ClusterRole(r.ClusterRole).WithLabels(labels)
		for _, rule := range r.Rules {
			cr.WithRules(rbacv1ac.PolicyRule().WithAPIGroups(rule.APIGroups...).WithResources(rule.Resources...).WithVerbs(rule.Verbs...))
		}
		if _, err := cs.RbacV1().ClusterRoles().Apply(ctx, cr, opts); err != nil {
			return fmt.Errorf("apply ClusterRole %s: %w", r.ClusterRole, err)
		}
		crb := rbacv1ac.ClusterRoleBinding(r.ClusterRoleBinding).WithLabels(labels).
			WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup(rbacv1.GroupName).WithKind("ClusterRole").WithName(r.ClusterRole)).
			WithSubjects(rbacv1ac.Subject().WithKind("ServiceAccount").WithName(r.ServiceAccount).WithNamespace(ns))
		if r.Component == dpf.ComponentHostAgent {
			crb.WithSubjects(rbacv1ac.Subject().WithKind("Group").WithAPIGroup(rbacv1.GroupName).WithName("dpf:host-agent"))
		}
		if _, err := cs.RbacV1().ClusterRoleBindings().Apply(ctx, crb, opts); err != nil {
			return fmt.Errorf("apply ClusterRoleBinding %s: %w", r.ClusterRoleBinding, err)
		}
		gknn = append(gknn, "ClusterRole.rbac.authorization.k8s.io/"+r.ClusterRole+".", "ClusterRoleBinding.rbac.authorization.k8s.io/"+r.ClusterRoleBinding+".")
	}
	// The provisioning controller Deployment: its image tag is one of the
	// ways diagnose finds the version. There is no controller-manager in
	// envtest, so it never gets pods; that does not matter here.
	selector := map[string]string{"app.kubernetes.io/name": "dpf-provisioning-controller-manager"}
	dep := appsv1ac.Deployment("dpf-provisioning-controller-manager", ns).WithLabels(labels).
		WithSpec(appsv1ac.DeploymentSpec().WithReplicas(1).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(selector)).
			WithTemplate(corev1ac.PodTemplateSpec().WithLabels(selector).WithSpec(corev1ac.PodSpec().
				WithContainers(corev1ac.Container().WithName("manager").WithImage(ImageRepo + "/dpf-system:" + r.Version)))))
	if _, err := cs.AppsV1().Deployments(ns).Apply(ctx, dep, opts); err != nil {
		return fmt.Errorf("apply Deployment: %w", err)
	}
	gknn = append(gknn, "Deployment.apps/dpf-provisioning-controller-manager."+ns)

	for _, iss := range []struct {
		name string
		spec map[string]any
	}{
		{"dpf-provisioning-selfsigned-issuer", map[string]any{"selfSigned": map[string]any{}}},
		{dpf.Issuer, map[string]any{"ca": map[string]any{"secretName": "dpf-provisioning-ca-secret"}}},
	} {
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
			"metadata": map[string]any{"name": iss.name, "namespace": ns}, "spec": iss.spec}}
		u.SetLabels(labels)
		applied, err := c.dyn.Resource(gvrIssuer).Namespace(ns).Apply(ctx, iss.name, u, opts)
		if err != nil {
			return fmt.Errorf("apply Issuer %s: %w", iss.name, err)
		}
		gknn = append(gknn, "Issuer.cert-manager.io/"+iss.name+"."+ns)
		// cert-manager marks a working Issuer Ready; the sim plays it.
		if conds, _, _ := unstructured.NestedSlice(applied.Object, "status", "conditions"); len(conds) > 0 {
			continue
		}
		cond := map[string]any{"type": "Ready", "status": "True", "reason": "KeyPairVerified", "message": "Signing CA verified",
			"lastTransitionTime": time.Now().UTC().Format(time.RFC3339)}
		_ = unstructured.SetNestedSlice(applied.Object, []any{cond}, "status", "conditions")
		if _, err := c.dyn.Resource(gvrIssuer).Namespace(ns).UpdateStatus(ctx, applied, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("mark Issuer %s Ready: %w", iss.name, err)
		}
	}

	// The applyset parent: a Secret with no data, labelled with the ID and
	// annotated with the inventory, "<Kind>.<group>/<name>.<namespace>"
	// (GroupKindNamespaceName; empty namespace for cluster-scoped objects).
	sort.Strings(gknn)
	parent := corev1ac.Secret(dpf.ApplySetParentName(dpf.ProvisioningComponent), ns).
		WithLabels(map[string]string{dpf.ApplySetIDLabel: dpf.ApplySetID(dpf.ProvisioningComponent, ns), "dpu.nvidia.com/component": "dpf-provisioning-controller-manager"}).
		WithAnnotations(map[string]string{dpf.ApplySetInventoryAnnotation: strings.Join(gknn, ","), dpf.ApplySetToolingAnnotation: "dpf-operator/v0"})
	if _, err := cs.CoreV1().Secrets(ns).Apply(ctx, parent, opts); err != nil {
		return fmt.Errorf("apply applyset parent: %w", err)
	}
	return nil
}

// ImageRepo is the (never pulled) registry path of the simulated images.
const ImageRepo = "nvcr.io/nvidia/doca"

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
	if s == HypotheticalSecretsForbidden || s == HypotheticalSecretsForbiddenQuiet || s == HypotheticalEmptyCertificateFiles {
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
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: dpf.PodName(node.Name), Namespace: ns, Labels: labels, OwnerReferences: c.configOwner()},
		Spec: corev1.PodSpec{
			NodeName: node.Name, ServiceAccountName: r.ServiceAccount, HostNetwork: true, RestartPolicy: corev1.RestartPolicyAlways,
			InitContainers: initContainers, Containers: containers,
			Volumes: []corev1.Volume{
				{Name: "dms-config", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: dpf.ServerVolume, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: dpf.SecretName(node.Name)}}},
				{Name: "dev", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/dev"}}},
				{Name: "sys", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/sys"}}},
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
