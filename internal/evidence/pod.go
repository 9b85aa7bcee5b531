package evidence

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	corev1 "k8s.io/api/core/v1"
)

// Pod is a DMS or host-agent pod reduced to what diagnosis reads.
type Pod struct {
	Name           string            `json:"name"`
	Namespace      string            `json:"namespace"`
	Node           string            `json:"node"`
	Component      string            `json:"component,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	ServiceAccount string            `json:"serviceAccount,omitempty"`
	Phase          string            `json:"phase"`
	// Reason is status.reason (e.g. Evicted).
	Reason         string      `json:"reason,omitempty"`
	Ready          bool        `json:"ready"`
	Deleting       bool        `json:"deleting,omitempty"`
	Volumes        []Volume    `json:"volumes,omitempty"`
	InitContainers []Container `json:"initContainers,omitempty"`
	Containers     []Container `json:"containers,omitempty"`
}

// Volume is a pod volume; Secret is set for Secret volumes.
type Volume struct {
	Name   string `json:"name"`
	Secret string `json:"secret,omitempty"`
}

// Container is a container's spec and status together.
type Container struct {
	Name         string   `json:"name"`
	Image        string   `json:"image"`
	Command      []string `json:"command,omitempty"`
	Args         []string `json:"args,omitempty"`
	Env          []EnvVar `json:"env,omitempty"`
	Ready        bool     `json:"ready"`
	RestartCount int32    `json:"restartCount"`
	State        State    `json:"state"`
	LastState    State    `json:"lastState,omitempty"`
}

// EnvVar is an environment variable. Value is kept only for the API server
// address variables; others are masked, and references name their source.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value,omitempty"`
	From  string `json:"from,omitempty"`
}

// Container state kinds.
const (
	StateWaiting    = "waiting"
	StateRunning    = "running"
	StateTerminated = "terminated"
)

