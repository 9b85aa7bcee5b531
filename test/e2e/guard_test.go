package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// `kubectl apply -k deploy/` as an admin would, on each API server version
// the suite runs on (1.37 and 1.31): the guard's ValidatingAdmissionPolicy
// refuses the guard's token a grant Role that lists Secrets, and admits one
// of DPF's calls.
func TestDeployAdmissionPolicyWithKubectl(t *testing.T) {
	parallel(t)
	ctx := context.Background()
	c, err := sim.Start(ctx, sim.Options{Nodes: 1, Scenario: "healthy", TimeScale: 0.05, KubectlMaxNodes: -1, Resync: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	kubectl := func(kc string, stdin string, args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(filepath.Join(sim.Assets(), "kubectl"), append([]string{"--kubeconfig", kc}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	admin := kubeconfig(t, c.Config, nil)
	if out, err := kubectl(admin, "", "apply", "-k", filepath.Join("..", "..", "deploy")); err != nil {
		t.Fatalf("kubectl apply -k deploy/: %v\n%s", err, out)
	}
	exp := int64(600)
	tr, err := kubernetes.NewForConfigOrDie(c.Config).CoreV1().ServiceAccounts(c.Namespace).CreateToken(ctx, "dpfdoctor-guard",
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	guard := kubeconfig(t, &rest.Config{Host: c.Config.Host, BearerToken: tr.Status.Token, TLSClientConfig: rest.TLSClientConfig{CAData: c.Config.CAData}}, nil)
	role := func(rule string) string {
		return "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: dpfdoctor-dpf-provisioning-dms-service-account\n  namespace: " +
			c.Namespace + "\n  labels: {app.kubernetes.io/managed-by: dpfdoctor}\nrules:\n- " + rule + "\n"
	}
	// The API server enforces a new policy once its informer has it.
	var out string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		out, err = kubectl(guard, role(`{apiGroups: [""], resources: ["secrets"], verbs: ["get", "list"]}`), "apply", "--server-side", "-f", "-")
		if err != nil && strings.Contains(out, "dpfdoctor-guard-grants") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the guard's token wrote a Role listing Secrets: %v\n%s", err, out)
		}
	}
	if out, err := kubectl(guard, role(`{apiGroups: [provisioning.dpu.nvidia.com], resources: [dpudevices/status], verbs: [get, patch]}`),
		"apply", "--server-side", "-f", "-"); err != nil {
		t.Errorf("the guard's token could not write a grant of DPF's calls: %v\n%s", err, out)
	}
}
