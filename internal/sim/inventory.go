package sim

import (
	"context"
	"fmt"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
)

var (
	gvrDPUNode     = dpf.MustGVR(dpf.GroupProvisioning, "DPUNode")
	gvrOperatorCfg = dpf.MustGVR(dpf.GroupOperator, "DPFOperatorConfig")
	gvrCertificate = dpf.MustGVR(dpf.GroupCertManager, "Certificate")
	gvrIssuer      = dpf.MustGVR(dpf.GroupCertManager, "Issuer")
	gvrDPU         = dpf.MustGVR(dpf.GroupProvisioning, "DPU")
)

// inventory is what the simulated operator server-side applies on every
// reconcile, with force ownership, as field manager dpfoperatorconfig-controller.
type inventory struct {
	release   dpf.Release
	namespace string
	imageTag  string
	rbac      *rbac.Set // replaces the release's ClusterRole and binding (sim up --rbac)
}

func (inv inventory) labels() map[string]string {
	l := map[string]string{
		"app.kubernetes.io/component": "rbac",
		"app.kubernetes.io/part-of":   "dpf-provisioning-controller-manager",
		dpf.ApplySetPartOfLabel:       dpf.ApplySetID(dpf.ProvisioningComponent, inv.namespace),
		"dpu.nvidia.com/component":    "dpf-provisioning-controller-manager",
	}
	if inv.release.LabelsVersion {
		l[dpf.VersionLabel] = inv.release.Version
	}
	return l
}

