package dpf

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
)

func TestApplySetIDMatchesLiveCluster(t *testing.T) {
	// The applyset.kubernetes.io/part-of label of dpf-provisioning-dms-role
	// in a public backup from a live v25.4.0 cluster (github.com/szigmon/
	// openshift-dpf, dpf-provisioning-dms-role-backup.yaml).
	const want = "applyset-Adq8goFoWaQPC0zfgewt_Rel4dQcv2VCXrCRMgjWOuo-v1"
	if got := ApplySetID(ProvisioningComponent, DefaultNamespace); got != want {
		t.Fatalf("ApplySetID = %s, want %s", got, want)
	}
}

func TestLookup(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"v25.4.0", "v25.4.0"}, {"25.4", "v25.4.0"}, {"v25.7.1", "v25.7.0"}, {"v25.10.0-rc.2", "v25.10.0"}, {"v25.1.1", "v25.1.0"},
	} {
		r, err := Lookup(tc.in)
		if err != nil || r.Version != tc.want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", tc.in, r.Version, err, tc.want)
		}
	}
	if _, err := Lookup("v24.1"); err == nil {
		t.Error("Lookup(v24.1) succeeded, want error")
	}
}

func TestParseArgs(t *testing.T) {
	a := ParseArgs(OperatorArgs("worker-1", "127.0.0.2", ""))
	if a.KubeNodeRef != "worker-1" || a.ExternalCertificate != "TODO" || a.CertPath() || a.Namespace != DefaultNamespace || a.DMSIP != "127.0.0.2" {
		t.Fatalf("operator args parsed wrong: %+v", a)
	}
	b := ParseArgs([]string{"--k8s-env", "false", "--kubeconfig", "/k", "--bogus", "x"})
	if !b.CertPath() || b.K8sEnv != "false" || b.Kubeconfig != "/k" || len(b.Unknown) != 1 {
		t.Fatalf("bare flags parsed wrong: %+v", b)
	}
	c := ParseArgs([]string{"/bin/bash", "-c", "/opt/dpf/dmsinit.sh --cmd register --external-certificate=none"})
	if !c.CertPath() || c.Cmd != "register" {
		t.Fatalf("bash -c string parsed wrong: %+v", c)
	}
}

func TestCallTables(t *testing.T) {
	k8s := Calls(ScriptB, false)
	for _, c := range k8s {
		if c.Resource == "secrets" || c.Resource == "certificates" {
			t.Errorf("Kubernetes-mode B calls include %s", c.Command)
		}
	}
	var secret *Call
	for _, c := range Calls(ScriptB, true) {
		if c.Resource == "secrets" {
			c := c
			secret = &c
		}
	}
	if secret == nil {
		t.Fatal("certificate path has no secret read")
	}
	got := secret.Request(DefaultNamespace, "worker-1")
	want := access.Request{Verb: "get", Resource: "secrets", Namespace: DefaultNamespace, Name: "worker-1-server-secret"}
	if got != want {
		t.Fatalf("secret request = %+v, want %+v", got, want)
	}
	var status bool
	for _, c := range Calls(ScriptE, false) {
		if c.Subresource == "status" {
			status = true
			if r := c.Request(DefaultNamespace, "n"); r.Name != "" {
				t.Errorf("serial-named call resolved a name: %+v", r)
			}
		}
	}
	if !status {
		t.Fatal("v25.7 calls lack the dpudevices/status patch")
	}
}

