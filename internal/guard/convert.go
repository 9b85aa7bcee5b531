package guard

// This file is a small adapter: it turns cached API objects into the
// evidence types diagnose reads, the way evidence's own collector does for
// listed objects (its converters are unexported). It is pure.

import (
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
)

// visibleEnv are the environment variables whose values diagnosis may see:
// the API server address the pod's kubectl uses. Others are masked.
var visibleEnv = map[string]bool{"KUBERNETES_SERVICE_HOST": true, "KUBERNETES_SERVICE_PORT": true}

const masked = "(masked)"

// evidencePod trims a Pod to what diagnosis reads.
func evidencePod(p *corev1.Pod) evidence.Pod {
	out := evidence.Pod{
		Name: p.Name, Namespace: p.Namespace, Node: p.Spec.NodeName, Component: p.Labels[dpf.ComponentLabel],
		Labels: p.Labels, ServiceAccount: p.Spec.ServiceAccountName, Phase: string(p.Status.Phase),
		Reason: p.Status.Reason, Ready: dpf.PodReady(p), Deleting: p.DeletionTimestamp != nil,
	}
	for _, v := range p.Spec.Volumes {
		vol := evidence.Volume{Name: v.Name}
		if v.Secret != nil {
			vol.Secret = v.Secret.SecretName
		}
		out.Volumes = append(out.Volumes, vol)
	}
	out.InitContainers = containers(p.Spec.InitContainers, p.Status.InitContainerStatuses)
	out.Containers = containers(p.Spec.Containers, p.Status.ContainerStatuses)
	if out.Node == "" {
		if n, ok := dpf.NodeFromPodName(p.Name); ok {
			out.Node = n
		}
		if ref := out.Args().KubeNodeRef; ref != "" {
			out.Node = ref
		}
	}
	return out
}

func containers(specs []corev1.Container, statuses []corev1.ContainerStatus) []evidence.Container {
	out := make([]evidence.Container, 0, len(specs))
	for _, s := range specs {
		c := evidence.Container{Name: s.Name, Image: s.Image, Command: s.Command, Args: s.Args, Env: envVars(s.Env)}
		for _, st := range statuses {
			if st.Name == s.Name {
				c.Ready, c.RestartCount = st.Ready, st.RestartCount
				c.State, c.LastState = state(st.State), state(st.LastTerminationState)
			}
		}
		out = append(out, c)
	}
	return out
}

func envVars(vars []corev1.EnvVar) []evidence.EnvVar {
	var out []evidence.EnvVar
	for _, e := range vars {
		v := evidence.EnvVar{Name: e.Name}
		switch {
		case e.ValueFrom != nil:
			v.From = envSource(e.ValueFrom)
		case visibleEnv[e.Name]:
			v.Value = e.Value
		case e.Value != "":
			v.Value = masked
		}
		out = append(out, v)
	}
	return out
}

func envSource(s *corev1.EnvVarSource) string {
	switch {
	case s.SecretKeyRef != nil:
		return "secret " + s.SecretKeyRef.Name + " key " + s.SecretKeyRef.Key
	case s.ConfigMapKeyRef != nil:
		return "configmap " + s.ConfigMapKeyRef.Name + " key " + s.ConfigMapKeyRef.Key
	case s.FieldRef != nil:
		return "field " + s.FieldRef.FieldPath
	case s.ResourceFieldRef != nil:
		return "resource " + s.ResourceFieldRef.Resource
	}
	return "reference"
}

func state(s corev1.ContainerState) evidence.State {
	switch {
	case s.Terminated != nil:
		return evidence.State{Kind: evidence.StateTerminated, Reason: s.Terminated.Reason, Message: s.Terminated.Message, ExitCode: s.Terminated.ExitCode}
	case s.Running != nil:
		return evidence.State{Kind: evidence.StateRunning}
	case s.Waiting != nil:
		return evidence.State{Kind: evidence.StateWaiting, Reason: s.Waiting.Reason, Message: s.Waiting.Message}
	}
	return evidence.State{}
}

func evidenceNode(n *corev1.Node) evidence.Node {
	out := evidence.Node{Name: n.Name, Labels: n.Labels}
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP && out.InternalIP == "" {
			out.InternalIP = a.Address
		}
	}
	return out
}

