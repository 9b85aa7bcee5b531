package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"

	"github.com/dpfdoctor/dpfdoctor/internal/guard"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// dpfdoctor guard in observe mode on a sim: it records a diagnosis event
// on each failing pod, writes nothing else, and exits 0 when interrupted.
func TestGuardOnSim(t *testing.T) {
	requireAssets(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := sim.Start(ctx, sim.Options{Nodes: 2, Scenario: "hypothetical-secrets-forbidden", TimeScale: 0.05, SecretWaitAttempts: 1,
		KubectlMaxNodes: -1, Resync: time.Hour, ControlPlane: sharedControlPlane(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	cs := kubernetes.NewForConfigOrDie(c.Config)

	s, _, _, errOut := genericiooptions.NewTestIOStreams()
	cmd := NewRootCommand(s)
	runCtx, stop := context.WithCancel(ctx)
	cmd.SetContext(runCtx)
	done := make(chan int, 1)
	metrics, probes := freeAddr(t), freeAddr(t)
	go func() {
		done <- Run(cmd, []string{"guard", "--kubeconfig", c.KubeconfigPath, "--metrics-bind-address", metrics, "--metrics-secure=false",
			"--health-probe-bind-address", probes}, errOut)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		evs, err := cs.CoreV1().Events(c.Namespace).List(ctx, metav1.ListOptions{FieldSelector: "reason=" + guard.ReasonDiagnosed})
		if err == nil && len(evs.Items) == 2 && strings.HasPrefix(evs.Items[0].Message, "RBACForbidden: ") {
			break
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("no diagnosis events (%v, %v); guard log:\n%s", evs, err, errOut)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, u := range []string{"http://" + probes + "/healthz", "http://" + probes + "/readyz", "http://" + metrics + "/metrics"} {
		body := get(t, u)
		if strings.HasSuffix(u, "/metrics") && !strings.Contains(body, `dpfdoctor_findings{class="RBACForbidden"} 2`) {
			t.Errorf("/metrics lacks the findings:\n%s", body)
		}
	}
	stop()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Errorf("exit %d after interrupt; log:\n%s", code, errOut)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the guard did not stop")
	}
	roles, err := cs.RbacV1().Roles(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=dpfdoctor"})
	if err != nil || len(roles.Items) != 0 {
		t.Errorf("observe mode wrote Roles: %v %v", roles, err)
	}
	if !strings.Contains(errOut.String(), `"msg"="diagnosed"`) {
		t.Errorf("log lacks the diagnoses:\n%s", errOut)
	}
	if !strings.Contains(errOut.String(), "plain HTTP without authentication") {
		t.Errorf("log does not say /metrics is insecure:\n%s", errOut)
	}
}

// A cluster without DPF exits 5 at once.
func TestGuardNotInstalled(t *testing.T) {
	cfg := bareCluster(t)
	code, _, errOut := run(t, "guard", "--kubeconfig", writeKubeconfig(t, cfg), "--metrics-bind-address", "0", "--health-probe-bind-address", "0")
	if code != ExitNotInstalled || !strings.Contains(errOut, "operator.dpu.nvidia.com") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

// freeAddr is a loopback address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// get fetches u, retrying for a few seconds until it answers 200.
func get(t *testing.T, u string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(u)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(body)
			}
			err = fmt.Errorf("%s: %s", resp.Status, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", u, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
