package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// run executes dpfdoctor with args and returns the exit code and output.
func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	s := genericiooptions.IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut}
	code := Run(NewRootCommand(s), args, &errOut)
	return code, out.String(), errOut.String()
}

// The command line end to end on a small sim whose dms-init runs the real
// kubectl: plan, YAML, the confirmation, apply, report, rollback twice.
func TestFixAndRollbackCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an API server (envtest); skipped under -short")
	}
	if sim.Assets() == "" {
		t.Fatal("envtest binaries not found: run `make test`, or `export KUBEBUILDER_ASSETS=$(hack/envtest.sh)`")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := sim.Start(ctx, sim.Options{Nodes: 3, Scenario: "hypothetical-secrets-forbidden", TimeScale: 0.05, SecretWaitAttempts: 2,
		ControlPlane: sharedControlPlane(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	cs := kubernetes.NewForConfigOrDie(c.Config)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(300 * time.Millisecond) {
		pods, _ := cs.CoreV1().Pods(c.Namespace).List(ctx, metav1.ListOptions{})
		failing := 0
		for i := range pods.Items {
			if strings.Contains(dpf.PodState(&pods.Items[i]), "CrashLoopBackOff") {
				failing++
			}
		}
		if failing == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("pods did not fail")
		}
	}
	kc := "--kubeconfig=" + c.KubeconfigPath
	backups := filepath.Join(t.TempDir(), "backups")
	managed := func() int {
		l, err := cs.RbacV1().Roles(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: plan.ManagedByLabel + "=" + plan.ManagedByValue})
		if err != nil {
			t.Fatal(err)
		}
		return len(l.Items)
	}

	code, out, errOut := runCLI(t, "", "fix", kc)
	if code != ExitOK || !strings.Contains(out, "CHANGES") || !strings.Contains(out, "dpfdoctor-") || !strings.Contains(out, "MUST STAY DENIED") {
		t.Fatalf("fix (plan): exit %d\n%s\n%s", code, out, errOut)
	}
	sc := schemas(t)
	if code, out, errOut := runCLI(t, "", "fix", kc, "-o", "json"); code != ExitOK {
		t.Fatalf("fix -o json: exit %d\n%s", code, errOut)
	} else {
		validate(t, sc["fix-plan-v1alpha1"], "fix -o json", []byte(out))
	}
	code, out, _ = runCLI(t, "", "fix", kc, "-o", "yaml")
	docs := strings.Split(out, "---\n")
	var role map[string]any
	if code != ExitOK || len(docs) != 2 || yaml.Unmarshal([]byte(docs[0]), &role) != nil || role["kind"] != "Role" {
		t.Fatalf("fix -o yaml: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "", "fix", kc, "-o", "name") // the RBAC objects as kubectl names them
	if want := "role.rbac.authorization.k8s.io/" + role["metadata"].(map[string]any)["name"].(string) + "\n"; code != ExitOK ||
		!strings.HasPrefix(out, want) || !strings.Contains(out, "\nrolebinding.rbac.authorization.k8s.io/dpfdoctor-") || strings.Count(out, "\n") != 2 {
		t.Fatalf("fix -o name: exit %d\n%s", code, out)
	}
	if code, _, errOut := runCLI(t, "", "fix", kc, "--apply"); code != ExitUsage || !strings.Contains(errOut, "--yes") {
		t.Fatalf("fix --apply without a terminal: exit %d %s", code, errOut)
	}
	if code, _, _ := runCLI(t, "", "fix", kc, "--scope", "cluster"); code != ExitUsage {
		t.Fatalf("bad --scope: exit %d", code)
	}

	// On a terminal, "n" changes nothing.
	interactive := true
	var o, eo bytes.Buffer
	fo := &FixOptions{IOStreams: genericiooptions.IOStreams{In: strings.NewReader("n\n"), Out: &o, ErrOut: &eo}, interactive: &interactive}
	kf := genericclioptions.NewConfigFlags(true)
	kf.KubeConfig = &c.KubeconfigPath
	cmd := newCmdFix(kf, fo)
	cmd.SetArgs([]string{"--apply", "--backup-dir", backups})
	if code := ExitCode(cmd.Execute()); code != ExitDeclined || !strings.Contains(eo.String(), "[y/N]") || managed() != 0 {
		t.Fatalf("declined apply: exit %d, %d managed Roles\n%s", code, managed(), eo.String())
	}

	code, out, errOut = runCLI(t, "", "fix", kc, "--apply", "--yes", "--reconcile-wait", "500ms", "--timeout", "90s", "--backup-dir", backups)
	if code != ExitOK || !strings.Contains(out, "Fix: fixed") || !strings.Contains(out, "pods Ready 3/3") || managed() != 1 {
		t.Fatalf("fix --apply: exit %d\n%s\n%s", code, out, errOut)
	}
	dirs, _ := os.ReadDir(backups)
	if len(dirs) != 1 {
		t.Fatalf("%d backups", len(dirs))
	}
	validate(t, sc["fix-report-v1alpha1"], "report.json", mustReadBytes(t, filepath.Join(backups, dirs[0].Name(), "report.json")))
	report, err := os.ReadFile(filepath.Join(backups, dirs[0].Name(), "report.md"))
	if err != nil || !strings.Contains(string(report), "dpfdoctor rollback --backup") || !strings.Contains(string(report), kc[len("--kubeconfig="):]) {
		t.Fatalf("report.md: %v\n%s", err, report)
	}

	code, out, _ = runCLI(t, "", "rollback", kc, "--latest", "--backup-dir", backups)
	if code != ExitOK || !strings.Contains(out, "Rolled back") || managed() != 0 {
		t.Fatalf("rollback: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "", "rollback", kc, "--latest", "--backup-dir", backups)
	if code != ExitOK || !strings.Contains(out, "Already rolled back") {
		t.Fatalf("second rollback: exit %d\n%s", code, out)
	}
	if code, _, _ := runCLI(t, "", "rollback", kc); code != ExitUsage {
		t.Fatalf("rollback without --backup/--latest: exit %d", code)
	}
	if code, _, errOut := runCLI(t, "", "rollback", kc, "--backup", t.TempDir()); code != ExitUsage || !strings.Contains(errOut, "invalid backup") {
		t.Fatalf("rollback of an empty directory: exit %d %s", code, errOut)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"/a/b-c.d": "/a/b-c.d", "a b": "'a b'", "it's": `'it'\''s'`, "": "''"} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