// State is a container state: its kind and, when waiting or terminated, why.
type State struct {
	Kind     string `json:"kind,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Message  string `json:"message,omitempty"`
	ExitCode int32  `json:"exitCode,omitempty"`
}

// Terminated reports whether the state is a termination.
func (s State) Terminated() bool { return s.Kind == StateTerminated }

// Ran reports whether the container has run at least once.
func (c Container) Ran() bool {
	return c.State.Kind == StateRunning || c.State.Terminated() || c.LastState.Terminated() || c.RestartCount > 0
}

// LastTermination is the most recent termination: the current state when
// terminated, else the last state.
func (c Container) LastTermination() (State, bool) {
	if c.State.Terminated() {
		return c.State, true
	}
	if c.LastState.Terminated() {
		return c.LastState, true
	}
	return State{}, false
}

// Getenv returns an environment variable and whether it is set.
func (c Container) Getenv(name string) (EnvVar, bool) {
	return first(c.Env, func(e EnvVar) bool { return e.Name == name })
}

// Init returns the named init container.
func (p Pod) Init(name string) (Container, bool) { return first(p.InitContainers, named(name)) }

// Main returns the named (non-init) container.
func (p Pod) Main(name string) (Container, bool) { return first(p.Containers, named(name)) }

func named(name string) func(Container) bool { return func(c Container) bool { return c.Name == name } }

// all is the pod's init containers, then its containers.
func (p Pod) all() []Container { return append(slices.Clone(p.InitContainers), p.Containers...) }

// Work is the container that runs dmsinit.sh (dms-init) or, for v25.10+
// pods, the host agent.
func (p Pod) Work() (Container, bool) {
	if c, ok := p.Init(dpf.ContainerDMSInit); ok {
		return c, true
	}
	return p.Main(dpf.ContainerHostAgent)
}

// CertificateName is the DMS server Certificate whose Secret the pod
// mounts: "<x>-dms-server-cert" for a server Secret "<x>-server-secret" (x
// is the DPU on v25.1, the node since), else the node's.
func (p Pod) CertificateName() string {
	for _, v := range p.Volumes {
		if v.Name == dpf.ServerVolume && strings.HasSuffix(v.Secret, "-server-secret") {
			return dpf.CertificateName(strings.TrimSuffix(v.Secret, "-server-secret"))
		}
	}
	return dpf.CertificateName(p.Node)
}

// Restarts sums the restart counts of every container.
func (p Pod) Restarts() int32 {
	var n int32
	for _, c := range p.all() {
		n += c.RestartCount
	}
	return n
}

// Started reports whether any container of the pod ever ran. A pod whose
// Secret volume cannot be mounted never starts one.
func (p Pod) Started() bool { return slices.ContainsFunc(p.all(), Container.Ran) }

// ImageTag is the tag of the work container's image.
func (p Pod) ImageTag() string {
	c, _ := p.Work() // none: no image, no tag
	return dpf.ImageTag(c.Image)
}

var versionTag = regexp.MustCompile(`^v?\d+\.\d+(\.\d+)?([-+].*)?$`)

// Version is the DPF version the pod runs: its work container's image tag
// when that is a version, else its dpf-version label, else clusterVersion.
func (p Pod) Version(clusterVersion string) string {
	if t := p.ImageTag(); versionTag.MatchString(t) {
		return t
	}
	if v := p.Labels[dpf.VersionLabel]; v != "" {
		return v
	}
	return clusterVersion
}

// Script is the dmsinit.sh variant the pod runs.
func (p Pod) Script(clusterVersion string) dpf.ScriptVariant {
	if p.Component == dpf.ComponentHostAgent {
		return dpf.ScriptHostAgent
	}
	if _, ok := p.Init(dpf.ContainerDMSInit); !ok {
		if _, ok := p.Main(dpf.ContainerHostAgent); ok {
			return dpf.ScriptHostAgent
		}
	}
	return dpf.ScriptForImageTag(p.Version(clusterVersion))
}

// Args are the dmsinit.sh flags from the dms-init container's command and
// args (script defaults for anything absent).
func (p Pod) Args() dpf.Args {
	c, _ := p.Init(dpf.ContainerDMSInit) // none: no flags
	return dpf.ParseArgs(append(slices.Clone(c.Command), c.Args...))
}

// ScriptNamespace is the namespace dmsinit.sh works in (--namespace, by
// default dpf-operator-system).
func (p Pod) ScriptNamespace() string { return cmp.Or(p.Args().Namespace, dpf.DefaultNamespace) }

// Calls is the pod's call table: the API requests its dmsinit.sh variant
// makes in the mode its args select.
func (p Pod) Calls(clusterVersion string) []dpf.Call {
	return dpf.Calls(p.Script(clusterVersion), p.Args().CertPath())
}

// ServiceAccountName is the pod's ServiceAccount ("default" when unset).
func (p Pod) ServiceAccountName() string { return cmp.Or(p.ServiceAccount, "default") }

// Status renders the pod's status the way `kubectl get pods` does:
// "Running", "Init:0/3", "Init:CrashLoopBackOff", "Init:Error", ...
func (p Pod) Status() string {
	reason := cmp.Or(p.Reason, p.Phase)
	initializing := false
	for i, c := range p.InitContainers {
		switch {
		case c.State.Terminated() && c.State.ExitCode == 0:
			continue
		case c.State.Terminated():
			if c.State.Reason != "" {
				reason = "Init:" + c.State.Reason
			} else {
				reason = fmt.Sprintf("Init:ExitCode:%d", c.State.ExitCode)
			}
		case c.State.Kind == StateWaiting && c.State.Reason != "" && c.State.Reason != "PodInitializing":
			reason = "Init:" + c.State.Reason
		default:
			reason = fmt.Sprintf("Init:%d/%d", i, len(p.InitContainers))
		}
		initializing = true
		break
	}
	if !initializing {
		running := false
		for i := len(p.Containers) - 1; i >= 0; i-- {
			c := p.Containers[i]
			switch {
			case c.State.Kind == StateWaiting && c.State.Reason != "":
				reason = c.State.Reason
			case c.State.Terminated() && c.State.Reason != "":
				reason = c.State.Reason
			case c.State.Kind == StateRunning:
				running = true
			}
		}
		if running && reason == "Completed" {
			reason = "Running"
		}
	}
	if p.Deleting {
		reason = "Terminating"
	}
	return cmp.Or(reason, "Unknown")
}

// Blocking is the first container that keeps the pod from Ready: the first
// init container that has not completed, else the first unready container.
func (p Pod) Blocking() (Container, bool) {
	for _, c := range p.InitContainers {
		if !(c.State.Terminated() && c.State.ExitCode == 0) {
			return c, true
		}
	}
	for _, c := range p.Containers {
		if !c.Ready {
			return c, true
		}
	}
	return Container{}, false
}

var (
	// The function is optional: dmsinit.sh B–E write the address without it
	// (0000:3b:00) to rshim-preflight's termination log (docs/versions.md).
	pciAddress = regexp.MustCompile(`\b[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}(\.[0-7])?\b`)
	ipv4       = regexp.MustCompile(`\b\d{1,3}(\.\d{1,3}){3}\b`)
	uid        = regexp.MustCompile(`\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`)
	duration   = regexp.MustCompile(`\b\d+(\.\d+)?(ms|[hms])(\d+(\.\d+)?(ms|[hms]))*\b`)
)

// Signature groups pods that fail the same way, from everything the pod
// list carries: the blocking container's name and image, its last
// termination (exit code, reason, termination message) or, when it never
// terminated, its state (kind, reason, message); the work container's
// image, the pod's DPF version and certificate mode, so that pods running
// different dmsinit.sh call tables never share a group. Node and pod
// names, PCI and IP addresses, UIDs and back-off durations are normalised
// away, so pods that fail alike on different nodes do share one.
func (p Pod) Signature() string {
	c, ok := p.Blocking()
	if !ok {
		return "ready"
	}
	parts := []string{c.Name, c.Image}
	if t, ok := c.LastTermination(); ok {
		parts = append(parts, fmt.Sprintf("exit=%d", t.ExitCode), t.Reason, p.normalise(t.Message))
	} else {
		parts = append(parts, c.State.Kind, c.State.Reason, p.normalise(c.State.Message))
	}
	work, _ := p.Work()
	mode := "k8s"
	if p.Args().CertPath() {
		mode = "cert"
	}
	return strings.Join(append(parts, work.Image, p.Version(""), mode), "|")
}

// normalise strips what differs between pods failing alike from a message.
func (p Pod) normalise(msg string) string {
	if p.Name != "" { // first: pod names often hold the node's
		msg = strings.ReplaceAll(msg, p.Name, "{pod}")
	}
	if p.Node != "" {
		msg = strings.ReplaceAll(msg, p.Node, "{node}")
	}
	for _, x := range []struct {
		re *regexp.Regexp
		to string
	}{{pciAddress, "{pci}"}, {ipv4, "{ip}"}, {uid, "{uid}"}, {duration, "{duration}"}} {
		msg = x.re.ReplaceAllString(msg, x.to)
	}
	if len(msg) > 256 {
		msg = msg[len(msg)-256:]
	}
	return strings.TrimSpace(msg)
}

// IsPCIAddress reports whether s holds a PCI address such as 0000:3b:00.0
// or 0000:3b:00.
func IsPCIAddress(s string) bool { return pciAddress.MatchString(s) }

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
		if st, ok := first(statuses, func(st corev1.ContainerStatus) bool { return st.Name == s.Name }); ok {
			c.Ready, c.RestartCount = st.Ready, st.RestartCount
			c.State, c.LastState = stateFrom(st.State), stateFrom(st.LastTerminationState)
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
