package lint

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
	rbacv1 "k8s.io/api/rbac/v1"
)

var update = flag.Bool("update", false, "rewrite golden files")

const (
	dmsNS = "dpf-operator-system"
	dmsSA = "dpf-provisioning-dms-service-account"
	// What the DPF docs run on a host outside Kubernetes (non-k8s mode).
	nonK8sArgs = "--external-certificate none --k8s-env false --dms-ip 127.0.10.5 --node-reboot-method gNOI --kubeconfig /etc/dpf/kubeconfig"
	// What the operator passes to dms-init in Kubernetes mode.
	k8sArgs = "--cmd register --dms-conf-dir /opt/dpf/dms --dms-image-dir /bfb --kube-node-ref worker-1 --dms-port 9339 --dms-ip 127.0.10.5 --external-certificate TODO"
)

type scenario struct {
	name    string
	scripts []string
	rbac    string
	args    string
	sa      string
	formats []string
	failOn  Certainty
	config  string // a configuration file's content
}

var scenarios = []scenario{
	{name: "v25.4.0-non-k8s", scripts: []string{"testdata/dmsinit-v25.4.0.sh"}, rbac: "testdata/role-v25.4.0.yaml", args: nonK8sArgs,
		formats: []string{FormatText, FormatJSON, FormatSARIF, FormatJUnit}},
	{name: "v25.4.0-k8s", scripts: []string{"testdata/dmsinit-v25.4.0.sh"}, rbac: "testdata/role-v25.4.0.yaml", args: k8sArgs,
		formats: []string{FormatText}},
	{name: "v25.7-on-v25.4.0-role", scripts: []string{"testdata/dmsinit-v25.7.sh"}, rbac: "testdata/role-v25.4.0.yaml", args: k8sArgs,
		formats: []string{FormatText, FormatSARIF}},
	{name: "patterns", scripts: []string{"testdata/patterns.sh"}, rbac: "testdata/role-patterns.yaml", args: "--node worker-2", sa: "provisioner",
		formats: []string{FormatText, FormatJSON, FormatSARIF}},
}

func runScenario(t *testing.T, sc scenario) *Report {
	t.Helper()
	set, err := rbac.LoadManifests(sc.rbac)
	if err != nil {
		t.Fatal(err)
	}
	var scripts []*Script
	for _, p := range sc.scripts {
		s, err := LoadScript(p)
		if err != nil {
			t.Fatal(err)
		}
		scripts = append(scripts, s)
	}
	args, err := ParseArgs(sc.args)
	if err != nil {
		t.Fatal(err)
	}
	sa := sc.sa
	if sa == "" {
		sa = dmsSA
	}
	var cfg Config
	if sc.config != "" {
		file := filepath.Join(t.TempDir(), ConfigFile)
		if err := os.WriteFile(file, []byte(sc.config), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := LoadConfig(file)
		if err != nil {
			t.Fatal(err)
		}
		cfg = *c
	}
	return Lint(scripts, set, Options{Args: args, DefaultNamespace: dmsNS, Subject: access.ServiceAccount(dmsNS, sa), ServiceAccount: dmsNS + "/" + sa,
		FailOn: sc.failOn, Suppress: cfg.Suppressions})
}

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
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from its golden file (go test -update rewrites it):\n%s", name, got)
	}
}

func TestGolden(t *testing.T) {
	for _, sc := range scenarios {
		for _, format := range sc.formats {
			t.Run(sc.name+"."+format, func(t *testing.T) {
				r := runScenario(t, sc)
				var b bytes.Buffer
				code := 0
				if r.Failed() {
					code = 3
				}
				if err := Write(&b, r, format, "test", code); err != nil {
					t.Fatal(err)
				}
				if (format == FormatJSON || format == FormatSARIF) && !json.Valid(b.Bytes()) {
					t.Fatalf("%s output is not valid JSON", format)
				}
				golden(t, sc.name+"."+format, b.Bytes())
			})
		}
	}
}

func find(r *Report, verb, resource, sub string) []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Request.Verb == verb && f.Request.Resource == resource && f.Request.Subresource == sub {
			out = append(out, f)
		}
	}
	return out
}

