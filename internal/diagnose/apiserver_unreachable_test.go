package diagnose

import (
	"fmt"
	"strings"
	"testing"

	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
)

func TestAPIServerUnreachable(t *testing.T) {
	for _, tc := range []struct {
		file string
		want *want
	}{
		{"apiserver_unreachable/refused.yaml", &want{
			code: CodeAPIServerUnreachable, pods: []string{"w1-dms", "w2-dms"},
			evidence: []string{
				"Failed to check kubectl version: The connection to the server 127.0.10.99:6443 was refused",
				"kubernetesAPIServerVIP: 127.0.10.10, kubernetesAPIServerPort: 6443",
				"KUBERNETES_SERVICE_HOST=127.0.10.10, KUBERNETES_SERVICE_PORT=6443",
			},
			next: `kubectl patch dpfoperatorconfig dpfoperatorconfig -n dpf-operator-system --type merge -p '{"spec":{"overrides":{"kubernetesAPIServerVIP":"<reachable address>","kubernetesAPIServerPort":6443}}}'`,
		}},
		{"apiserver_unreachable/near-miss-other-error.yaml", nil},
		{"rbac_forbidden/hypothetical-secrets-forbidden.yaml", nil},
	} {
		t.Run(tc.file, func(t *testing.T) { expect(t, of(ClassAPIServerUnreachable), tc.file, tc.want) })
	}
}

// The v25.10 host agent logs its failures in klog form.
func TestHostAgent(t *testing.T) {
	expect(t, of(ClassAPIServerUnreachable), "apiserver_unreachable/hostagent.yaml", &want{
		code: CodeAPIServerUnreachable, pods: []string{"h1-dms"},
		evidence: []string{"unable to reach the Kubernetes API server", "pod h1-dms hostagent env"},
	})
	expect(t, of(ClassNoDPUFound), "apiserver_unreachable/hostagent.yaml", &want{
		code: CodeNoDPUFound, pods: []string{"h2-dms"}, evidence: []string{"no DPU found on this host"},
	})
}

// The next step names the failing pods and deletes them only where the
// operator re-creates them; where other hosts reach the address, it points
// at the failing hosts' network, not at the cluster-wide address.
func TestAPIServerUnreachableNextStep(t *testing.T) {
	next := func(t *testing.T, b *evidence.Bundle) (string, Finding) {
		t.Helper()
		fs := of(ClassAPIServerUnreachable).Classify(b)
		if len(fs) != 1 {
			t.Fatalf("findings: %+v", fs)
		}
		return fs[0].NextStep, fs[0]
	}
	const file = "apiserver_unreachable/refused.yaml"
	if n, _ := next(t, load(t, file)); !strings.Contains(n, "kubectl patch dpfoperatorconfig") ||
		!strings.Contains(n, "kubectl delete pod -n dpf-operator-system w1-dms w2-dms (the operator re-creates them)") || strings.Contains(n, " -l ") {
		t.Errorf("every host failing: %s", n)
	}

	b := load(t, file)
	b.DPUNodes = append(b.DPUNodes, evidence.Object{Kind: "DPUNode", Name: "w2"})
	if n, _ := next(t, b); !strings.Contains(n, "do not delete the pods") || strings.Contains(n, "kubectl delete") {
		t.Errorf("v25.4.0 with a DPUNode: %s", n)
	}
	b.Install.Version = "v25.7.0"
	if n, _ := next(t, b); !strings.Contains(n, "kubectl delete pod -n dpf-operator-system w1-dms w2-dms") {
		t.Errorf("v25.7.0 re-creates deleted pods: %s", n)
	}

	b = load(t, file)
	ready := b.Pods[0]
	ready.Name, ready.Node, ready.Ready = "w9-dms", "w9", true
	b.Pods = append(b.Pods, ready)
	if n, _ := next(t, b); !strings.Contains(n, "other hosts reach the API server at the same address (1 Ready DMS pod)") || strings.Contains(n, "kubectl patch") {
		t.Errorf("one host healthy: %s", n)
	}
	// A Ready pod that still has the old address says nothing of the new one.
	b.Pods[len(b.Pods)-1].Containers = nil
	b.Pods[len(b.Pods)-1].InitContainers = nil
	if n, _ := next(t, b); !strings.Contains(n, "kubectl patch dpfoperatorconfig") {
		t.Errorf("a Ready pod with another address: %s", n)
	}

	b = load(t, file)
	for i := range 10 {
		p := b.Pods[1]
		p.Name, p.Node = fmt.Sprintf("x%d-dms", i), fmt.Sprintf("x%d", i)
		b.Pods = append(b.Pods, p)
		g := &b.LogGroups[0]
		g.Pods = append(g.Pods, p.Name)
	}
	if n, f := next(t, b); len(f.Pods) != 12 || !strings.Contains(n, `dpfdoctor diagnose -o jsonpath='{.findings[?(@.code=="DPF-API-001")].pods[*]}' | xargs kubectl delete pod -n dpf-operator-system`) {
		t.Errorf("12 pods (%d found): %s", len(f.Pods), n)
	}

	// kubectl version prints the client's version before the error.
	b = load(t, file)
	b.Logs[0].Text = strings.Replace(b.Logs[0].Text, "version: The connection", "version: Client Version: v1.37.2\nKustomize Version: v5.7.1\nThe connection", 1)
	if _, f := next(t, b); !strings.Contains(f.detail["w1-dms"], "The connection to the server 127.0.10.99:6443 was refused") {
		t.Errorf("detail: %q", f.detail["w1-dms"])
	}
}
