package sim

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
)

// startSim starts a sim for one test and stops it at the end.
func startSim(t *testing.T, o Options) (*Cluster, kubernetes.Interface) {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run the tests with `make test` (it builds the envtest binaries)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, o)
	if err != nil {
		t.Fatalf("sim.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return c, kubernetes.NewForConfigOrDie(c.Config)
}

// waitPods waits until pred holds for the DMS pods.
func waitPods(t *testing.T, cs kubernetes.Interface, timeout time.Duration, what string, pred func([]corev1.Pod) bool) []corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		list, err := cs.CoreV1().Pods(dpf.DefaultNamespace).List(context.Background(), metav1.ListOptions{LabelSelector: dpf.ComponentLabel})
		if err == nil && pred(list.Items) {
			return list.Items
		}
		if time.Now().After(deadline) {
			var states []string
			if list != nil {
				for i := range list.Items {
					states = append(states, list.Items[i].Name+"="+dpf.PodState(&list.Items[i]))
				}
			}
			t.Fatalf("timed out waiting for %s; pods: %v (err %v)", what, states, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func allState(n int, state string) func([]corev1.Pod) bool {
	return func(ps []corev1.Pod) bool {
		if len(ps) != n {
			return false
		}
		for i := range ps {
			if dpf.PodState(&ps[i]) != state {
				return false
			}
		}
		return true
	}
}

func kubectl(t *testing.T, c *Cluster, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(KubectlPath(), append([]string{"--kubeconfig", c.KubeconfigPath}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestSmokeSecretsForbidden(t *testing.T) {
	c, cs := startSim(t, Options{Nodes: 2, Scenario: "secrets-forbidden", TimeScale: 0.05, SecretWaitAttempts: 2})
	waitPods(t, cs, time.Minute, "Init:CrashLoopBackOff", allState(2, "Init:CrashLoopBackOff"))
	out, err := kubectl(t, c, "logs", "-n", c.Namespace, "dpu-worker-1-dms", "-c", "dms-init")
	if err != nil || !strings.Contains(out, `Error from server (Forbidden): secrets "dpu-worker-1-server-secret" is forbidden`) {
		t.Fatalf("kubectl logs: %v\n%s", err, out)
	}
	t.Log(out)
}
