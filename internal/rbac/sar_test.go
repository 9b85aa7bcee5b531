package rbac_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// apiServer is the one envtest API server of this package, started by the
// first test that needs it and stopped in TestMain.
var apiServer struct {
	once sync.Once
	env  *envtest.Environment
	kube kubernetes.Interface
	err  error
}

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard()) // envtest logs through controller-runtime
	code := m.Run()
	if apiServer.env != nil {
		_ = apiServer.env.Stop()
	}
	os.Exit(code)
}

func kubeClient(t *testing.T) kubernetes.Interface {
	t.Helper()
	if testing.Short() {
		t.Skip("starts an API server")
	}
	apiServer.once.Do(func() {
		if sim.Assets() == "" {
			apiServer.err = fmt.Errorf("envtest binaries not found: export KUBEBUILDER_ASSETS=$(hack/envtest.sh)")
			return
		}
		env := &envtest.Environment{}
		env.ControlPlane.GetAPIServer().Configure().Set("authorization-mode", "RBAC")
		cfg, err := env.Start()
		if err != nil {
			apiServer.err = fmt.Errorf("start envtest: %w", err)
			return
		}
		apiServer.env = env
		apiServer.kube, apiServer.err = kubernetes.NewForConfig(cfg)
	})
	if apiServer.err != nil {
		t.Fatal(apiServer.err)
	}
	return apiServer.kube
}

func rule(verbs, groups, resources string, names ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: strings.Split(verbs, ","), APIGroups: strings.Split(groups, ","),
		Resources: strings.Split(resources, ","), ResourceNames: names}
}

func role(ns, name string, rules ...rbacv1.PolicyRule) *rbacv1.Role {
	return &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Rules: rules}
}

func clusterRole(name string, rules ...rbacv1.PolicyRule) *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}
}

func roleBinding(ns, name, kind, roleName string, subjects ...rbacv1.Subject) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: roleName}, Subjects: subjects}
}

func clusterRoleBinding(name, roleName string, subjects ...rbacv1.Subject) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: roleName}, Subjects: subjects}
}

func saSubject(ns, name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}
}

func userSubject(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}
}

func groupSubject(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: name}
}

func get(group, resource, ns, name string) access.Request {
	return access.Request{Verb: "get", Group: group, Resource: resource, Namespace: ns, Name: name}
}

// sarCase is one edge case: RBAC objects, a question and the API server's
// answer. Every case grants only its own API group, path or subject, so the
// cases share one API server without granting each other anything.
type sarCase struct {
	name    string
	objects []runtime.Object
	subj    access.Subject
	req     access.Request
	allowed bool
	// invalid: the API server refuses the last object (validation); the
	// local evaluator still sees it and must match nothing with it.
	invalid bool
}

