package policy_test

import (
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/diagnose"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
	"github.com/dpfdoctor/dpfdoctor/internal/policy"
)

const ns = dpf.DefaultNamespace

// goodPlan grants get on one Secret and get on one Node (so it has a Role
// and a ClusterRole with their bindings).
func goodPlan(t *testing.T) *plan.Plan {
	t.Helper()
	b := &evidence.Bundle{Install: evidence.Install{Namespace: ns, Version: "v25.4.0"},
		Pods: []evidence.Pod{{Name: "w1-dms", Node: "w1", ServiceAccount: "dpf-provisioning-dms-service-account"}}}
	d := &diagnose.Diagnosis{Findings: []diagnose.Finding{{Class: diagnose.ClassRBACForbidden, Code: diagnose.CodeRBACForbidden, Fixable: true,
		Pods: []string{"w1-dms"}, Missing: []access.Request{
			{Verb: "get", Resource: "secrets", Namespace: ns, Name: "w1-server-secret"},
			{Verb: "get", Resource: "nodes", Name: "w1"},
		}}}}
	p, err := plan.Build(plan.Input{Diagnosis: d, Bundle: b})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Changes) != 4 {
		t.Fatalf("want Role, ClusterRole and bindings, got %d changes", len(p.Changes))
	}
	return p
}

func find(p *plan.Plan, kind string) *unstructured.Unstructured {
	for _, c := range p.Changes {
		if c.Ref().Kind == kind {
			return c.Object
		}
	}
	return nil
}

func setRule(u *unstructured.Unstructured, rule map[string]any) {
	_ = unstructured.SetNestedSlice(u.Object, []any{rule}, "rules")
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*plan.Plan, *policy.Observed)
		want   string // a fragment of the violation; "" = allowed
	}{
		{"good plan", func(*plan.Plan, *policy.Observed) {}, ""},
		{"wildcard verb", func(p *plan.Plan, _ *policy.Observed) {
			setRule(find(p, "Role"), map[string]any{"apiGroups": []any{""}, "resources": []any{"secrets"}, "verbs": []any{"*"}})
		}, "wildcard"},
		{"list secrets", func(p *plan.Plan, _ *policy.Observed) {
			setRule(find(p, "Role"), map[string]any{"apiGroups": []any{""}, "resources": []any{"secrets"}, "verbs": []any{"get", "list"}})
		}, "one by one"},
		{"watch secrets", func(p *plan.Plan, _ *policy.Observed) {
			setRule(find(p, "Role"), map[string]any{"apiGroups": []any{""}, "resources": []any{"secrets"}, "verbs": []any{"watch"}})
		}, "one by one"},
		{"wildcard resource", func(p *plan.Plan, _ *policy.Observed) {
			setRule(find(p, "Role"), map[string]any{"apiGroups": []any{""}, "resources": []any{"*"}, "verbs": []any{"get"}})
		}, "wildcard"},
		{"escalate", func(p *plan.Plan, _ *policy.Observed) {
			setRule(find(p, "Role"), map[string]any{"apiGroups": []any{"rbac.authorization.k8s.io"}, "resources": []any{"roles"}, "verbs": []any{"escalate"}})
		}, "never granted"},
		{"namespaced resource in a ClusterRole", func(p *plan.Plan, _ *policy.Observed) {
			setRule(find(p, "ClusterRole"), map[string]any{"apiGroups": []any{""}, "resources": []any{"secrets"}, "verbs": []any{"get"}})
		}, "not a ClusterRole"},
		{"other namespace", func(p *plan.Plan, _ *policy.Observed) { find(p, "Role").SetNamespace("kube-system") }, "not the DPF namespace"},
		{"name without prefix", func(p *plan.Plan, _ *policy.Observed) { find(p, "Role").SetName("dms-extra") }, "must start with"},
		{"no managed-by label", func(p *plan.Plan, _ *policy.Observed) { find(p, "Role").SetLabels(nil) }, "must be labelled"},
		{"other kind", func(p *plan.Plan, _ *policy.Observed) { find(p, "Role").SetKind("ConfigMap") }, "only ClusterRole"},
		{"binding to another subject", func(p *plan.Plan, _ *policy.Observed) {
			_ = unstructured.SetNestedSlice(find(p, "RoleBinding").Object, []any{map[string]any{"kind": "Group", "name": "system:authenticated"}}, "subjects")
		}, "is not the DMS ServiceAccount"},
		{"binding to the operator's role", func(p *plan.Plan, _ *policy.Observed) {
			_ = unstructured.SetNestedField(find(p, "ClusterRoleBinding").Object, "dpf-provisioning-dms-role", "roleRef", "name")
		}, "not a dpfdoctor role"},
		{"name in the operator's inventory", func(p *plan.Plan, o *policy.Observed) {
			o.Inventory = []plan.ObjectRef{{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: find(p, "ClusterRole").GetName()}}
		}, "operator's inventory"},
		{"existing object not managed by dpfdoctor", func(p *plan.Plan, o *policy.Observed) {
			o.Existing[plan.RefOf(find(p, "Role"))] = map[string]string{"app": "other"}
		}, "not managed by dpfdoctor"},
		{"existing object in the operator's applyset", func(p *plan.Plan, o *policy.Observed) {
			o.Existing[plan.RefOf(find(p, "Role"))] = map[string]string{plan.ManagedByLabel: plan.ManagedByValue, dpf.ApplySetPartOfLabel: "applyset-x-v1"}
		}, "part of applyset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := goodPlan(t)
			o := policy.Observed{Existing: map[plan.ObjectRef]map[string]string{}}
			tc.mutate(p, &o)
			err := policy.Check(p, o)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, policy.ErrRefused) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a refusal containing %q", err, tc.want)
			}
		})
	}
}

