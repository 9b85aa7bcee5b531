package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Bad input across commands: each gives its documented exit code and a
// message that says what to do next, never a panic.
func TestBadInput(t *testing.T) {
	parallel(t)
	good := kubeconfig(t, s.dpf.Config, nil)
	garbage := filepath.Join(t.TempDir(), "garbage")
	if err := os.WriteFile(garbage, []byte("apiVersion: v1\nclusters: [this is: not: yaml\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	nobody, err := s.dpf.UserConfig("nobody")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		kubeconfig string
		args       []string
		code       int
		says       []string // all must appear in stderr (case-insensitive)
	}{
		{"missing kubeconfig", "", []string{"diagnose", "--kubeconfig", "/nonexistent/kubeconfig"}, 4, []string{"kubeconfig"}},
		{"malformed kubeconfig", garbage, []string{"diagnose"}, 4, []string{"kubeconfig"}},
		{"unknown context", good, []string{"diagnose", "--context", "no-such-context"}, 4, []string{"no-such-context"}},
		{"unreachable server", kubeconfig(t, s.dpf.Config, func(c *clientcmdapi.Config) { c.Clusters["c"].Server = s.dpf.ClosedURL() }),
			[]string{"diagnose"}, 4, []string{"unreachable", "--kubeconfig"}},
		{"rejected token", kubeconfig(t, s.dpf.Config, func(c *clientcmdapi.Config) {
			c.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: "expired-or-bogus"}
		}), []string{"diagnose"}, 4, []string{"authentication"}},
		{"TLS error", kubeconfig(t, s.dpf.Config, func(c *clientcmdapi.Config) { c.Clusters["c"].CertificateAuthorityData = s.bare.CAData }),
			[]string{"diagnose"}, 4, []string{"certificate"}},
		{"DPF missing", kubeconfig(t, s.bare, nil), []string{"diagnose"}, 5, []string{"DPF"}},
		{"DPF partly installed", kubeconfig(t, s.partial, nil), []string{"diagnose"}, 5, []string{"DPFOperatorConfig"}},
		{"user without rights", kubeconfig(t, nobody, nil), []string{"diagnose"}, 6, []string{"list", "nobody"}},
		{"bad output format", good, []string{"diagnose", "-o", "xml"}, 2, []string{"xml"}},
		{"unknown flag", good, []string{"diagnose", "--no-such-flag"}, 2, []string{"no-such-flag"}},
		{"unknown command", good, []string{"no-such-command"}, 2, []string{"no-such-command"}},
		{"extra argument to fix", good, []string{"fix", "extra"}, 2, []string{`"extra"`, "dpfdoctor fix --help"}},
		{"extra argument to rollback", good, []string{"rollback", "extra"}, 2, []string{`"extra"`, "dpfdoctor rollback --help"}},
		{"extra argument to version", "", []string{"version", "extra"}, 2, []string{`"extra"`, "dpfdoctor version --help"}},
		{"unknown sim subcommand", "", []string{"sim", "nosuch"}, 2, []string{"nosuch", "dpfdoctor sim --help"}},
		{"bad duration", good, []string{"fix", "--timeout", "soon"}, 2, []string{"--timeout", "dpfdoctor fix --help"}},
		{"unknown scenario", "", []string{"sim", "up", "--scenario", "nope"}, 2, []string{"unknown scenario"}},
		{"bad versions format", "", []string{"versions", "-o", "nope"}, 2, []string{"allowed"}},
		{"malformed bash", "", []string{"lint", "--script", testdata("malformed.sh"), "--rbac", testdata("role-v25.4.0.yaml")}, 2, []string{"malformed.sh:"}},
		{"malformed RBAC YAML", "", []string{"lint", "--script", testdata("dmsinit-v25.4.0.sh"), "--rbac", testdata("malformed-role.yaml")}, 2, []string{"malformed-role.yaml:"}},
		{"missing script", "", []string{"lint", "--script", "/nonexistent.sh", "--rbac", testdata("role-v25.4.0.yaml")}, 2, []string{"nonexistent.sh"}},
		{"lint without --rbac", "", []string{"lint", "--script", testdata("dmsinit-v25.4.0.sh")}, 2, []string{"--rbac"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := dpfdoctor(t, tc.kubeconfig, tc.args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, tc.code, r.stdout, r.stderr)
			}
			for _, w := range tc.says {
				if !strings.Contains(strings.ToLower(r.stderr), strings.ToLower(w)) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			if !strings.HasPrefix(r.stderr, "error: ") && !strings.Contains(r.stderr, "\nerror: ") {
				t.Errorf("stderr has no one-line error:\n%s", r.stderr)
			}
		})
	}
}

// testdata is a lint fixture, by absolute path (the binary runs elsewhere).
func testdata(name string) string {
	p, err := filepath.Abs(filepath.Join("..", "..", "internal", "lint", "testdata", name))
	if err != nil {
		panic(err)
	}
	return p
}

// The happy path of the read-only commands on a failing cluster.
func TestDiagnoseFindsProblems(t *testing.T) {
	parallel(t)
	r := dpfdoctor(t, kubeconfig(t, s.dpf.Config, nil), "diagnose", "-o", "json")
	if r.code != 3 || !strings.Contains(r.stdout, "RBACForbidden") {
		t.Fatalf("exit %d, want 3 with RBACForbidden:\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if r := dpfdoctor(t, "", "versions"); r.code != 0 || !strings.Contains(r.stdout, "v25.4.0") {
		t.Fatalf("versions: %d\n%s", r.code, r.stdout)
	}
}
