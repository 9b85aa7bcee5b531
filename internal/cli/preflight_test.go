package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dpfdoctor/dpfdoctor/internal/preflight"
)

// Bad input exits 2 with a message that says what is wrong, before any I/O
// (KUBECONFIG names no file: a client would make it exit 4).
func TestPreflightUsage(t *testing.T) {
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "no-kubeconfig"))
	malformed := filepath.Join(t.TempDir(), "rbac.yaml")
	if err := os.WriteFile(malformed, []byte("kind: ClusterRole\nrules: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	for _, tc := range []struct {
		args []string
		says string
	}{
		{nil, "--to is required"},
		{[]string{"--to", "v9.9.9"}, `unknown DPF version "v9.9.9" (known: v25.1.0, v25.4.0, v25.7.0, v25.10.0)`},
		{[]string{"--to", "v25.7.0", "--rbac", "release", "--rbac", empty}, "cannot be combined"},
		{[]string{"--to", "v25.7.0", "--rbac", malformed}, malformed + ":"},
		{[]string{"--to", "v25.7.0", "--rbac", empty}, "no Role, ClusterRole, RoleBinding or ClusterRoleBinding found"},
		{[]string{"--to", "v25.7.0", "-o", "wide"}, "allowed formats are: table,json,yaml"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := run(t, append([]string{"preflight"}, tc.args...)...)
			if code != ExitUsage || !strings.Contains(errOut, tc.says) || out != "" {
				t.Errorf("exit %d, want %d with %q; stderr:\n%s", code, ExitUsage, tc.says, errOut)
			}
		})
	}
	// With good flags and no cluster, the usual code for an unreachable one.
	if code, _, errOut := run(t, "preflight", "--to", "25.7"); code != ExitUnreachable {
		t.Errorf("exit %d, want %d: %s", code, ExitUnreachable, errOut)
	}
}

// The table renders preflight's golden report (internal/preflight's
// TestReportGolden writes it).
func TestPreflightTableGolden(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "preflight", "testdata", "v25.4-to-v25.7.json.golden"))
	if err != nil {
		t.Fatal(err)
	}
	var r preflight.Report
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := printPreflight(&out, &r, false); err != nil {
		t.Fatal(err)
	}
	golden(t, "preflight-v25.4-to-v25.7", out.String())
}
