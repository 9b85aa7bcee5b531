package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/faultproxy"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// managed counts dpfdoctor's objects in the DPF namespace.
func managed(t *testing.T, cs kubernetes.Interface, ns string) int {
	t.Helper()
	sel := metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=dpfdoctor"}
	roles, err := cs.RbacV1().Roles(ns).List(context.Background(), sel)
	if err != nil {
		t.Fatal(err)
	}
	rbs, err := cs.RbacV1().RoleBindings(ns).List(context.Background(), sel)
	if err != nil {
		t.Fatal(err)
	}
	return len(roles.Items) + len(rbs.Items)
}

// SIGINT while `fix --apply` writes: exit 130, and the cluster holds none of
// the grant (the apply is rolled back), not part of it.
func TestInterruptedApplyLeavesNothing(t *testing.T) {
	parallel(t)
	ctx := context.Background()
	c, err := sim.Start(ctx, sim.Options{Nodes: 2, Scenario: "hypothetical-secrets-forbidden", TimeScale: 0.05, SecretWaitAttempts: 1, KubectlMaxNodes: -1, Resync: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	cs := kubernetes.NewForConfigOrDie(c.Config)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		s, err := c.Summary(ctx)
		if err == nil && s.States["Init:CrashLoopBackOff"] == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pods did not fail: %v %v", s, err)
		}
	}
	// Every real RBAC write (not the server-side dry runs before them) is
	// held 3 s at the proxy, so the interrupt arrives while the first one
	// is in flight.
	var writes atomic.Int64
	p, err := faultproxy.Start(c.Config, &faultproxy.Rule{
		Match: func(_ int64, r *http.Request) bool {
			if r.Method == http.MethodGet || !strings.Contains(r.URL.Path, "/apis/rbac.authorization.k8s.io/") || strings.Contains(r.URL.RawQuery, "dryRun") {
				return false
			}
			writes.Add(1) // a real write: the interrupt lands mid-apply
			return true
		},
		Action: faultproxy.Action{Delay: 3 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	kc := kubeconfig(t, p.Config, nil)
	code, log, backups := interruptFix(t, kc, func(line string) bool {
		if !strings.HasPrefix(line, "backup: ") {
			return false
		}
		// Wait until the first write is held at the proxy, then interrupt.
		for deadline := time.Now().Add(20 * time.Second); writes.Load() == 0 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		return true
	})
	if code != 130 {
		t.Fatalf("exit %d after SIGINT, want 130\n%s", code, log)
	}
	if n := managed(t, cs, c.Namespace); n != 0 {
		t.Fatalf("an interrupted apply left %d dpfdoctor objects\n%s", n, log)
	}
	if strings.Contains(log, "panic") {
		t.Fatalf("panic:\n%s", log)
	}
	if got := reportOutcome(t, backups); got != "interrupted" {
		t.Errorf("the report's outcome is %q, want interrupted", got)
	}
	waitPods(t, cs, c.Namespace, 2, log)
}

// SIGINT while `fix --apply` deletes the v25.4.0 pods before the grant,
// with deletes in flight: exit 130, and every deleted pod comes back (its
// Node event is sent once its deletion completes), since v25.4.0 never
// re-creates a deleted pod by itself.
func TestInterruptedQuiesceBringsPodsBack(t *testing.T) {
	parallel(t)
	ctx := context.Background()
	const nodes = 12
	c, err := sim.Start(ctx, sim.Options{Version: "v25.4.0", Nodes: nodes, Scenario: "hypothetical-secrets-forbidden", TimeScale: 1, SecretWaitAttempts: 1, KubectlMaxNodes: -1, Resync: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	cs := kubernetes.NewForConfigOrDie(c.Config)
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		s, err := c.Summary(ctx)
		if err == nil && s.States["Init:CrashLoopBackOff"] == nodes {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pods did not fail: %v %v", s, err)
		}
	}
	code, log, _ := interruptFix(t, kubeconfig(t, c.Config, nil), func(line string) bool {
		return strings.HasPrefix(line, "deleting the v25.4.0 pods")
	})
	if code != 130 {
		t.Fatalf("exit %d after SIGINT, want 130\n%s", code, log)
	}
	waitPods(t, cs, c.Namespace, nodes, log)
}

// interruptFix runs `fix --apply --yes` with kubeconfig kc and sends
// SIGINT once, at the first line of its stderr that interrupt accepts. It
// returns the exit code, and stdout and stderr.
func interruptFix(t *testing.T, kc string, interrupt func(line string) bool) (code int, log, backups string) {
	t.Helper()
	dir := t.TempDir()
	backups = filepath.Join(dir, "backups")
	cmd := exec.Command(s.bin, "fix", "--apply", "--yes", "--backup-dir", backups, "--reconcile-wait", "1s")
	cmd.Dir = dir
	cmd.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH"), "KUBECONFIG=" + kc}
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var stderrLog strings.Builder
	sc := bufio.NewScanner(stderr)
	interrupted := false
	for sc.Scan() {
		stderrLog.WriteString(sc.Text() + "\n")
		if !interrupted && interrupt(sc.Text()) {
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			interrupted = true
		}
	}
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if !interrupted {
		t.Fatalf("never reached the point to interrupt:\n%s", stderrLog.String())
	}
	return code, stdout.String() + stderrLog.String(), backups
}

// reportOutcome is the outcome in the one fix report under backups.
func reportOutcome(t *testing.T, backups string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(backups, "*", "report.json"))
	if len(files) != 1 {
		t.Fatalf("%d fix reports under %s, want 1", len(files), backups)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Outcome string `json:"outcome"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	return r.Outcome
}

// waitPods waits up to a minute until the namespace holds n DMS pods.
func waitPods(t *testing.T, cs kubernetes.Interface, ns string, n int, log string) {
	t.Helper()
	sel := metav1.ListOptions{LabelSelector: dpf.ComponentLabel + "=" + dpf.ComponentDMS}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		pods, err := cs.CoreV1().Pods(ns).List(context.Background(), sel)
		if err == nil && len(pods.Items) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("DMS pods a minute after the interrupted fix: %d, want %d (%v)\n%s", len(pods.Items), n, err, log)
		}
	}
}

// Rollback refuses a backup folder that is missing or tampered with, before
// touching the cluster.
func TestRollbackBadBackups(t *testing.T) {
	parallel(t)
	kc := kubeconfig(t, s.dpf.Config, nil)
	cs := kubernetes.NewForConfigOrDie(s.dpf.Config)
	before := managed(t, cs, s.dpf.Namespace)

	tampered := t.TempDir()
	if err := os.WriteFile(filepath.Join(tampered, "manifest.json"), []byte(`{"version":"x","entries":[{"file":"../../etc/passwd"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"missing folder", []string{"rollback", "--backup", "/nonexistent/backup"}},
		{"empty folder", []string{"rollback", "--backup", t.TempDir()}},
		{"tampered folder", []string{"rollback", "--backup", tampered}},
		{"no backups at all", []string{"rollback", "--latest", "--backup-dir", filepath.Join(t.TempDir(), "none")}},
		{"both flags", []string{"rollback", "--latest", "--backup", tampered}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := dpfdoctor(t, kc, tc.args...)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			if !strings.HasPrefix(r.stderr, "error: ") {
				t.Errorf("no one-line error:\n%s", r.stderr)
			}
		})
	}
	if after := managed(t, cs, s.dpf.Namespace); after != before {
		t.Fatalf("a refused rollback changed the cluster: %d → %d dpfdoctor objects", before, after)
	}
}
