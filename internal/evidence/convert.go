package evidence

import (
	"time"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	corev1 "k8s.io/api/core/v1"
)

// VisibleEnv reports whether an environment variable's value is kept: the
// API server address the pod's kubectl uses. Every other value is Masked.
func VisibleEnv(name string) bool {
	return name == "KUBERNETES_SERVICE_HOST" || name == "KUBERNETES_SERVICE_PORT"
}

// Masked replaces an environment value dpfdoctor does not keep.
const Masked = "(masked)"

// PodFrom trims a Pod to what diagnosis reads. The collector and the guard
// (over its cache) both convert pods with it.
func PodFrom(p *corev1.Pod) Pod {
	out := Pod{
		Name:           p.Name,
		Namespace:      p.Namespace,
		Node:           p.Spec.NodeName,
		Component:      p.Labels[dpf.ComponentLabel],
		Labels:         p.Labels,
		ServiceAccount: p.Spec.ServiceAccountName,
		Phase:          string(p.Status.Phase),
		Reason:         p.Status.Reason,
		Ready:          dpf.PodReady(p),
		Deleting:       p.DeletionTimestamp != nil,
	}
	for _, v := range p.Spec.Volumes {
		vol := Volume{Name: v.Name}
		if v.Secret != nil {
			vol.Secret = v.Secret.SecretName
		}
		out.Volumes = append(out.Volumes, vol)
	}
	out.InitContainers = containersFrom(p.Spec.InitContainers, p.Status.InitContainerStatuses)
	out.Containers = containersFrom(p.Spec.Containers, p.Status.ContainerStatuses)
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

func containersFrom(specs []corev1.Container, statuses []corev1.ContainerStatus) []Container {
	out := make([]Container, 0, len(specs))
	for _, s := range specs {
		c := Container{Name: s.Name, Image: s.Image, Command: s.Command, Args: s.Args, Env: envFrom(s.Env)}
		for _, st := range statuses {
			if st.Name != s.Name {
				continue
			}
			c.Ready = st.Ready
			c.RestartCount = st.RestartCount
			c.State = stateFrom(st.State)
			c.LastState = stateFrom(st.LastTerminationState)
		}
		out = append(out, c)
	}
	return out
}

func envFrom(env []corev1.EnvVar) []EnvVar {
	var out []EnvVar
	for _, e := range env {
		v := EnvVar{Name: e.Name}
		switch {
		case e.ValueFrom != nil:
			v.From = envSource(e.ValueFrom)
		case VisibleEnv(e.Name):
			v.Value = e.Value
		case e.Value != "":
			v.Value = Masked
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

func stateFrom(s corev1.ContainerState) State {
	switch {
	case s.Terminated != nil:
		return State{Kind: StateTerminated, Reason: s.Terminated.Reason, Message: s.Terminated.Message, ExitCode: s.Terminated.ExitCode}
	case s.Running != nil:
		return State{Kind: StateRunning}
	case s.Waiting != nil:
		return State{Kind: StateWaiting, Reason: s.Waiting.Reason, Message: s.Waiting.Message}
	}
	return State{}
}

// NodeFrom keeps a Node's name, labels and first internal IP.
func NodeFrom(n *corev1.Node) Node {
	out := Node{Name: n.Name, Labels: n.Labels}
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP && out.InternalIP == "" {
			out.InternalIP = a.Address
		}
	}
	return out
}

// EventFrom keeps what diagnosis reads of an Event.
func EventFrom(e *corev1.Event) Event {
	o := e.InvolvedObject
	return Event{Kind: o.Kind, Name: o.Name, Type: e.Type, Reason: e.Reason, Message: e.Message, Count: e.Count, LastSeen: lastSeen(e)}
}

// lastSeen is when the event last happened, in RFC 3339, or "".
func lastSeen(e *corev1.Event) string {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.UTC().Format(time.RFC3339)
	case !e.EventTime.IsZero():
		return e.EventTime.UTC().Format(time.RFC3339)
	case !e.FirstTimestamp.IsZero():
		return e.FirstTimestamp.UTC().Format(time.RFC3339)
	}
	return ""
}
