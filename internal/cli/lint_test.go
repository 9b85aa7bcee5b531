package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/dpfdoctor/dpfdoctor/internal/lint"
)

const lintData = "../lint/testdata/"

func TestLintCommand(t *testing.T) {
	script := lintData + "dmsinit-v25.4.0.sh"
	role := lintData + "role-v25.4.0.yaml"
	nonK8s := "--external-certificate none --k8s-env false --dms-ip 127.0.10.5 --kubeconfig /etc/dpf/kubeconfig"
	config := filepath.Join(t.TempDir(), "lint.yaml")
	if err := os.WriteFile(config, []byte("suppressions:\n- {code: DPF-LINT-001, call: '*get secret*', reason: not run outside Kubernetes}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		stdin      string
		code       int
		stdout     []string // substrings
		stderr     []string
		jsonOutput bool
	}{
		{name: "v25.4.0 non-Kubernetes mode: secret reads denied", args: []string{"lint", "--script", script, "--rbac", role, "--args", nonK8s},
			code: ExitProblems, stdout: []string{"needs get secrets ${secret_name} in dpf-operator-system — DENIED (no rule)", "FAILED: 3 certain requests denied"}},
		{name: "Kubernetes mode from the pod spec: allowed", args: []string{"lint", "--script", script, "--rbac", role, "--pod", lintData + "dms-pod.yaml"},
			code: ExitOK, stdout: []string{"script arguments: --cmd register", "PASSED: 0 certain requests denied"}},
		{name: "RBAC from stdin and a directory", args: []string{"lint", "--script", script, "--rbac", "-", "--rbac", "../rbac/testdata/dir", "--args", nonK8s},
			stdin: mustRead(t, role), code: ExitProblems, stdout: []string{"DENIED"}},
		{name: "extra arguments are RBAC paths", args: []string{"lint", "--script", script, "--args", nonK8s, "--rbac", role, "../rbac/testdata/list.json"},
			code: ExitProblems},
		{name: "json", args: []string{"lint", "--script", script, "--rbac", role, "--args", nonK8s, "-o", "json", "--suggest"},
			code: ExitProblems, jsonOutput: true, stdout: []string{`"denied": 3`, `"suggestion": "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role`}},
		{name: "sarif", args: []string{"lint", "--script", script, "--rbac", role, "--args", nonK8s, "-o", "sarif"},
			code: ExitProblems, jsonOutput: true, stdout: []string{`"version": "2.1.0"`, `"ruleId": "DPF-LINT-001"`}},
		{name: "junit", args: []string{"lint", "--script", script, "--rbac", role, "--args", nonK8s, "-o", "junit"},
			code: ExitProblems, stdout: []string{`<testsuites name="dpfdoctor lint" tests="17" failures="3"`, `<failure message="DPF-LINT-001: denied to`}},
		{name: "suppressed by --config", args: []string{"lint", "--script", script, "--rbac", role, "--args", nonK8s, "--config", config},
			code: ExitOK, stdout: []string{"PASSED: 0 certain requests denied, 3 possible requests denied, 11 allowed, 3 suppressed"}},
		{name: "--fail-on possible", args: []string{"lint", "--script", script, "--rbac", role, "--args", nonK8s, "--config", config, "--fail-on", "possible", "-o", "sarif"},
			code: ExitProblems, jsonOutput: true, stdout: []string{`"exitCode": 3`, `"kind": "external"`}},
		{name: "bad --fail-on", args: []string{"lint", "--script", script, "--rbac", role, "--fail-on", "always"}, code: ExitUsage, stderr: []string{`--fail-on "always"`}},
		{name: "malformed config", args: []string{"lint", "--script", script, "--rbac", role, "--config", role}, code: ExitUsage, stderr: []string{"role-v25.4.0.yaml"}},
		{name: "missing config", args: []string{"lint", "--script", script, "--rbac", role, "--config", "nope.yaml"}, code: ExitUsage, stderr: []string{"nope.yaml"}},
		{name: "suggest appends a Role", args: []string{"lint", "--script", script, "--rbac", role, "--args", nonK8s, "--suggest"},
			code: ExitProblems, stdout: []string{"# Least-privilege RBAC", "kind: RoleBinding", "name: dpfdoctor-dpf-provisioning-dms-service-account"}},
		{name: "v25.7 script on the v25.4.0 role", args: []string{"lint", "--script", lintData + "dmsinit-v25.7.sh", "--rbac", role, "--pod", lintData + "dms-pod.yaml"},
			code: ExitProblems, stdout: []string{"needs patch dpudevices.provisioning.dpu.nvidia.com/status ${serial} in dpf-operator-system — DENIED"}},
		{name: "malformed bash", args: []string{"lint", "--script", lintData + "malformed.sh", "--rbac", role},
			code: ExitUsage, stderr: []string{"malformed.sh:9:"}},
		{name: "malformed YAML", args: []string{"lint", "--script", script, "--rbac", lintData + "malformed-role.yaml"},
			code: ExitUsage, stderr: []string{"malformed-role.yaml:7:"}},
		{name: "malformed pod", args: []string{"lint", "--script", script, "--rbac", role, "--pod", lintData + "malformed-role.yaml"},
			code: ExitUsage, stderr: []string{"malformed-role.yaml:7:"}},
		{name: "pod without that container", args: []string{"lint", "--script", script, "--rbac", role, "--pod", lintData + "dms-pod.yaml", "--container", "nosuch"},
			code: ExitUsage, stderr: []string{`no container "nosuch"`}},
		{name: "pod file without a pod", args: []string{"lint", "--script", script, "--rbac", role, "--pod", role},
			code: ExitUsage, stderr: []string{"holds no Pod or workload"}},
		{name: "missing script", args: []string{"lint", "--script", "nope.sh", "--rbac", role}, code: ExitUsage, stderr: []string{"nope.sh"}},
		{name: "RBAC without RBAC objects", args: []string{"lint", "--script", script, "--rbac", lintData + "dms-pod.yaml"}, code: ExitUsage,
			stderr: []string{"no Role, ClusterRole"}},
		{name: "no script", args: []string{"lint", "--rbac", role}, code: ExitUsage, stderr: []string{"--script is required"}},
		{name: "no RBAC", args: []string{"lint", "--script", script}, code: ExitUsage, stderr: []string{"--rbac (or --from-cluster) is required"}},
		{name: "args and pod", args: []string{"lint", "--script", script, "--rbac", role, "--args", "", "--pod", "p.yaml"}, code: ExitUsage},
		{name: "bad output", args: []string{"lint", "--script", script, "--rbac", role, "-o", "yaml"}, code: ExitUsage,
			stderr: []string{"allowed formats are: text,json,sarif"}},
		{name: "bad serviceaccount", args: []string{"lint", "--script", script, "--rbac", role, "--serviceaccount", "justname"}, code: ExitUsage},
		{name: "bad --args quoting", args: []string{"lint", "--script", script, "--rbac", role, "--args", `--a "unterminated`}, code: ExitUsage},
		{name: "unknown flag", args: []string{"lint", "--scrip", script}, code: ExitUsage},
		{name: "from-cluster with a missing kubeconfig", args: []string{"lint", "--script", script, "--from-cluster", "--kubeconfig", "/nonexistent/kubeconfig"},
			code: ExitUnreachable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			streams, in, out, errOut := genericiooptions.NewTestIOStreams()
			in.WriteString(tc.stdin)
			code := Run(NewRootCommand(streams), tc.args, errOut)
			if code != tc.code {
				t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(out.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tc.stderr {
				if !strings.Contains(errOut.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, errOut)
				}
			}
			if tc.jsonOutput && !json.Valid(out.Bytes()) {
				t.Errorf("output is not JSON:\n%s", out)
			}
			if code == ExitProblems && errOut.Len() > 0 {
				t.Errorf("exit 3 printed an error after the report: %s", errOut)
			}
		})
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Clean(path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// .dpfdoctor-lint.yaml in the current directory applies without --config.
func TestLintDefaultConfig(t *testing.T) {
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	script, role := abs(lintData+"dmsinit-v25.4.0.sh"), abs(lintData+"role-v25.4.0.yaml")
	t.Chdir(t.TempDir())
	if err := os.WriteFile(lint.ConfigFile, []byte("suppressions:\n- {code: DPF-LINT-001, reason: accepted}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "lint", "--script", script, "--rbac", role, "--args", "--external-certificate none --k8s-env false")
	if code != ExitOK || !strings.Contains(out, "suppressed (DPF-LINT-001): accepted") {
		t.Errorf("exit %d\n%s\n%s", code, out, errOut)
	}
}