func sarCases() []sarCase {
	saDefault := []runtime.Object{
		role("sa-default", "r", rule("get", "sa-default.test", "widgets")),
		roleBinding("sa-default", "rb", "Role", "r", rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: "dms"}),
	}
	saGroup := []runtime.Object{
		role("sa-group", "r", rule("get", "sa-group.test", "widgets")),
		roleBinding("sa-group", "rb", "Role", "r", groupSubject("system:serviceaccounts:sa-group")),
	}
	allSA := []runtime.Object{
		clusterRole("all-sa", rule("get", "all-sa.test", "widgets")),
		clusterRoleBinding("all-sa", "all-sa", groupSubject("system:serviceaccounts")),
	}
	user := []runtime.Object{
		clusterRole("user", rule("get", "user.test", "widgets")),
		clusterRoleBinding("user", "user", userSubject("alice")),
	}
	rbToCR := []runtime.Object{
		clusterRole("rb-cr", rule("get", "rb-cr.test", "widgets")),
		roleBinding("rb-cr", "rb", "ClusterRole", "rb-cr", saSubject("rb-cr", "dms")),
	}
	names := []runtime.Object{
		role("names", "r", rule("get,list", "", "secrets", "node-1-server-secret")),
		roleBinding("names", "rb", "Role", "r", saSubject("names", "dms")),
	}
	sub := []runtime.Object{
		clusterRole("sub-status", rule("patch", "sub.test", "dpudevices/status")),
		clusterRoleBinding("sub-status", "sub-status", saSubject("sub", "dms")),
		clusterRole("sub-resource", rule("patch", "sub.test", "gadgets")),
		clusterRoleBinding("sub-resource", "sub-resource", saSubject("sub", "dms")),
	}
	otherNS := []runtime.Object{
		role("rb-ns-a", "r", rule("get", "rb-ns.test", "widgets")),
		roleBinding("rb-ns-a", "rb", "Role", "r", saSubject("rb-ns-b", "dms")),
	}
	nonResource := []runtime.Object{
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "nonres"},
			Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, NonResourceURLs: []string{"/nonres/*"}}}},
		clusterRoleBinding("nonres", "nonres", userSubject("erin")),
	}
	agg := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "agg"}, AggregationRule: &rbacv1.AggregationRule{
		ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"agg.test/aggregate-to-agg": "true"}}}}}
	agg.Rules = []rbacv1.PolicyRule{rule("get", "agg-own.test", "widgets")} // replaced by the aggregation
	aggPart := clusterRole("agg-part", rule("get", "agg.test", "widgets"))
	aggPart.Labels = map[string]string{"agg.test/aggregate-to-agg": "true"}

	sa := access.ServiceAccount
	return []sarCase{
		{name: "RoleBinding: ServiceAccount subject without namespace is in the binding's namespace", objects: saDefault,
			subj: sa("sa-default", "dms"), req: get("sa-default.test", "widgets", "sa-default", "w"), allowed: true},
		{name: "RoleBinding: ServiceAccount subject without namespace, same name elsewhere", objects: saDefault,
			subj: sa("elsewhere", "dms"), req: get("sa-default.test", "widgets", "sa-default", "w")},
		{name: "ClusterRoleBinding: ServiceAccount subject without namespace is refused and matches nothing", invalid: true,
			objects: []runtime.Object{
				clusterRole("crb-sa-no-ns", rule("get", "crb-sa-no-ns.test", "widgets")),
				clusterRoleBinding("crb-sa-no-ns", "crb-sa-no-ns", rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: "dms"}),
			},
			subj: sa("default", "dms"), req: get("crb-sa-no-ns.test", "widgets", "default", "w")},
		{name: "User subject", objects: user, subj: access.Subject{User: "alice"}, req: get("user.test", "widgets", "", "w"), allowed: true},
		{name: "User subject is not a group", objects: user,
			subj: access.Subject{User: "bob", Groups: []string{"alice"}}, req: get("user.test", "widgets", "", "w")},
		{name: "User subject named as a ServiceAccount's user",
			objects: []runtime.Object{
				clusterRole("sa-user", rule("get", "sa-user.test", "widgets")),
				clusterRoleBinding("sa-user", "sa-user", userSubject("system:serviceaccount:sa-user:dms")),
			},
			subj: sa("sa-user", "dms"), req: get("sa-user.test", "widgets", "sa-user", "w"), allowed: true},
		{name: "Group subject",
			objects: []runtime.Object{
				role("group", "r", rule("get", "group.test", "widgets")),
				roleBinding("group", "rb", "Role", "r", userSubject("nobody-here"), groupSubject("team-a")),
			},
			subj: access.Subject{User: "carol", Groups: []string{"team-a"}}, req: get("group.test", "widgets", "group", "w"), allowed: true},
		{name: "Group system:serviceaccounts", objects: allSA,
			subj: sa("anywhere", "x"), req: get("all-sa.test", "widgets", "anywhere", "w"), allowed: true},
		{name: "Group system:serviceaccounts holds no user", objects: allSA,
			subj: access.Subject{User: "dave", Groups: []string{"system:authenticated"}}, req: get("all-sa.test", "widgets", "anywhere", "w")},
		{name: "Group system:serviceaccounts:<ns> in a RoleBinding", objects: saGroup,
			subj: sa("sa-group", "x"), req: get("sa-group.test", "widgets", "sa-group", "w"), allowed: true},
		{name: "Group system:serviceaccounts:<ns>, ServiceAccount of another namespace", objects: saGroup,
			subj: sa("elsewhere", "x"), req: get("sa-group.test", "widgets", "sa-group", "w")},
		{name: "RoleBinding to a ClusterRole: the binding's namespace", objects: rbToCR,
			subj: sa("rb-cr", "dms"), req: get("rb-cr.test", "widgets", "rb-cr", "w"), allowed: true},
		{name: "RoleBinding to a ClusterRole: another namespace", objects: rbToCR,
			subj: sa("rb-cr", "dms"), req: get("rb-cr.test", "widgets", "rb-cr-other", "w")},
		{name: "RoleBinding to a ClusterRole: cluster-scoped request", objects: rbToCR,
			subj: sa("rb-cr", "dms"), req: get("rb-cr.test", "widgets", "", "w")},
		{name: "resourceNames: get the named object", objects: names,
			subj: sa("names", "dms"), req: get("", "secrets", "names", "node-1-server-secret"), allowed: true},
		{name: "resourceNames: get another object", objects: names,
			subj: sa("names", "dms"), req: get("", "secrets", "names", "node-2-server-secret")},
		{name: "resourceNames: list", objects: names,
			subj: sa("names", "dms"), req: access.Request{Verb: "list", Resource: "secrets", Namespace: "names"}},
		{name: "subresource rule: the subresource", objects: sub, subj: sa("sub", "dms"),
			req: access.Request{Verb: "patch", Group: "sub.test", Resource: "dpudevices", Subresource: "status", Namespace: "sub", Name: "d"}, allowed: true},
		{name: "subresource rule: not the resource", objects: sub, subj: sa("sub", "dms"),
			req: access.Request{Verb: "patch", Group: "sub.test", Resource: "dpudevices", Namespace: "sub", Name: "d"}},
		{name: "resource rule: not its subresource", objects: sub, subj: sa("sub", "dms"),
			req: access.Request{Verb: "patch", Group: "sub.test", Resource: "gadgets", Subresource: "status", Namespace: "sub", Name: "g"}},
		{name: "*/status: any status subresource",
			objects: []runtime.Object{
				clusterRole("star-sub", rule("patch", "star-sub.test", "*/status")),
				clusterRoleBinding("star-sub", "star-sub", saSubject("star-sub", "dms")),
			},
			subj: sa("star-sub", "dms"), req: access.Request{Verb: "patch", Group: "star-sub.test", Resource: "things", Subresource: "status", Namespace: "star-sub"}, allowed: true},
		{name: "* verbs",
			objects: []runtime.Object{
				clusterRole("star-verb", rule("*", "star-verb.test", "widgets")),
				clusterRoleBinding("star-verb", "star-verb", saSubject("star-verb", "dms")),
			},
			subj: sa("star-verb", "dms"), req: access.Request{Verb: "deletecollection", Group: "star-verb.test", Resource: "widgets", Namespace: "star-verb"}, allowed: true},
		{name: "* resources include subresources",
			objects: []runtime.Object{
				clusterRole("star-res", rule("get", "star-res.test", "*")),
				clusterRoleBinding("star-res", "star-res", saSubject("star-res", "dms")),
			},
			subj: sa("star-res", "dms"), req: access.Request{Verb: "get", Group: "star-res.test", Resource: "widgets", Subresource: "scale", Namespace: "star-res", Name: "w"}, allowed: true},
		{name: "* apiGroups",
			objects: []runtime.Object{
				clusterRole("star-group", rule("get", "*", "widgets")),
				clusterRoleBinding("star-group", "star-group", saSubject("star-group", "dms")),
			},
			subj: sa("star-group", "dms"), req: get("anything.test", "widgets", "star-group", "w"), allowed: true},
		{name: "aggregated ClusterRole",
			objects: []runtime.Object{aggPart, agg, clusterRoleBinding("agg", "agg", saSubject("agg", "dms"))},
			subj:    sa("agg", "dms"), req: get("agg.test", "widgets", "agg", "w"), allowed: true},
		{name: "aggregated ClusterRole: its own rules are replaced",
			objects: []runtime.Object{aggPart, agg, clusterRoleBinding("agg", "agg", saSubject("agg", "dms"))},
			subj:    sa("agg", "dms"), req: get("agg-own.test", "widgets", "agg", "w")},
		{name: "RoleBinding in another namespace", objects: otherNS,
			subj: sa("rb-ns-b", "dms"), req: get("rb-ns.test", "widgets", "rb-ns-b", "w")},
		{name: "RoleBinding binds a ServiceAccount of another namespace", objects: otherNS,
			subj: sa("rb-ns-b", "dms"), req: get("rb-ns.test", "widgets", "rb-ns-a", "w"), allowed: true},
		{name: "RoleBinding to a missing Role",
			objects: []runtime.Object{roleBinding("missing", "rb", "Role", "nope", saSubject("missing", "dms"))},
			subj:    sa("missing", "dms"), req: get("", "configmaps", "missing", "c")},
		{name: "ClusterRoleBinding to a missing ClusterRole",
			objects: []runtime.Object{clusterRoleBinding("missing", "missing-nope", saSubject("missing", "dms"))},
			subj:    sa("missing", "dms"), req: get("", "configmaps", "missing", "c")},
		{name: "nonResourceURLs: prefix", objects: nonResource,
			subj: access.Subject{User: "erin"}, req: access.Request{Verb: "get", NonResourceURL: "/nonres/metrics"}, allowed: true},
		{name: "nonResourceURLs: another path", objects: nonResource,
			subj: access.Subject{User: "erin"}, req: access.Request{Verb: "get", NonResourceURL: "/other"}},
		{name: "nonResourceURLs: another verb", objects: nonResource,
			subj: access.Subject{User: "erin"}, req: access.Request{Verb: "post", NonResourceURL: "/nonres/metrics"}},
		{name: "built-in: /version for an authenticated subject",
			subj: sa("nobody", "dms"), req: access.Request{Verb: "get", NonResourceURL: "/version"}, allowed: true},
		{name: "built-in: /version for a subject without groups",
			subj: access.Subject{User: "nobody"}, req: access.Request{Verb: "get", NonResourceURL: "/version"}},
		{name: "built-in: self access reviews",
			subj: sa("nobody", "dms"), req: access.Request{Verb: "create", Group: "authorization.k8s.io", Resource: "selfsubjectaccessreviews"}, allowed: true},
		{name: "built-in: no access reviews for others",
			subj: sa("nobody", "dms"), req: access.Request{Verb: "create", Group: "authorization.k8s.io", Resource: "subjectaccessreviews"}},
	}
}

