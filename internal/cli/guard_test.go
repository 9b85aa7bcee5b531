package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// Bad flags exit 2 before any I/O.
func TestGuardUsage(t *testing.T) {
	for _, args := range [][]string{
		{"guard", "--mode", "fix-everything"},
		{"guard", "extra"},
		{"guard", "--max-repairs-per-minute", "0"},
		{"guard", "--no-such-flag"},
	} {
		code, _, errOut := run(t, args...)
		if code != ExitUsage {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}
}

// An API server nobody answers exits 4 at once; a bad kubeconfig too.
func TestGuardUnreachable(t *testing.T) {
	kc := writeKubeconfig(t, &rest.Config{Host: "https://127.0.0.1:1", BearerToken: "x", TLSClientConfig: rest.TLSClientConfig{Insecure: true}})
	start := time.Now()
	code, _, errOut := run(t, "guard", "--kubeconfig", kc, "--metrics-bind-address", "0", "--health-probe-bind-address", "0")
	if code != ExitUnreachable || !strings.Contains(errOut, "cluster unreachable") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %s to give up", d)
	}
	absent := filepath.Join(t.TempDir(), "absent")
	if code, _, errOut := run(t, "guard", "--kubeconfig", absent); code != ExitUnreachable {
		t.Errorf("absent kubeconfig: exit %d, stderr %q", code, errOut)
	}
}

// The help names the flags; --max-logs 0 means none.
func TestGuardHelp(t *testing.T) {
	code, out, _ := run(t, "guard", "--help")
	for _, want := range []string{"--mode", "--metrics-bind-address", "--health-probe-bind-address", "--leader-elect", "--backup-dir", "-n, --namespace"} {
		if code != ExitOK || !strings.Contains(out, want) {
			t.Errorf("help lacks %s (exit %d)", want, code)
		}
	}
	o := &GuardOptions{Mode: "observe", MaxRepairsPerMinute: 1}
	if err := o.Validate(); err != nil || o.MaxLogsPerSignature != -1 {
		t.Errorf("validate: %v, max logs %d", err, o.MaxLogsPerSignature)
	}
}

// The arguments deploy/deployment.yaml passes are flags this command has.
func TestGuardDeployArgs(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	if err := yaml.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	args := d.Spec.Template.Spec.Containers[0].Args
	if len(args) == 0 || args[0] != "guard" {
		t.Fatalf("args %v", args)
	}
	s, _, _, _ := genericiooptions.NewTestIOStreams()
	cmd, _, err := NewRootCommand(s).Find(args[:1]) // with the global flags
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.ParseFlags(args[1:]); err != nil {
		t.Fatalf("deploy/ passes %v: %v", args, err)
	}
	if m, _ := cmd.Flags().GetString("mode"); m != "repair" {
		t.Errorf("mode %q", m)
	}
}
