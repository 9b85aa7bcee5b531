package rbac

import (
	"strings"
	"testing"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const testNS = "dpf-operator-system"

func sa(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: testNS}
}

func testSet() *Set {
	meta := func(name, ns string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: ns} }
	ref := func(kind, name string) rbacv1.RoleRef {
		return rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: name}
	}
	return &Set{
		ClusterRoles: []rbacv1.ClusterRole{
			{ObjectMeta: meta("dms", ""), Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{"provisioning.dpu.nvidia.com"}, Resources: []string{"dpunodes"}, Verbs: []string{"create", "get"}},
				{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list"}},
			}},
			{ObjectMeta: meta("status-patcher", ""), Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{"provisioning.dpu.nvidia.com"}, Resources: []string{"dpudevices/status"}, Verbs: []string{"patch"}},
			}},
			{ObjectMeta: metav1.ObjectMeta{Name: "cm-reader", Labels: map[string]string{"agg": "yes"}}, Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}},
			}},
			{ObjectMeta: meta("aggregate", ""), AggregationRule: &rbacv1.AggregationRule{
				ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"agg": "yes"}}},
			}},
			{ObjectMeta: meta("api-reader", ""), Rules: []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}},
		},
		ClusterRoleBindings: []rbacv1.ClusterRoleBinding{
			{ObjectMeta: meta("dms", ""), RoleRef: ref("ClusterRole", "dms"), Subjects: []rbacv1.Subject{sa("dms-sa")}},
			{ObjectMeta: meta("all-sa-aggregate", ""), RoleRef: ref("ClusterRole", "aggregate"),
				Subjects: []rbacv1.Subject{{Kind: rbacv1.GroupKind, Name: "system:serviceaccounts:" + testNS}}},
			{ObjectMeta: meta("metrics", ""), RoleRef: ref("ClusterRole", "api-reader"), Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "alice"}}},
			{ObjectMeta: meta("sa-without-namespace", ""), RoleRef: ref("ClusterRole", "status-patcher"), Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "dms-sa"}}},
		},
		Roles: []rbacv1.Role{
			{ObjectMeta: meta("secret-reader", testNS), Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"node-1-server-secret"}, Verbs: []string{"get"}},
			}},
		},
		RoleBindings: []rbacv1.RoleBinding{
			{ObjectMeta: meta("secret-reader", testNS), RoleRef: ref("Role", "secret-reader"),
				Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "dms-sa"}}}, // namespace defaults to the binding's
			{ObjectMeta: meta("status", "other"), RoleRef: ref("ClusterRole", "status-patcher"), Subjects: []rbacv1.Subject{sa("dms-sa")}},
			{ObjectMeta: meta("dangling", testNS), RoleRef: ref("Role", "nope"), Subjects: []rbacv1.Subject{sa("dms-sa")}},
		},
	}
}