// TestEvaluateAgreesWithAPIServer creates each case's RBAC objects on a real
// API server and checks that Evaluate answers as its SubjectAccessReview
// does.
func TestEvaluateAgreesWithAPIServer(t *testing.T) {
	kc := kubeClient(t)
	ctx := context.Background()
	cases := sarCases()
	for _, tc := range cases {
		for i, obj := range tc.objects {
			err := create(ctx, kc, serverCopy(obj, tc.objects))
			switch {
			case tc.invalid && i == len(tc.objects)-1:
				if !apierrors.IsInvalid(err) {
					t.Fatalf("%s: create %T: want invalid, got %v", tc.name, obj, err)
				}
			case err != nil && !apierrors.IsAlreadyExists(err):
				t.Fatalf("%s: create %T: %v", tc.name, obj, err)
			}
		}
	}
	settle(t, kc)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := kc.AuthorizationV1().SubjectAccessReviews().Create(ctx, tc.req.SubjectAccessReview(tc.subj), metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			set := &rbac.Set{}
			for _, obj := range tc.objects {
				if err := set.Add(obj); err != nil {
					t.Fatal(err)
				}
			}
			local := set.Evaluate(tc.subj, tc.req)
			if res.Status.Allowed != tc.allowed {
				t.Errorf("API server: allowed %t (%s), the case says %t", res.Status.Allowed, res.Status.Reason, tc.allowed)
			}
			if local.Allowed != res.Status.Allowed {
				t.Errorf("Evaluate: allowed %t (%s%s), API server: %t (%s)", local.Allowed, local.By, local.Reason, res.Status.Allowed, res.Status.Reason)
			}
		})
	}
}

