package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/dpfdoctor/dpfdoctor/internal/apply"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/guard"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// rollback while a guard runs in repair mode: without --pause-guard it
// refuses (exit 8) and changes nothing; with it, the guard acknowledges
// the pause, the rollback holds through several guard reconciles and
// operator resyncs, and a resumed guard does not restore the grant.
//
// It runs on an API server of its own, alongside the shared one's tests.
func TestRollbackWithGuard(t *testing.T) {
	requireAssets(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c, err := sim.Start(ctx, sim.Options{Nodes: 3, Scenario: "hypothetical-secrets-forbidden", TimeScale: 0.05, SecretWaitAttempts: 1,
		KubectlMaxNodes: -1, Resync: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	cs := kubernetes.NewForConfigOrDie(c.Config)
	kc := "--kubeconfig=" + c.KubeconfigPath
	backups := filepath.Join(t.TempDir(), "backups")
	grant := plan.NamePrefix + c.Release.ServiceAccount
	role := func() (string, bool) {
		r, err := cs.RbacV1().Roles(c.Namespace).Get(ctx, grant, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return "", false
		}
		if err != nil {
			t.Fatal(err)
		}
		return r.ResourceVersion, true
	}
	waitFor := func(d time.Duration, what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(d); !cond(); time.Sleep(200 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	waitFor(time.Minute, "3 pods failing", func() bool {
		pods, _ := cs.CoreV1().Pods(c.Namespace).List(ctx, metav1.ListOptions{})
		n := 0
		for i := range pods.Items {
			if strings.Contains(dpf.PodState(&pods.Items[i]), "CrashLoopBackOff") {
				n++
			}
		}
		return n == 3
	})
	code, out, errOut := runCLI(t, "", "fix", kc, "--apply", "--yes", "--reconcile-wait", "500ms", "--timeout", "90s", "--backup-dir", backups)
	if code != ExitOK || !strings.Contains(out, "pods Ready 3/3") {
		t.Fatalf("fix --apply: exit %d\n%s\n%s", code, out, errOut)
	}

	reg := prometheus.NewRegistry()
	var lastStart atomic.Int64 // when the guard's latest finished reconcile started
	g, err := guard.New(c.Config, guard.Options{Namespace: c.Namespace, Mode: guard.ModeRepair, LeaderElect: true, Identity: "guard-a",
		LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond,
		MetricsAddr: "127.0.0.1:0", InsecureMetrics: true, ProbeAddr: "0", Registry: reg, BackupDir: t.TempDir(),
		OnReconcile: func(d time.Duration) { lastStart.Store(time.Now().Add(-d).UnixNano()) }})
	if err != nil {
		t.Fatal(err)
	}
	gctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- g.Start(gctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("guard: %v", err)
		}
	})
	waitFor(30*time.Second, "the guard leading", func() bool {
		l, err := cs.CoordinationV1().Leases(c.Namespace).Get(ctx, apply.GuardLease, metav1.GetOptions{})
		return err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == "guard-a" && l.Labels[apply.GuardModeLabel] == guard.ModeRepair
	})
	before, ok := role()
	if !ok {
		t.Fatal("no grant after fix")
	}

	code, out, errOut = runCLI(t, "", "rollback", kc, "--latest", "--backup-dir", backups)
	if code != ExitGuard || !strings.Contains(errOut, "guard-a") || !strings.Contains(errOut, "--pause-guard") || !strings.Contains(errOut, "nothing was changed") {
		t.Fatalf("rollback with a repairing guard: exit %d\n%s\n%s", code, out, errOut)
	}
	if rv, ok := role(); !ok || rv != before {
		t.Fatalf("the refused rollback changed the grant (present %v, resourceVersion %s → %s)", ok, before, rv)
	}

	code, out, errOut = runCLI(t, "", "rollback", kc, "--latest", "--backup-dir", backups, "--pause-guard")
	if code != ExitOK || !strings.Contains(out, "Rolled back") || !strings.Contains(out, "stays paused") ||
		!strings.Contains(out, apply.GuardPausedAnnotation+"-") || !strings.Contains(errOut, "acknowledge") {
		t.Fatalf("rollback --pause-guard: exit %d\n%s\n%s", code, out, errOut)
	}
	evs, err := cs.EventsV1().Events(c.Namespace).List(ctx, metav1.ListOptions{FieldSelector: "reason=" + guard.ReasonGuardPaused})
	if err != nil || len(evs.Items) != 1 || evs.Items[0].ReportingController != guard.ControllerName || evs.Items[0].Regarding.Kind != "DPFOperatorConfig" {
		t.Fatalf("pause events: %v %+v", err, evs)
	}
	// A Node label change makes the guard reconcile; with one worker, once
	// a reconcile that started after the change has ended, every earlier
	// one has too.
	touch := func(i int) {
		t.Helper()
		mark := time.Now()
		patch := fmt.Sprintf(`{"metadata":{"labels":{"dpfdoctor-test/touch":"%d"}}}`, i)
		if _, err := cs.CoreV1().Nodes().Patch(ctx, c.Nodes[i%len(c.Nodes)], types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := c.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		waitFor(30*time.Second, "a guard reconcile after the Node's change", func() bool { return lastStart.Load() > mark.UnixNano() })
	}
	// Several guard reconciles (Node label changes) and operator resyncs:
	// the grant stays removed.
	for i := range 5 {
		touch(i)
		if _, ok := role(); ok {
			t.Fatalf("the paused guard re-created the grant after %d reconciles", i+1)
		}
	}
	if m := scrapeGuard(t, g); !strings.Contains(m, guard.MetricPaused+" 1") {
		t.Errorf("/metrics lacks %s 1:\n%s", guard.MetricPaused, m)
	}

	// Resumed, the guard adopts what it finds: the pods are Ready, so the
	// grant stays removed.
	resume, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{apply.GuardPausedAnnotation: nil}}})
	if _, err := dynamic.NewForConfigOrDie(c.Config).Resource(dpf.MustGVR(dpf.GroupOperator, "DPFOperatorConfig")).Namespace(c.Namespace).
		Patch(ctx, dpf.OperatorConfigName, types.MergePatchType, resume, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(30*time.Second, "the resume event", func() bool {
		l, err := cs.EventsV1().Events(c.Namespace).List(ctx, metav1.ListOptions{FieldSelector: "reason=" + guard.ReasonGuardResumed})
		return err == nil && len(l.Items) == 1
	})
	touch(5)
	if _, ok := role(); ok {
		t.Fatal("the resumed guard restored the grant the rollback deleted")
	}
	if m := scrapeGuard(t, g); !strings.Contains(m, guard.MetricPaused+" 0") {
		t.Errorf("/metrics lacks %s 0:\n%s", guard.MetricPaused, m)
	}

	// Stopped, the guard releases its Lease: nothing to refuse. A
	// Deployment that runs one in repair mode is refused again, until it is
	// scaled to zero.
	stop()
	waitFor(30*time.Second, "the Lease released", func() bool {
		l, err := cs.CoordinationV1().Leases(c.Namespace).Get(ctx, apply.GuardLease, metav1.GetOptions{})
		return err == nil && (l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "")
	})
	if code, out, errOut := runCLI(t, "", "rollback", kc, "--latest", "--backup-dir", backups); code != ExitOK || !strings.Contains(out, "Already rolled back") {
		t.Fatalf("rollback with the guard stopped: exit %d\n%s\n%s", code, out, errOut)
	}
	one := int32(1)
	labels := map[string]string{"app.kubernetes.io/name": "dpfdoctor-guard"}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "dpfdoctor-guard", Namespace: c.Namespace},
		Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{
				{Name: "guard", Image: "dpfdoctor", Args: []string{"guard", "--mode=repair", "--leader-elect"}}}}}}}
	if dep, err = cs.AppsV1().Deployments(c.Namespace).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, "", "rollback", kc, "--latest", "--backup-dir", backups); code != ExitGuard || !strings.Contains(errOut, "Deployment "+c.Namespace+"/dpfdoctor-guard") {
		t.Fatalf("rollback with a repair-mode Deployment: exit %d\n%s", code, errOut)
	}
	zero := int32(0)
	dep.Spec.Replicas = &zero
	if _, err := cs.AppsV1().Deployments(c.Namespace).Update(ctx, dep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, "", "rollback", kc, "--latest", "--backup-dir", backups); code != ExitOK {
		t.Fatalf("rollback with the Deployment scaled to zero: exit %d\n%s", code, errOut)
	}
}

func scrapeGuard(t *testing.T, g *guard.Guard) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); g.MetricsAddr() == ""; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("metrics endpoint not listening")
		}
	}
	return get(t, "http://"+g.MetricsAddr()+"/metrics")
}
