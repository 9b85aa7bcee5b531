package diagnose

import (
	"cmp"
	"fmt"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
)

// apiServerUnreachable reports dms-init failing `kubectl version` ("Failed
// to check kubectl version: ..."): the hostNetwork pod cannot reach the API
// server at the address the operator gave it (DPFOperatorConfig
// spec.overrides.kubernetesAPIServerVIP/Port → KUBERNETES_SERVICE_HOST/PORT).
func apiServerUnreachable(v *view) []Finding {
	in := v.b.Install
	f := Finding{Class: ClassAPIServerUnreachable, Code: CodeAPIServerUnreachable, Severity: SeverityError}
	vip := cmp.Or(in.APIServerVIP, "(not set)")
	port := "(not set)"
	if in.APIServerPort != 0 {
		port = fmt.Sprint(in.APIServerPort)
	}
	f.Evidence = append(f.Evidence, Evidence{Kind: EvidenceConfig, Source: fmt.Sprintf("DPFOperatorConfig %s/%s", in.Namespace, in.OperatorConfig),
		Text: fmt.Sprintf("spec.overrides.kubernetesAPIServerVIP: %s, kubernetesAPIServerPort: %s", vip, port)})
	envs := map[string]bool{}
	for _, p := range v.failing() {
		lines := v.log(p.Name)
		l, e, ok := scriptError(lines, dpf.MsgVersionFailed)
		if !ok {
			// The v25.10 host agent (a Go program) says it its own way.
			if l, ok = find(lines, hostAgentUnreachable); !ok {
				continue
			}
			e.Message = dpf.MsgVersionFailed + l.text[strings.Index(l.text, hostAgentUnreachable)+len(hostAgentUnreachable):]
		}
		f.Evidence = appendLimited(f.Evidence, logEvidence(l), maxQuoted)
		if container, env := podAPIEnv(p); !envs[env] {
			envs[env] = true
			f.Evidence = append(f.Evidence, Evidence{Kind: EvidenceObject, Source: fmt.Sprintf("pod %s %s env", p.Name, container), Text: env})
		}
		f.addPod(p.Name, "kubectl cannot reach the API server: "+shorten(strings.TrimPrefix(e.Message, dpf.MsgVersionFailed), 120))
	}
	if len(f.Pods) == 0 {
		return nil
	}
	f.Summary = fmt.Sprintf("dms-init cannot reach the Kubernetes API server from %s (kubectl version fails)", plural(len(f.Pods), "host", "hosts"))
	f.NextStep = fmt.Sprintf("from a DPU host, check that the address the pods get answers: `curl -k https://<host>:<port>/version`; "+
		"then point DPF at one that does: kubectl patch dpfoperatorconfig %s -n %s --type merge -p "+
		"'{\"spec\":{\"overrides\":{\"kubernetesAPIServerVIP\":\"<reachable address>\",\"kubernetesAPIServerPort\":6443}}}' "+
		"; new DMS pods get the new KUBERNETES_SERVICE_* values, so then delete the failing pods: kubectl delete pod -n %s -l %s=%s "+
		"(dms-init fails before it creates the DPUNode, so the operator re-creates them)",
		in.OperatorConfig, in.Namespace, in.Namespace, dpf.ComponentLabel, dpf.ComponentDMS)
	return []Finding{f}
}

// hostAgentUnreachable starts the v25.10 host agent's error when it cannot
// reach the API server, as internal/sim models it (no public source quotes
// the host agent's messages).
const hostAgentUnreachable = "unable to reach the Kubernetes API server: "

// podAPIEnv renders the KUBERNETES_SERVICE_HOST/PORT of the pod's work
// container, and names the container.
func podAPIEnv(p evidence.Pod) (container, env string) {
	c, ok := p.Work()
	if !ok {
		return dpf.ContainerDMSInit, "no dms-init container"
	}
	var parts []string
	for _, name := range []string{"KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"} {
		v, ok := c.Getenv(name)
		switch {
		case !ok:
			parts = append(parts, name+" not set in the pod spec (the kubelet injects the in-cluster service address)")
		case v.From != "":
			parts = append(parts, name+" from "+v.From)
		default:
			parts = append(parts, name+"="+v.Value)
		}
	}
	return c.Name, strings.Join(parts, ", ")
}

func shorten(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
