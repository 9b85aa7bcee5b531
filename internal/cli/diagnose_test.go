package cli

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/dpfdoctor/dpfdoctor/internal/diagnose"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/diagnose")

// run executes dpfdoctor with args and returns its exit code and output.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	s, _, out, errOut := genericiooptions.NewTestIOStreams()
	cmd := NewRootCommand(s)
	code = Run(cmd, args, errOut)
	return code, out.String(), errOut.String()
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	file := filepath.Join("testdata", "diagnose", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/cli -run %s -update)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test ./internal/cli -run %s -update to accept):\n--- got ---\n%s", file, t.Name(), got)
	}
}

// Output from a saved bundle, in every format, against golden files.
func TestDiagnoseGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"mixed.table", []string{"--from-bundle", "testdata/mixed.yaml"}, ExitProblems},
		{"mixed.wide", []string{"--from-bundle", "testdata/mixed.yaml", "-o", "wide"}, ExitProblems},
		{"mixed.node", []string{"--from-bundle", "testdata/mixed.yaml", "--node", "w3", "--node", "w7"}, ExitProblems},
		{"mixed.json", []string{"--from-bundle", "testdata/mixed.yaml", "-o", "json"}, ExitProblems},
		{"mixed.yaml", []string{"--from-bundle", "testdata/mixed.yaml", "-o", "yaml"}, ExitProblems},
		{"healthy.table", []string{"--from-bundle", "testdata/healthy.yaml"}, ExitOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, append([]string{"diagnose"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.code, errOut)
			}
			if errOut != "" {
				t.Errorf("stderr: %q", errOut)
			}
			golden(t, tc.name, out)
		})
	}
}

// A --node that names nothing in the bundle is a usage error, not an empty report.
func TestDiagnoseUnknownNodeInBundle(t *testing.T) {
	code, out, errOut := run(t, "diagnose", "--from-bundle", "testdata/mixed.yaml", "--node", "w3", "--node", "w99")
	if code != ExitUsage || out != "" || !strings.Contains(errOut, `--node "w99" names no DPU node`) {
		t.Errorf("exit %d; stdout %q; stderr %s", code, out, errOut)
	}
}

// --node on a bundle scopes the nodes too: the other nodes' missing or
// stranded pods are not this node's findings.
func TestDiagnoseBundleNodeScopesNodes(t *testing.T) {
	bundle := filepath.Join("..", "diagnose", "testdata", "pod_missing", "deleted-pod.yaml")
	codes := func(args ...string) []string {
		t.Helper()
		_, out, errOut := run(t, append([]string{"diagnose", "--from-bundle", bundle, "-o", "json"}, args...)...)
		var d diagnose.Diagnosis
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("%v: %s", err, errOut)
		}
		var c []string
		for _, f := range d.Findings {
			c = append(c, f.Code)
		}
		return c
	}
	if all := codes(); !slices.Contains(all, diagnose.CodePodMissing) || !slices.Contains(all, diagnose.CodePodStranded) {
		t.Fatalf("the whole bundle: %v, want %s and %s", all, diagnose.CodePodMissing, diagnose.CodePodStranded)
	}
	if one := codes("--node", "w1"); slices.Contains(one, diagnose.CodePodMissing) || slices.Contains(one, diagnose.CodePodStranded) {
		t.Errorf("--node w1: %v, want neither the other nodes' missing nor stranded pods", one)
	}
}

// -o json is the versioned document scripts read.
func TestDiagnoseJSONSchema(t *testing.T) {
	_, out, _ := run(t, "diagnose", "--from-bundle", "testdata/mixed.yaml", "-o", "json")
	var d diagnose.Diagnosis
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		t.Fatal(err)
	}
	if d.SchemaVersion != "dpfdoctor.dev/v1alpha1" || len(d.Pods) != 8 || d.Summary.Failing != 7 {
		t.Errorf("document: %s, %d pods, %+v", d.SchemaVersion, len(d.Pods), d.Summary)
	}
}

func TestDiagnoseUsage(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"schemaVersion":"nope"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-o", "xml"}, "allowed formats are: table,wide,json,yaml,"},
		{[]string{"--max-logs", "-1"}, "--max-logs must be 0 or more"},
		{[]string{"extra"}, "unknown command"},
		{[]string{"--no-such-flag"}, "unknown flag"},
		{[]string{"--from-bundle", bad}, "malformed evidence bundle"},
		{[]string{"--from-bundle", filepath.Join(t.TempDir(), "missing.json")}, "no such file"},
		{[]string{"--from-bundle", "testdata/mixed.yaml", "--bundle", "testdata/mixed.yaml"}, "name the same file"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, errOut := run(t, append([]string{"diagnose"}, tc.args...)...)
			if code != ExitUsage || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, ExitUsage, tc.want)
			}
			if strings.Contains(errOut, "goroutine") || strings.Contains(errOut, "panic") {
				t.Errorf("stack trace: %s", errOut)
			}
		})
	}
}

// A kubeconfig that does not parse, or does not exist, exits 4 and says
// what to do.
func TestDiagnoseBadKubeconfig(t *testing.T) {
	garbage := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(garbage, []byte("this: is: not: a kubeconfig"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, kc := range []string{garbage, filepath.Join(t.TempDir(), "absent")} {
		code, _, errOut := run(t, "diagnose", "--kubeconfig", kc)
		if code != ExitUnreachable || !strings.Contains(errOut, "invalid kubeconfig") {
			t.Errorf("%s: exit %d, stderr %q", kc, code, errOut)
		}
	}
}

// A server nobody answers exits 4.
func TestDiagnoseUnreachable(t *testing.T) {
	kc := writeKubeconfig(t, &rest.Config{Host: "https://127.0.0.1:1", BearerToken: "x", TLSClientConfig: rest.TLSClientConfig{Insecure: true}})
	code, _, errOut := run(t, "diagnose", "--kubeconfig", kc)
	if code != ExitUnreachable || !strings.Contains(errOut, "cluster unreachable") || !strings.Contains(errOut, "check --kubeconfig/--context") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

// writeKubeconfig writes a kubeconfig for cfg and returns its path.
func writeKubeconfig(t *testing.T, cfg *rest.Config) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["c"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData, InsecureSkipTLSVerify: cfg.Insecure}
	kc.AuthInfos["u"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	kc.CurrentContext = "c"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}