func TestEvaluate(t *testing.T) {
	dms := access.ServiceAccount(testNS, "dms-sa")
	other := access.ServiceAccount(testNS, "someone-else")
	req := func(verb, group, resource, sub, ns, name string) access.Request {
		return access.Request{Verb: verb, Group: group, Resource: resource, Subresource: sub, Namespace: ns, Name: name}
	}
	tests := []struct {
		name    string
		subj    access.Subject
		req     access.Request
		allowed bool
		by      string // substring of By (allowed) or Reason (denied)
	}{
		{name: "ClusterRoleBinding rule 1", subj: dms, req: req("get", "provisioning.dpu.nvidia.com", "dpunodes", "", testNS, "n1"), allowed: true,
			by: "ClusterRole dms rule 1 via ClusterRoleBinding dms"},
		{name: "cluster-scoped resource", subj: dms, req: req("get", "", "nodes", "", "", "worker-1"), allowed: true, by: "ClusterRole dms rule 2"},
		{name: "verb not granted", subj: dms, req: req("patch", "provisioning.dpu.nvidia.com", "dpunodes", "", testNS, "n1"), by: "no rule"},
		{name: "resourceNames: the named secret", subj: dms, req: req("get", "", "secrets", "", testNS, "node-1-server-secret"), allowed: true,
			by: "Role dpf-operator-system/secret-reader rule 1 via RoleBinding dpf-operator-system/secret-reader"},
		{name: "resourceNames: another secret", subj: dms, req: req("get", "", "secrets", "", testNS, "node-2-server-secret"),
			by: "allows only names node-1-server-secret"},
		{name: "resourceNames: list is not get", subj: dms, req: req("list", "", "secrets", "", testNS, ""), by: "no rule"},
		{name: "resourceNames: get without a name", subj: dms, req: req("get", "", "secrets", "", testNS, ""), by: "allows only names"},
		{name: "subresource granted", subj: dms, req: req("patch", "provisioning.dpu.nvidia.com", "dpudevices", "status", "other", "d1"), allowed: true,
			by: "ClusterRole status-patcher rule 1 via RoleBinding other/status"},
		{name: "subresource is not the resource", subj: dms, req: req("patch", "provisioning.dpu.nvidia.com", "dpudevices", "", "other", "d1"), by: "no rule"},
		{name: "resource is not the subresource", subj: dms, req: req("get", "provisioning.dpu.nvidia.com", "dpunodes", "status", testNS, "n1"), by: "no rule"},
		{name: "RoleBinding to a ClusterRole only in its namespace", subj: dms, req: req("patch", "provisioning.dpu.nvidia.com", "dpudevices", "status", testNS, "d1"),
			by: "no rule (RoleBinding dpf-operator-system/dangling references missing Role nope)"},
		{name: "RoleBinding never grants cluster-scoped requests", subj: dms, req: req("patch", "provisioning.dpu.nvidia.com", "dpudevices", "status", "", "d1"), by: "no rule"},
		{name: "ServiceAccount subject without namespace in a ClusterRoleBinding matches nobody", subj: dms,
			req: req("patch", "provisioning.dpu.nvidia.com", "dpudevices", "status", "third", "d1"), by: "no rule"},
		{name: "Group subject system:serviceaccounts:<ns> with aggregation", subj: other, req: req("get", "", "configmaps", "", testNS, "x"), allowed: true,
			by: "ClusterRole cm-reader rule 1 (aggregated into ClusterRole aggregate) via ClusterRoleBinding all-sa-aggregate"},
		{name: "Group subject does not match other namespaces' ServiceAccounts", subj: access.ServiceAccount("elsewhere", "x"),
			req: req("get", "", "configmaps", "", testNS, "x"), by: "no RoleBinding or ClusterRoleBinding applies"},
		{name: "User subject and non-resource URL", subj: access.Subject{User: "alice"}, req: access.Request{Verb: "get", NonResourceURL: "/metrics"}, allowed: true,
			by: "ClusterRole api-reader rule 1 via ClusterRoleBinding metrics"},
		{name: "non-resource URL not granted", subj: dms, req: access.Request{Verb: "get", NonResourceURL: "/metrics"}, by: "no rule"},
		{name: "built-in discovery allows GET /version", subj: dms, req: access.Request{Verb: "get", NonResourceURL: "/version"}, allowed: true,
			by: "ClusterRole system:discovery rule 1 via ClusterRoleBinding system:discovery (built-in)"},
		{name: "built-in discovery allows GET /apis/x", subj: dms, req: access.Request{Verb: "get", NonResourceURL: "/apis/provisioning.dpu.nvidia.com"}, allowed: true},
		{name: "built-in discovery needs an authenticated subject", subj: access.Subject{User: "anon", Groups: []string{"system:unauthenticated"}},
			req: access.Request{Verb: "get", NonResourceURL: "/apis"}, by: "no RoleBinding or ClusterRoleBinding"},
		{name: "public-info-viewer for unauthenticated", subj: access.Subject{User: "anon", Groups: []string{"system:unauthenticated"}},
			req: access.Request{Verb: "get", NonResourceURL: "/version"}, allowed: true, by: "system:public-info-viewer"},
		{name: "built-in basic-user allows self access reviews", subj: dms,
			req: req("create", "authorization.k8s.io", "selfsubjectaccessreviews", "", "", ""), allowed: true, by: "system:basic-user"},
		{name: "no binding at all", subj: access.ServiceAccount("x", "y"), req: req("get", "", "nodes", "", "", "n"), by: "no RoleBinding or ClusterRoleBinding applies to system:serviceaccount:x:y"},
	}
	s := testSet()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := s.Evaluate(tc.subj, tc.req)
			if d.Allowed != tc.allowed {
				t.Fatalf("Allowed = %v, want %v (%+v)", d.Allowed, tc.allowed, d)
			}
			got := d.Reason
			if d.Allowed {
				got = d.By
			}
			if !strings.Contains(got, tc.by) {
				t.Errorf("decision %q, want it to contain %q", got, tc.by)
			}
		})
	}
}