// apply writes every inventory object. It returns the number of objects.
func (inv inventory) apply(ctx context.Context, cs kubernetes.Interface, dyn dynamic.Interface) (int, error) {
	opts := metav1.ApplyOptions{FieldManager: dpf.OperatorFieldManager, Force: true}
	ns, r := inv.namespace, inv.release
	var gknn []string
	n := 0
	if r.ServiceAccount != "" {
		sa := corev1ac.ServiceAccount(r.ServiceAccount, ns).WithLabels(inv.labels())
		if _, err := cs.CoreV1().ServiceAccounts(ns).Apply(ctx, sa, opts); err != nil {
			return n, fmt.Errorf("apply ServiceAccount %s: %w", r.ServiceAccount, err)
		}
		n++
		gknn = append(gknn, "ServiceAccount/"+r.ServiceAccount+"."+ns)
	}
	if inv.rbac != nil {
		objs, err := inv.applyRBAC(ctx, cs, opts)
		if err != nil {
			return n, err
		}
		n += len(objs)
		gknn = append(gknn, objs...)
	} else if r.ClusterRole != "" {
		cr := rbacv1ac.ClusterRole(r.ClusterRole).WithLabels(inv.labels())
		for _, rule := range r.Rules {
			cr.WithRules(rbacv1ac.PolicyRule().WithAPIGroups(rule.APIGroups...).WithResources(rule.Resources...).WithVerbs(rule.Verbs...))
		}
		if _, err := cs.RbacV1().ClusterRoles().Apply(ctx, cr, opts); err != nil {
			return n, fmt.Errorf("apply ClusterRole %s: %w", r.ClusterRole, err)
		}
		crb := rbacv1ac.ClusterRoleBinding(r.ClusterRoleBinding).WithLabels(inv.labels()).
			WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup(rbacv1.GroupName).WithKind("ClusterRole").WithName(r.ClusterRole)).
			WithSubjects(rbacv1ac.Subject().WithKind("ServiceAccount").WithName(r.ServiceAccount).WithNamespace(ns))
		if r.Component == dpf.ComponentHostAgent {
			crb.WithSubjects(rbacv1ac.Subject().WithKind("Group").WithAPIGroup(rbacv1.GroupName).WithName("dpf:host-agent"))
		}
		if _, err := cs.RbacV1().ClusterRoleBindings().Apply(ctx, crb, opts); err != nil {
			return n, fmt.Errorf("apply ClusterRoleBinding %s: %w", r.ClusterRoleBinding, err)
		}
		n += 2
		gknn = append(gknn, "ClusterRole.rbac.authorization.k8s.io/"+r.ClusterRole+".", "ClusterRoleBinding.rbac.authorization.k8s.io/"+r.ClusterRoleBinding+".")
	}
	// The provisioning controller Deployment: its image tag is one of the
	// ways diagnose finds the version. There is no controller-manager in
	// envtest, so it never gets pods; that does not matter here.
	labels := map[string]string{"app.kubernetes.io/name": "dpf-provisioning-controller-manager"}
	dep := appsv1ac.Deployment("dpf-provisioning-controller-manager", ns).WithLabels(inv.labels()).
		WithSpec(appsv1ac.DeploymentSpec().WithReplicas(1).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(labels)).
			WithTemplate(corev1ac.PodTemplateSpec().WithLabels(labels).WithSpec(corev1ac.PodSpec().
				WithContainers(corev1ac.Container().WithName("manager").WithImage(ImageRepo + "/dpf-system:" + inv.imageTag)))))
	if _, err := cs.AppsV1().Deployments(ns).Apply(ctx, dep, opts); err != nil {
		return n, fmt.Errorf("apply Deployment: %w", err)
	}
	n++
	gknn = append(gknn, "Deployment.apps/dpf-provisioning-controller-manager."+ns)

	for _, iss := range []struct{ name, spec string }{
		{"dpf-provisioning-selfsigned-issuer", `{"selfSigned":{}}`},
		{dpf.Issuer, `{"ca":{"secretName":"dpf-provisioning-ca-secret"}}`},
	} {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("cert-manager.io/v1")
		u.SetKind("Issuer")
		u.SetName(iss.name)
		u.SetNamespace(ns)
		u.SetLabels(inv.labels())
		if err := unstructured.SetNestedField(u.Object, map[string]any{}, "spec"); err != nil {
			return n, err
		}
		if strings.Contains(iss.spec, "selfSigned") {
			_ = unstructured.SetNestedField(u.Object, map[string]any{}, "spec", "selfSigned")
		} else {
			_ = unstructured.SetNestedField(u.Object, "dpf-provisioning-ca-secret", "spec", "ca", "secretName")
		}
		data, err := u.MarshalJSON()
		if err != nil {
			return n, err
		}
		if _, err := dyn.Resource(gvrIssuer).Namespace(ns).Patch(ctx, iss.name, types.ApplyPatchType, data, opts.ToPatchOptions()); err != nil {
			return n, fmt.Errorf("apply Issuer %s: %w", iss.name, err)
		}
		n++
		gknn = append(gknn, "Issuer.cert-manager.io/"+iss.name+"."+ns)
	}

	// The applyset parent: a Secret with no data, labelled with the ID and
	// annotated with the inventory, "<Kind>.<group>/<name>.<namespace>"
	// (GroupKindNamespaceName; empty namespace for cluster-scoped objects).
	sort.Strings(gknn)
	parent := corev1ac.Secret(dpf.ApplySetParentName(dpf.ProvisioningComponent), ns).
		WithLabels(map[string]string{dpf.ApplySetIDLabel: dpf.ApplySetID(dpf.ProvisioningComponent, ns), "dpu.nvidia.com/component": "dpf-provisioning-controller-manager"}).
		WithAnnotations(map[string]string{dpf.ApplySetInventoryAnnotation: strings.Join(gknn, ","), dpf.ApplySetToolingAnnotation: "dpf-operator/v0"})
	if _, err := cs.CoreV1().Secrets(ns).Apply(ctx, parent, opts); err != nil {
		return n, fmt.Errorf("apply applyset parent: %w", err)
	}
	return n + 1, nil
}

// ImageRepo is the (never pulled) registry path of the simulated images.
const ImageRepo = "nvcr.io/nvidia/doca"