// serverCopy is obj as the API server should hold it. envtest runs no
// controller-manager, so an aggregating ClusterRole gets the rules of the
// ClusterRoles it selects here, in place of its own, as the aggregation
// controller writes them (clusterroleaggregation_controller.go).
func serverCopy(obj runtime.Object, all []runtime.Object) runtime.Object {
	cr, ok := obj.(*rbacv1.ClusterRole)
	if !ok || cr.AggregationRule == nil {
		return obj
	}
	cr = cr.DeepCopy()
	cr.Rules = nil
	for _, sel := range cr.AggregationRule.ClusterRoleSelectors {
		s, err := metav1.LabelSelectorAsSelector(&sel)
		if err != nil {
			continue
		}
		for _, o := range all {
			if part, ok := o.(*rbacv1.ClusterRole); ok && part.Name != cr.Name && s.Matches(labels.Set(part.Labels)) {
				cr.Rules = append(cr.Rules, part.Rules...)
			}
		}
	}
	return cr
}

func create(ctx context.Context, kc kubernetes.Interface, obj runtime.Object) error {
	rb := kc.RbacV1()
	var err error
	switch o := obj.(type) {
	case *rbacv1.Role:
		if err = namespace(ctx, kc, o.Namespace); err == nil {
			_, err = rb.Roles(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		}
	case *rbacv1.RoleBinding:
		if err = namespace(ctx, kc, o.Namespace); err == nil {
			_, err = rb.RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		}
	case *rbacv1.ClusterRole:
		_, err = rb.ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
	case *rbacv1.ClusterRoleBinding:
		_, err = rb.ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
	default:
		err = fmt.Errorf("unexpected %T", obj)
	}
	return err
}

func namespace(ctx context.Context, kc kubernetes.Interface, name string) error {
	_, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// settle waits, briefly, until the authorizer's informers have seen every
// object created so far: it creates one more Role, RoleBinding, ClusterRole
// and ClusterRoleBinding and polls until reviews show both grants. Each
// informer delivers its kind's objects in order, so the earlier ones are in.
func settle(t *testing.T, kc kubernetes.Interface) {
	t.Helper()
	ctx := context.Background()
	for _, obj := range []runtime.Object{
		role("settle", "r", rule("get", "settle.test", "roles")),
		roleBinding("settle", "rb", "Role", "r", userSubject("settle")),
		clusterRole("settle", rule("get", "settle.test", "clusterroles")),
		clusterRoleBinding("settle", "settle", userSubject("settle")),
	} {
		if err := create(ctx, kc, obj); err != nil {
			t.Fatalf("create %T: %v", obj, err)
		}
	}
	subj := access.Subject{User: "settle"}
	err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, req := range []access.Request{get("settle.test", "roles", "settle", ""), get("settle.test", "clusterroles", "", "")} {
			res, err := kc.AuthorizationV1().SubjectAccessReviews().Create(ctx, req.SubjectAccessReview(subj), metav1.CreateOptions{})
			if err != nil || !res.Status.Allowed {
				return false, err
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("RBAC informers did not catch up: %v", err)
	}
}