// The v25.4.0 regression: in non-Kubernetes mode dmsinit.sh reads the
// node's server Secret, which the v25.4.0 ClusterRole does not allow.
func TestV2540NonK8sDeniesSecretReads(t *testing.T) {
	r := runScenario(t, scenarios[0])
	secrets := find(r, "get", "secrets", "")
	if len(secrets) != 3 {
		t.Fatalf("got %d secret reads, want ca.crt, tls.crt and tls.key: %+v", len(secrets), secrets)
	}
	for _, f := range secrets {
		if f.Certainty != Certain || f.Decision.Allowed || f.Func != "create_certificate" || f.Request.Namespace != dmsNS {
			t.Errorf("secret read %s:%d: %s %s %+v, want a certain denial in create_certificate", f.File, f.Line, f.Certainty, f.Needs(), f.Decision)
		}
		if f.StderrHidden {
			t.Errorf("%s:%d: v25.4.0 does not hide the secret read's stderr", f.File, f.Line)
		}
	}
	if !r.Failed() || r.Denied != 3 {
		t.Errorf("Denied = %d, Failed = %v; want exactly the 3 secret reads", r.Denied, r.Failed())
	}
}

// With the operator's Kubernetes-mode arguments the certificate path is
// skipped and every certain call is allowed.
func TestV2540K8sModeAllowed(t *testing.T) {
	r := runScenario(t, scenarios[1])
	if r.Failed() {
		t.Fatalf("Kubernetes mode denied %d certain calls", r.Denied)
	}
	certain := 0
	for _, f := range r.Findings {
		if f.Certainty == Certain {
			certain++
			if !f.Decision.Allowed {
				t.Errorf("%s:%d %s denied", f.File, f.Line, f.Needs())
			}
		}
	}
	if certain == 0 {
		t.Fatal("no certain calls: the flag parsing or main were not followed")
	}
	for _, f := range find(r, "get", "secrets", "") {
		if f.Certainty == Certain {
			t.Errorf("%s:%d: secret read is certain in Kubernetes mode", f.File, f.Line)
		}
	}
}

// The v25.7 script patches dpudevices/status, which v25.4.0's role lacks;
// kubectl patch reads the status before it patches, so both are denied.
func TestV257OnV2540RoleDeniesStatusPatch(t *testing.T) {
	r := runScenario(t, scenarios[2])
	for _, verb := range []string{"get", "patch"} {
		fs := find(r, verb, "dpudevices", "status")
		if len(fs) != 1 || fs[0].Certainty != Certain || fs[0].Decision.Allowed {
			t.Fatalf("status %s findings = %+v, want one certain denial", verb, fs)
		}
	}
	if r.Denied != 2 {
		t.Errorf("Denied = %d, want only the status read and patch", r.Denied)
	}
	secrets := find(r, "get", "secrets", "")
	for _, f := range secrets {
		if !f.StderrHidden || !f.FailureIgnored {
			t.Errorf("%s:%d: the C-style secret wait hides stderr and ignores failures", f.File, f.Line)
		}
	}
}

func TestSuggestClosesTheGap(t *testing.T) {
	r := runScenario(t, scenarios[0])
	sa := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: dmsSA, Namespace: dmsNS}
	y, err := Suggest(r, sa)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "v25.4.0-non-k8s.suggest", y)
	extra, err := rbac.ParseManifests("suggestion", y)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := rbac.LoadManifests("testdata/role-v25.4.0.yaml")
	set.Merge(extra)
	args, _ := ParseArgs(nonK8sArgs)
	s, _ := LoadScript("testdata/dmsinit-v25.4.0.sh")
	after := Lint([]*Script{s}, set, Options{Args: args, DefaultNamespace: dmsNS, Subject: access.ServiceAccount(dmsNS, dmsSA)})
	if after.Failed() {
		t.Errorf("with the suggested RBAC %d certain calls are still denied", after.Denied)
	}
}

func TestMalformedScript(t *testing.T) {
	_, err := LoadScript("testdata/malformed.sh")
	var se *ScriptError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want *ScriptError", err)
	}
	if se.File != "testdata/malformed.sh" || se.Line != 9 {
		t.Errorf("error at %s:%d, want testdata/malformed.sh:9 (%v)", se.File, se.Line, err)
	}
	if !strings.HasPrefix(err.Error(), "testdata/malformed.sh:9:") {
		t.Errorf("message %q does not start with file:line", err)
	}
	for _, src := range []string{"if true; then", "echo $(", "case x in", "f() {", "cat <<EOF\nno end", "(("} {
		if _, err := ParseScript("x.sh", []byte(src)); !errors.As(err, &se) {
			t.Errorf("%q: err = %v, want *ScriptError", src, err)
		}
	}
}

