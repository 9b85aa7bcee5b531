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
	var pods []evidence.Pod
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
		detail := strings.TrimPrefix(e.Message, dpf.MsgVersionFailed)
		f.Evidence = appendLimited(f.Evidence, logEvidence(l), maxQuoted)
		// kubectl version prints its own version before the error, so the
		// error line is a later line of the same message.
		if strings.HasPrefix(detail, "Client Version:") {
			if c, ok := find(lines, kubectlUnreachable...); ok {
				detail = strings.TrimSpace(c.text)
				f.Evidence = appendLimited(f.Evidence, logEvidence(c), maxQuoted)
			}
		}
		if container, env := podAPIEnv(p); !envs[env] {
			envs[env] = true
			f.Evidence = append(f.Evidence, Evidence{Kind: EvidenceObject, Source: fmt.Sprintf("pod %s %s env", p.Name, container), Text: env})
		}
		f.addPod(p.Name, "kubectl cannot reach the API server: "+shorten(detail, 120))
		pods = append(pods, p)
	}
	if len(f.Pods) == 0 {
		return nil
	}
	f.Summary = fmt.Sprintf("dms-init cannot reach the Kubernetes API server from %s (kubectl version fails)", plural(len(f.Pods), "host", "hosts"))
	ready := 0
	for _, p := range v.b.Pods {
		if _, env := podAPIEnv(p); p.Ready && envs[env] {
			ready++
		}
	}
	if ready > 0 {
		// Ready pods given the same address reach it: the failing hosts'
		// own network is the first suspect, not the address.
		f.NextStep = fmt.Sprintf("other hosts reach the API server at the same address (%s), so check the failing hosts' route to it first: "+
			"from each, `curl -k https://<host>:<port>/version` with the pods' KUBERNETES_SERVICE_HOST and _PORT (above); "+
			"once it answers, dms-init passes at its next restart, %s", plural(ready, "Ready DMS pod", "Ready DMS pods"), dpf.RetryWithin) +
			v.retryAtOnce(CodeAPIServerUnreachable, pods)
		return []Finding{f}
	}
	f.NextStep = fmt.Sprintf("from a DPU host, check that the address the pods get answers: `curl -k https://<host>:<port>/version`; "+
		"then point DPF at one that does: kubectl patch dpfoperatorconfig %s -n %s --type merge -p "+
		"'{\"spec\":{\"overrides\":{\"kubernetesAPIServerVIP\":\"<reachable address>\",\"kubernetesAPIServerPort\":6443}}}'; "+
		"new DMS pods get the new KUBERNETES_SERVICE_* values, so then re-create the failing pods",
		in.OperatorConfig, in.Namespace) + v.retryAtOnce(CodeAPIServerUnreachable, pods)
	return []Finding{f}
}

// kubectlUnreachable start the line kubectl prints when it cannot reach the
// API server.
var kubectlUnreachable = []string{"The connection to the server ", "Unable to connect to the server"}

// maxNamedPods is how many pods a next step names in a kubectl command;
// above it, the command takes them from diagnose's own output.
const maxNamedPods = 10

// retryAtOnce is the clause of a next step that restarts the failing pods
// now by deleting them, where the operator re-creates them: when the
// release re-creates deleted pods, or while the pod's node has no DPUNode.
// Otherwise it says not to delete them.
func (v *view) retryAtOnce(code string, pods []evidence.Pod) string {
	rel, known := release(v.b.Install.Version)
	var names []string
	for _, p := range pods {
		if !(known && rel.RecreatesDeletedPod) && v.dpuNode[p.Node] {
			return "; do not delete the pods: on this DPF version a pod is not re-created while its node's DPUNode exists"
		}
		names = append(names, p.Name)
	}
	ns := v.b.Install.Namespace
	if len(names) > maxNamedPods {
		return fmt.Sprintf("; to retry at once, delete them (the operator re-creates them): "+
			"dpfdoctor diagnose -o jsonpath='{.findings[?(@.code==\"%s\")].pods[*]}' | xargs kubectl delete pod -n %s", code, ns)
	}
	return fmt.Sprintf("; to retry at once: kubectl delete pod -n %s %s (the operator re-creates %s)", ns, strings.Join(names, " "), choose(len(names), "it", "them"))
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
