package evidence

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
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
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return EnvVar{}, false
}

// Init returns the named init container.
func (p Pod) Init(name string) (Container, bool) { return find(p.InitContainers, name) }

// Main returns the named (non-init) container.
func (p Pod) Main(name string) (Container, bool) { return find(p.Containers, name) }

func find(cs []Container, name string) (Container, bool) {
	for _, c := range cs {
		if c.Name == name {
			return c, true
		}
	}
	return Container{}, false
}

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
	for _, c := range append(append([]Container(nil), p.InitContainers...), p.Containers...) {
		n += c.RestartCount
	}
	return n
}

// Started reports whether any container of the pod ever ran. A pod whose
// Secret volume cannot be mounted never starts one.
func (p Pod) Started() bool {
	for _, c := range append(append([]Container(nil), p.InitContainers...), p.Containers...) {
		if c.Ran() {
			return true
		}
	}
	return false
}

// ImageTag is the tag of the work container's image.
func (p Pod) ImageTag() string {
	c, ok := p.Work()
	if !ok {
		return ""
	}
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
	c, ok := p.Init(dpf.ContainerDMSInit)
	if !ok {
		return dpf.ParseArgs(nil)
	}
	return dpf.ParseArgs(append(append([]string(nil), c.Command...), c.Args...))
}

// ScriptNamespace is the namespace dmsinit.sh works in (--namespace, by
// default dpf-operator-system).
func (p Pod) ScriptNamespace() string {
	if ns := p.Args().Namespace; ns != "" {
		return ns
	}
	return dpf.DefaultNamespace
}

// Calls is the pod's call table: the API requests its dmsinit.sh variant
// makes in the mode its args select.
func (p Pod) Calls(clusterVersion string) []dpf.Call {
	return dpf.Calls(p.Script(clusterVersion), p.Args().CertPath())
}

// ServiceAccountName is the pod's ServiceAccount ("default" when unset).
func (p Pod) ServiceAccountName() string {
	if p.ServiceAccount == "" {
		return "default"
	}
	return p.ServiceAccount
}

// Status renders the pod's status the way `kubectl get pods` does:
// "Running", "Init:0/3", "Init:CrashLoopBackOff", "Init:Error", ...
func (p Pod) Status() string {
	reason := p.Phase
	if p.Reason != "" {
		reason = p.Reason
	}
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
	if reason == "" {
		reason = "Unknown"
	}
	return reason
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