func TestEvaluateNamed(t *testing.T) {
	dms := access.ServiceAccount(testNS, "dms-sa")
	s := testSet()
	secret := func(name string) access.Request {
		return access.Request{Verb: "get", Resource: "secrets", Namespace: testNS, Name: name}
	}
	if d := s.EvaluateNamed(dms, secret("node-1-server-secret")); !d.Allowed || !strings.Contains(d.By, "Role dpf-operator-system/secret-reader rule 1") {
		t.Errorf("named secret: %+v", d)
	}
	if d := s.EvaluateNamed(dms, secret("node-2-server-secret")); d.Allowed {
		t.Errorf("unnamed secret allowed: %+v", d)
	}
	// Allowed by an unrestricted rule, so not by a name.
	nodes := access.Request{Verb: "get", Resource: "nodes", Name: "worker-1"}
	if !s.Evaluate(dms, nodes).Allowed || s.EvaluateNamed(dms, nodes).Allowed {
		t.Errorf("EvaluateNamed counted a rule without resourceNames")
	}
	if s.EvaluateNamed(dms, access.Request{Verb: "get", NonResourceURL: "/version"}).Allowed {
		t.Errorf("EvaluateNamed counted a built-in rule")
	}
}

func TestEvaluateSetOverridesBuiltin(t *testing.T) {
	s := &Set{ClusterRoles: []rbacv1.ClusterRole{{ObjectMeta: metav1.ObjectMeta{Name: "system:discovery"}}, {ObjectMeta: metav1.ObjectMeta{Name: "system:public-info-viewer"}}}}
	if d := s.Evaluate(access.ServiceAccount(testNS, "x"), access.Request{Verb: "get", NonResourceURL: "/version"}); d.Allowed {
		t.Errorf("a cluster whose discovery roles are emptied still allowed /version: %+v", d)
	}
}

func TestSetHelpers(t *testing.T) {
	s := &Set{}
	if err := s.Add(&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "r"}, Rules: []rbacv1.PolicyRule{{ResourceNames: []string{"b", "a"}}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(&rbacv1.RoleBindingList{Items: []rbacv1.RoleBinding{{ObjectMeta: metav1.ObjectMeta{Name: "rb"}}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(&rbacv1.ClusterRole{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(&metav1.Status{}); err == nil {
		t.Error("Add(Status) succeeded")
	}
	s.SetDefaultNamespace("ns1")
	if s.Roles[0].Namespace != "ns1" || s.RoleBindings[0].Namespace != "ns1" {
		t.Errorf("default namespace not applied: %+v", s)
	}
	if got := s.ResourceNames(); strings.Join(got, ",") != "a,b" {
		t.Errorf("ResourceNames = %v", got)
	}
	if got := s.BindingNamespaces(); strings.Join(got, ",") != "ns1" {
		t.Errorf("BindingNamespaces = %v", got)
	}
	if s.Len() != 3 {
		t.Errorf("Len = %d", s.Len())
	}
}