func TestKindsFromCRDs(t *testing.T) {
	kinds, err := LoadKinds("testdata/crd-widgets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, word := range []string{"widget", "widgets", "wd", "Widget", "widgets.example.com"} {
		k, ok := dpf.LookupKind(kinds, word)
		if !ok || k.Resource != "widgets" || k.Group != "example.com" || k.Namespaced || k.Version != "v1" {
			t.Errorf("%s → %+v, %v", word, k, ok)
		}
	}
	if _, ok := dpf.LookupKind(kinds, "dpudevice"); !ok {
		t.Error("built-in kinds missing after LoadKinds")
	}
	s, _ := ParseScript("w.sh", []byte("kubectl get wd w1\n"))
	r := Lint([]*Script{s}, &rbac.Set{}, Options{Kinds: kinds, Args: ArgsFromArgv(nil), Subject: access.ServiceAccount("a", "b")})
	if got := summarize(r.Findings); len(got) != 1 || got[0] != "certain get widgets.example.com w1 (cluster-scoped)" {
		t.Errorf("findings = %v", got)
	}
	if _, err := ParseCRDs("bad.yaml", []byte("kind: CustomResourceDefinition\napiVersion: apiextensions.k8s.io/v1\nspec: {group: x}\n")); err == nil {
		t.Error("a CRD without names parsed")
	}
	var me *rbac.ManifestError
	if _, err := LoadKinds("testdata/malformed-role.yaml"); !errors.As(err, &me) || me.Line != 7 {
		t.Errorf("malformed CRD file: err = %v, want a ManifestError at line 7", err)
	}
}

func TestContainerArgv(t *testing.T) {
	data, err := os.ReadFile("testdata/dms-pod.yaml")
	if err != nil {
		t.Fatal(err)
	}
	argv, err := ContainerArgv("testdata/dms-pod.yaml", data, "dms-init")
	if err != nil {
		t.Fatal(err)
	}
	args, ok := ScriptArgv(argv, "testdata/dmsinit-v25.4.0.sh")
	if !ok {
		t.Fatalf("no script in %q", argv)
	}
	if got := strings.Join(args, " "); got != k8sArgs {
		t.Errorf("args = %q, want %q", got, k8sArgs)
	}
	if _, err := ContainerArgv("p.yaml", data, "nope"); err == nil || !strings.Contains(err.Error(), "rshim-preflight, dms-init, dms") {
		t.Errorf("missing container: err = %v", err)
	}
	var me *rbac.ManifestError
	if _, err := ContainerArgv("p.yaml", []byte("spec: [\n"), "x"); !errors.As(err, &me) {
		t.Errorf("malformed pod: err = %v", err)
	}
	deploy := []byte("kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n      - name: c\n        command: [bash, -c, '/opt/x/run.sh --a b']\n")
	argv, err = ContainerArgv("d.yaml", deploy, "c")
	if err != nil {
		t.Fatal(err)
	}
	if args, ok := ScriptArgv(argv, "run.sh"); !ok || strings.Join(args, " ") != "--a b" {
		t.Errorf("bash -c: args = %q, %v", args, ok)
	}
}

func TestWriteUnknownFormat(t *testing.T) {
	err := Write(&bytes.Buffer{}, &Report{}, "yaml", "x", 0)
	if !errors.Is(err, ErrUnknownFormat) || !strings.Contains(err.Error(), "text,json,sarif") {
		t.Errorf("err = %v", err)
	}
}

// A suggestion leaves out what dpfdoctor's policy never grants, and names it.
func TestSuggestLeavesOutWhatPolicyRefuses(t *testing.T) {
	src := "kubectl get secrets -A\nkubectl create clusterrolebinding x --clusterrole=cluster-admin --serviceaccount=a:b\nkubectl get cm a -n " + dmsNS + "\n"
	r := lintSource(t, src, ArgsFromArgv(nil))
	y, err := Suggest(r, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: dmsSA, Namespace: dmsNS})
	if err != nil {
		t.Fatal(err)
	}
	out := string(y)
	for _, want := range []string{"# Not suggested", "# - list secrets (cluster-scoped)", "# - create clusterrolebindings.rbac.authorization.k8s.io (cluster-scoped)"} {
		if !strings.Contains(out, want) {
			t.Errorf("suggestion lacks %q:\n%s", want, out)
		}
	}
	set, err := rbac.ParseManifests("suggestion", y)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.ClusterRoles) != 0 || len(set.Roles) != 1 || len(set.Roles[0].Rules) != 1 || set.Roles[0].Rules[0].Resources[0] != "configmaps" {
		t.Errorf("suggested RBAC: %+v", set)
	}
}
