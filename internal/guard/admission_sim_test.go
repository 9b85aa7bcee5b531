package guard

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// policyName is deploy/admissionpolicy.yaml's ValidatingAdmissionPolicy.
const policyName = "dpfdoctor-guard-grants"

// grantServiceAccounts are the provisioning ServiceAccounts of every DPF
// release, whose grants the guard writes.
func grantServiceAccounts() []string {
	var sas []string
	for _, r := range dpf.Releases() {
		if r.ServiceAccount != "" && !slices.Contains(sas, r.ServiceAccount) {
			sas = append(sas, r.ServiceAccount)
		}
	}
	return sas
}

// fullGrant renders, as the plan would, a grant for sa in ns of every
// namespaced call that any DPF release's dms-init or host agent makes for
// node.
func fullGrant(t *testing.T, ns, sa, node string) []client.Object {
	t.Helper()
	var grants []rbac.Grant
	for _, r := range dpf.Releases() {
		for _, c := range dpf.AllCalls(r.Script) {
			if !c.ClusterScoped {
				grants = append(grants, rbac.Grant{Request: c.Request(ns, node), Reason: c.Func})
			}
		}
	}
	objs, err := rbac.Render(grants, rbac.RenderOptions{Subject: rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ns}})
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// applyAs server-side applies obj with dyn, as the guard writes.
func applyAs(ctx context.Context, dyn dynamic.Interface, obj client.Object) error {
	m, err := k8sruntime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: m}
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	gvr := kindResources[u.GetKind()]
	_, err = dyn.Resource(gvr).Namespace(u.GetNamespace()).Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: "dpfdoctor-test", Force: true})
	return err
}

// The guard's token holds escalate and bind on its grant Roles, so RBAC
// alone would let it write any rule there and bind it to itself.
// deploy/admissionpolicy.yaml holds its writes to a grant's shape: as the
// guard, a grant of every namespaced call of every DPF release is admitted
// for each provisioning ServiceAccount, while Secret lists, pods/exec, a
// binding to the guard itself and a grant for another ServiceAccount are
// refused, and the cluster admin's writes are not the policy's business.
func TestDeployAdmissionPolicyConfinesGrants(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := startEnv(t, sim.Options{Nodes: 1, Scenario: "healthy"})
	ns := e.c.Namespace
	asGuard := dynamic.NewForConfigOrDie(e.guardCfg)
	grantName := plan.NamePrefix + e.c.Release.ServiceAccount

	role := func(name string, rules ...rbacv1.PolicyRule) *rbacv1.Role {
		return &rbacv1.Role{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Rules: rules}
	}
	binding := func(name, role string, subjects ...rbacv1.Subject) *rbacv1.RoleBinding {
		return &rbacv1.RoleBinding{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role}, Subjects: subjects}
	}
	sa := func(name string) rbacv1.Subject {
		return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}
	}
	secretList := role(grantName, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list"}})
	podsExec := role(grantName, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods/exec"}, Verbs: []string{"create"}})

	// The API server enforces a new policy once its informer has it.
	e.eventually(30*time.Second, "the policy enforced", func() bool {
		err := applyAs(ctx, asGuard, podsExec)
		return err != nil && strings.Contains(err.Error(), policyName)
	})

	for _, name := range grantServiceAccounts() {
		objs := fullGrant(t, ns, name, e.c.Nodes[0])
		if len(objs) != 2 {
			t.Fatalf("the grant for %s renders %d objects, want a Role and its RoleBinding", name, len(objs))
		}
		for _, obj := range objs {
			if err := applyAs(ctx, asGuard, obj); err != nil {
				t.Errorf("the guard's write of %s %s was refused: %v", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName(), err)
			}
		}
	}

	for _, tc := range []struct {
		what string
		obj  client.Object
	}{
		{"a Role listing Secrets", secretList},
		{"a Role reading Secrets by any name", role(grantName, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}})},
		{"a Role with pods/exec", podsExec},
		{"a Role with a wildcard verb", role(grantName, rbacv1.PolicyRule{APIGroups: []string{dpf.GroupProvisioning}, Resources: []string{"dpunodes"}, Verbs: []string{"*"}})},
		{"a Role granting RBAC", role(grantName, rbacv1.PolicyRule{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"roles"}, Verbs: []string{"get"}})},
		{"a Role reading the CA's Secret", role(grantName, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"},
			ResourceNames: []string{"dpf-provisioning-ca-secret"}, Verbs: []string{"get"}})},
		{"a Role rewriting the DPFOperatorConfig", role(grantName, rbacv1.PolicyRule{APIGroups: []string{"operator.dpu.nvidia.com"},
			Resources: []string{"dpfoperatorconfigs"}, Verbs: []string{"update", "patch"}})},
		{"a Role deleting DPUNodes", role(grantName, rbacv1.PolicyRule{APIGroups: []string{dpf.GroupProvisioning}, Resources: []string{"dpunodes"}, Verbs: []string{"delete"}})},
		{"the grant bound to the guard", binding(grantName, grantName, sa(ControllerName))},
		{"the grant bound to its ServiceAccount and the guard", binding(grantName, grantName, sa(e.c.Release.ServiceAccount), sa(ControllerName))},
		{"the grant bound to a ServiceAccount of another namespace", binding(grantName, grantName, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: e.c.Release.ServiceAccount, Namespace: "default"})},
		{"a binding to the guard's own Role", binding(grantName, ControllerName, sa(e.c.Release.ServiceAccount))},
	} {
		if _, ok := tc.obj.(*rbacv1.RoleBinding); ok {
			// roleRef is immutable: start from no binding, as a first repair does.
			if err := e.cs.RbacV1().RoleBindings(ns).Delete(ctx, grantName, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				t.Fatal(err)
			}
		}
		err := applyAs(ctx, asGuard, tc.obj)
		if err == nil || !strings.Contains(err.Error(), policyName) {
			t.Errorf("%s: the guard's write was not refused by %s: %v", tc.what, policyName, err)
		}
	}

	// The admin is outside the policy: a hand-made grant is RBAC's business.
	if err := applyAs(ctx, e.dyn, secretList); err != nil {
		t.Errorf("the admin's write: %v", err)
	}
}

