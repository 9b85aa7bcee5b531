package rbac

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	rbacv1 "k8s.io/api/rbac/v1"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestRenderGolden(t *testing.T) {
	const prov = "provisioning.dpu.nvidia.com"
	r := func(verb, group, resource, sub, ns, name string) access.Request {
		return access.Request{Verb: verb, Group: group, Resource: resource, Subresource: sub, Namespace: ns, Name: name}
	}
	grants := []Grant{
		{Request: r("get", "", "secrets", "", testNS, "worker-2-server-secret"), Reason: "dmsinit.sh:230 get secret"},
		{Request: r("get", "", "secrets", "", testNS, "worker-1-server-secret"), Reason: "dmsinit.sh:230 get secret"},
		{Request: r("patch", prov, "dpudevices", "status", testNS, "abc"), Reason: "dmsinit.sh:301 patch dpudevice"},
		{Request: r("get", prov, "dpudevices", "status", testNS, "abc"), Reason: "dmsinit.sh:301 patch dpudevice"},
		{Request: r("list", prov, "dpudevices", "", testNS, ""), Reason: "dmsinit.sh:12 get dpudevices"},
		{Request: r("get", prov, "dpudevices", "", testNS, "abc"), Reason: "covered by the list? no: get for every name below"},
		{Request: r("get", prov, "dpudevices", "", testNS, ""), Reason: "dmsinit.sh:13 get dpudevice $x"},
		{Request: r("get", "", "configmaps", "", "other", "c"), Reason: "other namespace"},
		{Request: r("get", "", "nodes", "", "", "worker-1"), Reason: "dmsinit.sh:400 get node"},
		{Request: access.Request{Verb: "get", NonResourceURL: "/metrics"}, Reason: "metrics"},
	}
	tests := []struct {
		name  string
		grant []Grant
		opts  RenderOptions
	}{
		{name: "render-names", grant: grants, opts: RenderOptions{Subject: sa("dpf-provisioning-dms-service-account"),
			Labels: map[string]string{"team": "dpf"}, Annotations: map[string]string{"note": "x"}}},
		{name: "render-namespace-scope", grant: grants[:7], opts: RenderOptions{Subject: sa("dpf-provisioning-dms-service-account"), Scope: ScopeNamespace, NamePrefix: "fix-"}},
		{name: "render-group", grant: grants[8:9], opts: RenderOptions{Subject: rbacv1.Subject{Kind: rbacv1.GroupKind, Name: "system:serviceaccounts"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := Render(tc.grant, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			y, err := ToYAML(objs)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, y)
			// The rendered objects read back, and grant exactly what was asked.
			back, err := ParseManifests(tc.name, y)
			if err != nil {
				t.Fatal(err)
			}
			subj := access.Subject{User: "system:serviceaccount:" + tc.opts.Subject.Namespace + ":" + tc.opts.Subject.Name,
				Groups: []string{"system:serviceaccounts"}}
			for _, g := range tc.grant {
				if d := back.Evaluate(subj, g.Request); !d.Allowed {
					t.Errorf("rendered RBAC denies %s: %s", g.Request, d.Reason)
				}
			}
			if strings.Contains(string(y), "*") {
				t.Error("rendered RBAC uses a wildcard")
			}
		})
	}
}

func TestRenderStableAndMinimal(t *testing.T) {
	grants := []Grant{
		{Request: access.Request{Verb: "get", Resource: "secrets", Namespace: testNS, Name: "b"}},
		{Request: access.Request{Verb: "get", Resource: "secrets", Namespace: testNS, Name: "a"}},
	}
	opts := RenderOptions{Subject: sa("dms")}
	first, _ := Render(grants, opts)
	second, _ := Render([]Grant{grants[1], grants[0]}, opts)
	a, _ := ToYAML(first)
	b, _ := ToYAML(second)
	if string(a) != string(b) {
		t.Errorf("grant order changes the output:\n%s\n---\n%s", a, b)
	}
	if len(first) != 2 {
		t.Fatalf("got %d objects, want a Role and a RoleBinding", len(first))
	}
	role := first[0].(*rbacv1.Role)
	if role.Name != "dpfdoctor-dms" || len(role.Rules) != 1 || strings.Join(role.Rules[0].ResourceNames, ",") != "a,b" {
		t.Errorf("role = %+v, want dpfdoctor-dms with one rule for names a,b", role)
	}
	// Denied for names the grant does not list.
	set, _ := ParseManifests("x", a)
	if set.Evaluate(access.ServiceAccount(testNS, "dms"), access.Request{Verb: "get", Resource: "secrets", Namespace: testNS, Name: "c"}).Allowed {
		t.Error("rendered Role allows a secret it was not asked for")
	}
}

func TestRenderErrors(t *testing.T) {
	ok := RenderOptions{Subject: sa("dms")}
	tests := []struct {
		name  string
		grant access.Request
		opts  RenderOptions
		is    error
	}{
		{name: "wildcard verb", grant: access.Request{Verb: "*", Resource: "secrets", Namespace: "a"}, opts: ok, is: ErrInvalidGrant},
		{name: "wildcard resource", grant: access.Request{Verb: "get", Resource: "*", Namespace: "a"}, opts: ok, is: ErrInvalidGrant},
		{name: "no verb", grant: access.Request{Resource: "secrets"}, opts: ok, is: ErrInvalidGrant},
		{name: "no resource", grant: access.Request{Verb: "get"}, opts: ok, is: ErrInvalidGrant},
		{name: "namespaced URL", grant: access.Request{Verb: "get", NonResourceURL: "/x", Namespace: "a"}, opts: ok, is: ErrInvalidGrant},
		{name: "ServiceAccount without namespace", grant: access.Request{Verb: "get", Resource: "pods", Namespace: "a"},
			opts: RenderOptions{Subject: rbacv1.Subject{Kind: "ServiceAccount", Name: "x"}}},
		{name: "no subject name", grant: access.Request{Verb: "get", Resource: "pods", Namespace: "a"}, opts: RenderOptions{Subject: rbacv1.Subject{Namespace: "a"}}},
		{name: "bad scope", grant: access.Request{Verb: "get", Resource: "pods", Namespace: "a"}, opts: RenderOptions{Subject: sa("x"), Scope: "everything"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Render([]Grant{{Request: tc.grant}}, tc.opts)
			if err == nil {
				t.Fatal("Render succeeded")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want %v", err, tc.is)
			}
		})
	}
	if objs, err := Render(nil, ok); err != nil || len(objs) != 0 {
		t.Errorf("Render(nil) = %v, %v; want nothing", objs, err)
	}
}