func evidenceEvent(e *corev1.Event) evidence.Event {
	last := e.LastTimestamp.Time
	switch {
	case !last.IsZero():
	case !e.EventTime.IsZero():
		last = e.EventTime.Time
	default:
		last = e.FirstTimestamp.Time
	}
	ev := evidence.Event{Kind: e.InvolvedObject.Kind, Name: e.InvolvedObject.Name, Type: e.Type, Reason: e.Reason, Message: e.Message, Count: e.Count}
	if !last.IsZero() {
		ev.LastSeen = last.UTC().Format(time.RFC3339)
	}
	return ev
}

// install describes the installation from the DPFOperatorConfig, with the
// version from its label, else the DMS pods' (see clusterVersion).
func install(ns string, cfg *unstructured.Unstructured, pods []*corev1.Pod) evidence.Install {
	in := evidence.Install{Namespace: ns}
	if cfg == nil {
		return in
	}
	in.OperatorConfig = cfg.GetName()
	in.Paused, _, _ = unstructured.NestedBool(cfg.Object, "spec", "overrides", "paused")
	in.APIServerVIP, _, _ = unstructured.NestedString(cfg.Object, "spec", "overrides", "kubernetesAPIServerVIP")
	in.APIServerPort = int64Field(cfg.Object, "spec", "overrides", "kubernetesAPIServerPort")
	conds, _, _ := unstructured.NestedSlice(cfg.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if !ok {
			continue
		}
		str := func(k string) string { s, _ := m[k].(string); return s }
		in.Conditions = append(in.Conditions, evidence.Condition{Type: str("type"), Status: str("status"), Reason: str("reason"), Message: str("message")})
	}
	if v := cfg.GetLabels()[dpf.VersionLabel]; v != "" {
		in.Version, in.VersionSource = normalise(v), evidence.VersionFromLabel
		return in
	}
	in.Version, in.VersionSource = clusterVersion(pods)
	return in
}

// VersionFromPods says the version is the one most DMS pods run: their
// dpf-version label, else their image tag.
const VersionFromPods = "dms-pods"

// clusterVersion is the version most DMS pods run. A hostdriver newer than
// the operator on a few pods (a version skew) does not outvote the rest.
func clusterVersion(pods []*corev1.Pod) (string, string) {
	counts := map[string]int{}
	best, bestN := "", 0
	for i := range pods {
		p := pods[i]
		v := p.Labels[dpf.VersionLabel]
		if v == "" {
			for _, c := range p.Spec.InitContainers {
				if c.Name == dpf.ContainerDMSInit {
					v = dpf.ImageTag(c.Image)
				}
			}
		}
		if v == "" {
			for _, c := range p.Spec.Containers {
				if c.Name == dpf.ContainerHostAgent {
					v = dpf.ImageTag(c.Image)
				}
			}
		}
		if v == "" || !isVersion(v) {
			continue
		}
		v = normalise(v)
		counts[v]++
		if n := counts[v]; n > bestN || (n == bestN && dpf.Compare(v, best) < 0) {
			best, bestN = v, n
		}
	}
	if best == "" {
		return "", ""
	}
	return best, VersionFromPods
}

func isVersion(v string) bool {
	if len(v) > 0 && v[0] == 'v' {
		v = v[1:]
	}
	if v == "" || v[0] < '0' || v[0] > '9' {
		return false
	}
	for _, r := range v {
		if !(r >= '0' && r <= '9') && r != '.' && r != '-' && r != '+' && !(r >= 'a' && r <= 'z') {
			return false
		}
	}
	return true
}

func normalise(v string) string {
	if len(v) > 0 && v[0] != 'v' {
		return "v" + v
	}
	return v
}

func int64Field(obj map[string]any, path ...string) int64 {
	v, ok, _ := unstructured.NestedFieldNoCopy(obj, path...)
	if !ok {
		return 0
	}
	switch n := v.(type) {
	case int64:
		return n
	case float64:
		return int64(n)
	case string:
		i, _ := strconv.ParseInt(n, 10, 64)
		return i
	}
	return 0
}

// evidenceRBAC copies dpfdoctor's RBAC objects without managed fields, as
// the collector lists them.
func evidenceRBAC(m managedRBAC) evidence.RBAC {
	var out evidence.RBAC
	for _, o := range m.roles {
		o.ObjectMeta = stripped(o.ObjectMeta)
		out.Roles = append(out.Roles, o)
	}
	for _, o := range m.roleBindings {
		o.ObjectMeta = stripped(o.ObjectMeta)
		out.RoleBindings = append(out.RoleBindings, o)
	}
	return out
}

func stripped(m metav1.ObjectMeta) metav1.ObjectMeta {
	m.ManagedFields = nil
	return m
}