// NamespacedOnly refuses a plan with a ClusterRole and passes the same
// plan without its cluster-scoped objects.
func TestNamespacedOnly(t *testing.T) {
	p := goodPlan(t)
	o := policy.Observed{}
	only := policy.Options{NamespacedOnly: true}
	if err := policy.Check(p, o); err != nil {
		t.Fatalf("refused without the option: %v", err)
	}
	err := policy.CheckWith(p, o, only)
	if !errors.Is(err, policy.ErrRefused) || !strings.Contains(err.Error(), "ClusterRole "+find(p, "ClusterRole").GetName()+" is cluster-scoped") {
		t.Fatalf("got %v, want a refusal of the ClusterRole", err)
	}
	var kept []plan.Change
	for _, c := range p.Changes {
		if c.Ref().Namespace != "" {
			kept = append(kept, c)
		}
	}
	p.Changes = kept
	if err := policy.CheckWith(p, o, only); err != nil || len(kept) != 2 {
		t.Fatalf("%d namespaced changes refused: %v", len(kept), err)
	}
}

func TestParseInventory(t *testing.T) {
	got, err := policy.ParseInventory("ClusterRole.rbac.authorization.k8s.io/dpf-provisioning-dms-role.,ServiceAccount./dpf-provisioning-dms-service-account.dpf-operator-system," +
		"Deployment.apps/dpf-operator-system/dpf-provisioning-controller-manager,ServiceAccount//dpf-operator-system/sa,ClusterRoleBinding.rbac.authorization.k8s.io//crb")
	if err != nil {
		t.Fatal(err)
	}
	want := []plan.ObjectRef{
		{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "dpf-provisioning-dms-role"},
		{Kind: "ServiceAccount", Namespace: ns, Name: "dpf-provisioning-dms-service-account"},
		{Group: "apps", Kind: "Deployment", Namespace: ns, Name: "dpf-provisioning-controller-manager"},
		{Kind: "ServiceAccount", Namespace: ns, Name: "sa"},
		{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding", Name: "crb"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if _, err := policy.ParseInventory("garbage,ClusterRole.rbac.authorization.k8s.io/x."); err == nil {
		t.Error("garbage entry accepted without an error")
	}
}

func FuzzParseInventory(f *testing.F) {
	f.Add("ClusterRole.rbac.authorization.k8s.io/dpf-provisioning-dms-role.")
	f.Add("ServiceAccount//ns/name")
	f.Fuzz(func(t *testing.T, s string) { _, _ = policy.ParseInventory(s) })
}
