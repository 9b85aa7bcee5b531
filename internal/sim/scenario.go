package sim

import (
	"fmt"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"sort"
	"strconv"
	"strings"
)

// Scenario is what goes wrong (or not) on one simulated DPU host.
type Scenario string

const (
	// SecretsForbidden: the widely reported v25.4.0 story. dms-init runs the
	// create_certificate path (--external-certificate none) and reads
	// <node>-server-secret with kubectl, stderr visible: Forbidden.
	SecretsForbidden Scenario = "secrets-forbidden"
	// SecretsForbiddenQuiet: the same with a later dmsinit.sh (v25.7
	// hostdriver) that hides stderr: only "Waiting for secret…" then
	// "Timed out…". That dmsinit also patches dpudevices/status.
	SecretsForbiddenQuiet Scenario = "secrets-forbidden-quiet"
	// DPUDeviceStatusForbidden: a newer dmsinit.sh (v25.7 hostdriver)
	// against the v25.4.0 role: the dpudevices/status patch is Forbidden.
	DPUDeviceStatusForbidden Scenario = "dpudevice-status-forbidden"
	// APIServerUnreachable: `kubectl version` fails; the API VIP the pod is
	// given is wrong.
	APIServerUnreachable Scenario = "apiserver-unreachable"
	// CertificateNotReady: the Certificate never became a Secret, so the
	// pod cannot mount it (FailedMount) and no container starts.
	CertificateNotReady Scenario = "certificate-not-ready"
	// RshimOccupied: rshim-preflight exits 1 with the PCI address as its
	// termination message: the host's rshim owns the DPU.
	RshimOccupied Scenario = "rshim-occupied"
	// NoDPUFound: dms-init finds no BlueField device in sysfs.
	NoDPUFound Scenario = "no-dpu-found"
	// Healthy: everything works.
	Healthy Scenario = "healthy"
)

// Scenarios lists every scenario.
func Scenarios() []Scenario {
	return []Scenario{SecretsForbidden, SecretsForbiddenQuiet, DPUDeviceStatusForbidden, APIServerUnreachable,
		CertificateNotReady, RshimOccupied, NoDPUFound, Healthy}
}

func (s Scenario) valid() bool {
	for _, k := range Scenarios() {
		if k == s {
			return true
		}
	}
	return false
}

// Mix assigns scenarios to nodes: "secrets-forbidden" (every node) or
// "secrets-forbidden=6,healthy=2". Nodes are assigned in the order given.
type Mix []MixEntry

// MixEntry is one scenario and its node count (0 = all remaining nodes).
type MixEntry struct {
	Scenario Scenario
	Count    int
}

// ParseMix parses a --scenario value.
func ParseMix(s string) (Mix, error) {
	var m Mix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, count, hasCount := strings.Cut(part, "=")
		e := MixEntry{Scenario: Scenario(strings.TrimSpace(name))}
		if !e.Scenario.valid() {
			return nil, fmt.Errorf("unknown scenario %q (known: %s)", name, scenarioList())
		}
		if hasCount {
			n, err := strconv.Atoi(strings.TrimSpace(count))
			if err != nil || n < 0 {
				return nil, fmt.Errorf("scenario %q: count %q is not a non-negative number", name, count)
			}
			e.Count = n
		}
		m = append(m, e)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("no scenario given (known: %s)", scenarioList())
	}
	return m, nil
}

// Assign returns the scenario of each of n nodes. Entries without a count
// share what the counted ones leave; if counts fall short, the last entry
// fills the rest.
func (m Mix) Assign(n int) []Scenario {
	out := make([]Scenario, 0, n)
	counted, open := 0, 0
	for _, e := range m {
		if e.Count > 0 {
			counted += e.Count
		} else {
			open++
		}
	}
	rest := n - counted
	if rest < 0 {
		rest = 0
	}
	seenOpen := 0
	for _, e := range m {
		c := e.Count
		if c == 0 {
			seenOpen++
			c = rest / open
			if seenOpen == open {
				c = rest - (rest/open)*(open-1)
			}
		}
		for j := 0; j < c && len(out) < n; j++ {
			out = append(out, e.Scenario)
		}
	}
	for len(out) < n {
		out = append(out, m[len(m)-1].Scenario)
	}
	return out
}

// String renders the mix back as a flag value.
func (m Mix) String() string {
	var parts []string
	for _, e := range m {
		if e.Count > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", e.Scenario, e.Count))
		} else {
			parts = append(parts, string(e.Scenario))
		}
	}
	return strings.Join(parts, ",")
}

func scenarioList() string {
	var s []string
	for _, k := range Scenarios() {
		s = append(s, string(k))
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}

// Describe says in one line what a scenario simulates.
func Describe(s Scenario) string {
	switch s {
	case SecretsForbidden:
		return "dms-init reads <node>-server-secret with kubectl (stderr visible): Forbidden"
	case SecretsForbiddenQuiet:
		return "the same with a v25.7 dmsinit.sh that hides stderr (and also patches dpudevices/status)"
	case DPUDeviceStatusForbidden:
		return "a v25.7 dmsinit.sh against the v25.4.0 role: dpudevices/status Forbidden"
	case APIServerUnreachable:
		return "kubectl version fails: the API VIP the pod is given is wrong or unreachable"
	case CertificateNotReady:
		return "the Certificate never became a Secret: FailedMount, no container starts"
	case RshimOccupied:
		return "rshim-preflight exits 1 with the PCI address: the host's rshim owns the DPU"
	case NoDPUFound:
		return "dms-init finds no BlueField device in sysfs"
	case Healthy:
		return "everything works"
	}
	return ""
}

// Applies reports whether a scenario can happen on a release: v25.1 has no
// dms-init; the v25.10 host agent has no init containers, no certificate
// volume and takes the rshim itself (rshim --force).
func Applies(s Scenario, r dpf.Release) bool {
	switch r.Script {
	case dpf.ScriptNone:
		return s == Healthy || s == RshimOccupied || s == CertificateNotReady
	case dpf.ScriptHostAgent:
		return s == Healthy || s == APIServerUnreachable || s == NoDPUFound
	}
	return true
}

func scenariosFor(r dpf.Release) string {
	var out []string
	for _, s := range Scenarios() {
		if Applies(s, r) {
			out = append(out, string(s))
		}
	}
	return strings.Join(out, ", ")
}
