package evidence

import (
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	corev1 "k8s.io/api/core/v1"
)

// visibleEnv are the environment variables whose values are kept: the API
// server address the pod's kubectl uses. Every other value is masked.
var visibleEnv = map[string]bool{
	"KUBERNETES_SERVICE_HOST": true,
	"KUBERNETES_SERVICE_PORT": true,
}

// masked replaces an environment value dpfdoctor does not keep.
const masked = "(masked)"

// podFrom trims a Pod to what diagnosis reads.
func podFrom(p *corev1.Pod) Pod {
	out := Pod{
		Name:           p.Name,
		Namespace:      p.Namespace,
		Node:           p.Spec.NodeName,
		Component:      p.Labels[dpf.ComponentLabel],
		Labels:         p.Labels,
		ServiceAccount: p.Spec.ServiceAccountName,
		Phase:          string(p.Status.Phase),
		Reason:         p.Status.Reason,
		Deleting:       p.DeletionTimestamp != nil,
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			out.Ready = true
		}
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