func TestParseForbidden(t *testing.T) {
	for _, tc := range []struct {
		line string
		want access.Request
	}{
		{`Error from server (Forbidden): secrets "w-server-secret" is forbidden: User "system:serviceaccount:dpf-operator-system:dpf-provisioning-dms-service-account" cannot get resource "secrets" in API group "" in the namespace "dpf-operator-system"`,
			access.Request{Verb: "get", Resource: "secrets", Namespace: "dpf-operator-system", Name: "w-server-secret"}},
		{`[dmsinit] Error (create_dpu_device:412): Failed to update PCI address for DPUDevice mt1: Error from server (Forbidden): dpudevices.provisioning.dpu.nvidia.com "mt1" is forbidden: User "u" cannot patch resource "dpudevices/status" in API group "provisioning.dpu.nvidia.com" in the namespace "ns"`,
			access.Request{Verb: "patch", Group: GroupProvisioning, Resource: "dpudevices", Subresource: "status", Namespace: "ns", Name: "mt1"}},
		{`Error from server (Forbidden): nodes "w" is forbidden: User "u" cannot get resource "nodes" in API group "" at the cluster scope`,
			access.Request{Verb: "get", Resource: "nodes", Name: "w"}},
		{`Error from server (Forbidden): error when creating "STDIN": dpunodes.provisioning.dpu.nvidia.com is forbidden: User "u" cannot create resource "dpunodes" in API group "provisioning.dpu.nvidia.com" in the namespace "ns"`,
			access.Request{Verb: "create", Group: GroupProvisioning, Resource: "dpunodes", Namespace: "ns"}},
	} {
		f, ok := ParseForbidden(tc.line)
		if !ok || f.Request != tc.want {
			t.Errorf("ParseForbidden(%q) = %+v, %v; want %+v", tc.line, f.Request, ok, tc.want)
		}
		if ok && forbiddenMessage(f.User, f.Request) == "" {
			t.Error("empty message")
		}
	}
	// Round trip: what the sim prints parses back to the same request.
	r := access.Request{Verb: "get", Resource: "secrets", Namespace: "ns", Name: "x"}
	if f, ok := ParseForbidden(forbiddenMessage("u", r)); !ok || f.Request != r {
		t.Fatalf("round trip failed: %+v", f)
	}
}

func TestParseErrorLine(t *testing.T) {
	e, ok := ParseErrorLine(FormatError("check_and_install_kubectl", 210, "Failed to check kubectl version: boom"))
	if !ok || e.Func != "check_and_install_kubectl" || e.Line != 210 || e.Message != "Failed to check kubectl version: boom" {
		t.Fatalf("got %+v %v", e, ok)
	}
	if _, ok := ParseErrorLine("[dmsinit] Creating DPUNode"); ok {
		t.Fatal("log line parsed as error")
	}
}

func FuzzParseLogLines(f *testing.F) {
	f.Add(`Error from server (Forbidden): secrets "x" is forbidden: User "u" cannot get resource "secrets" in API group "" in the namespace "n"`)
	f.Add("[dmsinit] Error (main:1): No DPUs found on this system, exiting")
	f.Fuzz(func(t *testing.T, s string) {
		ParseErrorLine(s)
		ParseForbidden(s)
		ParseArgs([]string{s})
		ImageTag(s)
		ScriptForImageTag(s)
	})
}

func TestMatrixMatchesRoles(t *testing.T) {
	r, _ := Lookup("v25.4.0")
	// The v25.4.0 role allows the Kubernetes-mode path but not the Secret
	// reads of the certificate path nor a newer dmsinit's status patch.
	for _, c := range Calls(ScriptB, false) {
		if !r.Allowed(c.Request(DefaultNamespace, "n")) {
			t.Errorf("v25.4.0 role denies its own Kubernetes-mode call %s", c.Command)
		}
	}
	if r.Allowed(access.Request{Verb: "get", Resource: "secrets", Namespace: DefaultNamespace, Name: "n-server-secret"}) {
		t.Error("v25.4.0 role allows secrets")
	}
	if r.Allowed(access.Request{Verb: "patch", Group: GroupProvisioning, Resource: "dpudevices", Subresource: "status", Namespace: DefaultNamespace}) {
		t.Error("v25.4.0 role allows dpudevices/status")
	}
	r7, _ := Lookup("v25.7.0")
	for _, c := range Calls(ScriptE, false) {
		if !r7.Allowed(c.Request(DefaultNamespace, "n")) {
			t.Errorf("v25.7.0 role denies its own call %s", c.Command)
		}
	}
}

// forbiddenMessage renders the API server's Forbidden text for a request, as
// kubectl shows it after "Error from server (Forbidden): ".
func forbiddenMessage(user string, r access.Request) string {
	s := schema.GroupResource{Group: r.Group, Resource: r.Resource}.String()
	if r.Name != "" {
		s += ` "` + r.Name + `"`
	}
	s += ` is forbidden: User "` + user + `" cannot ` + r.Verb + ` resource "` + r.RBACResource() + `" in API group "` + r.Group + `"`
	if r.Namespace != "" {
		return s + ` in the namespace "` + r.Namespace + `"`
	}
	return s + " at the cluster scope"
}