// On DPF v25.10 the host agent replaces dms-init and runs as its own
// ServiceAccount. With deploy/'s RBAC and admission policy, the guard
// repairs a host-agent role that lacks `create dpunodes` with a grant
// named after that ServiceAccount.
func TestGuardRepairsHostAgent(t *testing.T) {
	t.Parallel()
	rel, err := dpf.Lookup("v25.10.0")
	if err != nil {
		t.Fatal(err)
	}
	role, binding := rel.InventoryRBAC(dpf.DefaultNamespace)
	dropped := false
	for i, r := range role.Rules {
		if slices.Contains(r.Resources, "dpunodes") && slices.Contains(r.Verbs, "create") {
			role.Rules[i].Verbs = slices.DeleteFunc(slices.Clone(r.Verbs), func(v string) bool { return v == "create" })
			dropped = true
		}
	}
	if !dropped {
		t.Fatalf("v25.10.0's host-agent role grants no `create dpunodes`: %+v", role.Rules)
	}
	set := &rbac.Set{}
	if err := errors.Join(set.Add(role), set.Add(binding)); err != nil {
		t.Fatal(err)
	}
	e := startEnv(t, sim.Options{Version: rel.Version, Nodes: 3, Scenario: "healthy", RBAC: set})
	e.eventually(60*time.Second, "3 host-agent pods failing", func() bool { return e.failingCount() == 3 })
	e.startGuard(Options{Mode: ModeRepair})
	e.eventually(90*time.Second, "every pod Ready after the guard's repair", func() bool { return e.allReady(3) })
	name := plan.NamePrefix + rel.ServiceAccount
	if _, err := e.cs.RbacV1().RoleBindings(e.c.Namespace).Get(context.Background(), name, metav1.GetOptions{}); err != nil {
		t.Errorf("the grant's binding %s: %v", name, err)
	}
}
