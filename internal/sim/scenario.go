package sim

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
)

// ErrNotApplicable is returned for a scenario that cannot happen on the
// chosen DPF version.
var ErrNotApplicable = errors.New("not applicable")

// Scenario is what goes wrong (or not) on one simulated DPU host.
type Scenario string

const (
	// DPUDeviceStatusForbidden: a newer hostdriver image (dmsinit.sh C–F,
	// v25.7 era) with the operator's arguments against the v25.4.0 role.
	// create_dpu_device's `kubectl patch --subresource status` is
	// Forbidden; error() quotes kubectl's output and exits 1
	// (docs/versions.md). The flagship: a failure the real v25.4.0 stack
	// produces.
	DPUDeviceStatusForbidden Scenario = "dpudevice-status-forbidden"
	// APIServerUnreachable: `kubectl version` fails; the API VIP the pod is
	// given is wrong. B–D print kubectl's output, E and F add the VIP hint.
	APIServerUnreachable Scenario = "apiserver-unreachable"
	// CertificateNotReady: the Certificate never became a Secret, so the
	// pod cannot mount it (FailedMount) and no container starts.
	CertificateNotReady Scenario = "certificate-not-ready"
	// RshimOccupied: rshim-preflight (--cmd check-rshim-not-occupied)
	// exits 1 with the PCI address as its termination message: the host's
	// rshim owns the DPU.
	RshimOccupied Scenario = "rshim-occupied"
	// NoDPUFound: dms-init finds no BlueField device in sysfs.
	NoDPUFound Scenario = "no-dpu-found"
	// Healthy: everything works.
	Healthy Scenario = "healthy"

	// HypotheticalSecretsForbidden is the widely shared v25.4.0 story, which
	// no real combination produces: the operator passes
	// --external-certificate TODO, so no script reads a Secret in a pod, and
	// script B with "none" ignores a Forbidden read and exits 0. Here the
	// pod runs the certificate path and dms-init retries the visible
	// Forbidden read until "Timed out waiting for certificate secret to be
	// created". Kept as a classifier fixture; the demo does not use it.
	HypotheticalSecretsForbidden Scenario = "hypothetical-secrets-forbidden"
	// HypotheticalSecretsForbiddenQuiet: a C–F script (v25.7-era
	// hostdriver) with --external-certificate none, which only non-k8s
	// (systemd) installs pass, run in the operator's pod: the Secret reads
	// are hidden, then "Timed out waiting for secret … to be fully
	// populated" and exit 1. The script's behaviour is real; the pod
	// running it with these arguments is not.
	HypotheticalSecretsForbiddenQuiet Scenario = "hypothetical-secrets-forbidden-quiet"
	// HypotheticalEmptyCertificateFiles: script B (v25.4.0) with
	// --external-certificate none and the v25.4.0 role, as observed
	// (docs/versions.md): the three `get secret` reads are Forbidden,
	// unchecked, and leave empty certificate files; dms-init exits 0 and
	// the dms container fails on the empty files. Hypothetical in a pod:
	// the operator passes TODO and mounts <node>-server-secret over the
	// certificate directory; the empty files are what a non-k8s (systemd)
	// install is left with. dmsd's failure text is modelled.
	HypotheticalEmptyCertificateFiles Scenario = "hypothetical-empty-certificate-files"
)

// Scenarios lists every scenario: the real ones first, then the
// hypothetical ones.
func Scenarios() []Scenario {
	return []Scenario{DPUDeviceStatusForbidden, APIServerUnreachable, CertificateNotReady, RshimOccupied, NoDPUFound, Healthy,
		HypotheticalSecretsForbidden, HypotheticalSecretsForbiddenQuiet, HypotheticalEmptyCertificateFiles}
}

func (s Scenario) valid() bool { return slices.Contains(Scenarios(), s) }

// Mix assigns scenarios to nodes: "dpudevice-status-forbidden" (every
// node) or "dpudevice-status-forbidden=6,healthy=2". Nodes are assigned in the order given.
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
		if slices.ContainsFunc(m, func(o MixEntry) bool { return o.Scenario == e.Scenario }) {
			return nil, fmt.Errorf("scenario %q is given twice", e.Scenario)
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

// Fits reports an error when the counts ask for more than n nodes.
func (m Mix) Fits(n int) error {
	counted := 0
	for _, e := range m {
		counted += e.Count
	}
	if counted > n {
		return fmt.Errorf("the scenario counts add up to %d nodes, more than the %d nodes of the sim", counted, n)
	}
	return nil
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
	rest := max(n-counted, 0)
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
	s := scenarioNames(Scenarios())
	slices.Sort(s)
	return strings.Join(s, ", ")
}

func scenarioNames(ss []Scenario) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

// Describe says in one line what a scenario simulates, with the script
// version and the arguments that produce it.
func Describe(s Scenario) string {
	return map[Scenario]string{
		DPUDeviceStatusForbidden:          "a v25.7-era hostdriver (dmsinit.sh C–F, operator's arguments) against the v25.4.0 role: the dpudevices/status patch is Forbidden, exit 1",
		APIServerUnreachable:              "kubectl version fails: the API VIP the pod is given is wrong or unreachable (E/F add the VIP hint)",
		CertificateNotReady:               "the Certificate never became a Secret: FailedMount, no container starts",
		RshimOccupied:                     "rshim-preflight (--cmd check-rshim-not-occupied) exits 1 with the PCI address: the host's rshim owns the DPU",
		NoDPUFound:                        "dms-init finds no BlueField device in sysfs and exits 1",
		Healthy:                           "everything works",
		HypotheticalSecretsForbidden:      "not produced by any real script: dms-init reads <node>-server-secret (stderr visible), Forbidden, retries and exits 1",
		HypotheticalSecretsForbiddenQuiet: "a dmsinit.sh C–F with --external-certificate none (non-k8s arguments) in the pod: hidden Forbidden Secret reads, timeout, exit 1",
		HypotheticalEmptyCertificateFiles: "dmsinit.sh B with --external-certificate none (non-k8s arguments) in the pod: Forbidden Secret reads ignored, empty certificate files, " +
			"dms-init exits 0, then the dms container exits 1 on them (dmsd's message is modelled)",
	}[s]
}

// Applies reports whether a scenario can happen on a release: v25.1 has no
// dms-init; the v25.10 host agent has no init containers, no certificate
// volume and takes the rshim itself (rshim --force); the dpudevices/status
// skew needs a role without dpudevices/status (v25.4.0), and the B-script
// story needs script B.
func Applies(s Scenario, r dpf.Release) bool {
	switch r.Script {
	case dpf.ScriptNone:
		return s == Healthy || s == RshimOccupied || s == CertificateNotReady
	case dpf.ScriptHostAgent:
		return s == Healthy || s == APIServerUnreachable || s == NoDPUFound
	}
	switch s {
	case DPUDeviceStatusForbidden:
		return !slices.ContainsFunc(r.Rules, func(rule rbacv1.PolicyRule) bool { return slices.Contains(rule.Resources, "dpudevices/status") })
	case HypotheticalSecretsForbidden, HypotheticalEmptyCertificateFiles:
		return r.Script == dpf.ScriptB
	}
	return true
}

// CheckApplies returns an error naming the versions where a scenario of the
// mix applies when one cannot happen on the release.
func CheckApplies(m Mix, r dpf.Release) error {
	for _, e := range m {
		if Applies(e.Scenario, r) {
			continue
		}
		var where []string
		for _, o := range dpf.Releases() {
			if Applies(e.Scenario, o) {
				where = append(where, o.Version)
			}
		}
		return fmt.Errorf("scenario %s cannot happen on DPF %s (%w); it applies to %s. Scenarios for %s: %s",
			e.Scenario, r.Version, ErrNotApplicable, strings.Join(where, ", "), r.Version, scenariosFor(r))
	}
	return nil
}

// DefaultScenario is the scenario `sim up` runs when none is given: the
// flagship where it can happen, otherwise one that fails on the release.
func DefaultScenario(r dpf.Release) Scenario {
	for _, s := range []Scenario{DPUDeviceStatusForbidden, APIServerUnreachable, RshimOccupied} {
		if Applies(s, r) {
			return s
		}
	}
	return Healthy
}

func scenariosFor(r dpf.Release) string {
	return strings.Join(scenarioNames(slices.DeleteFunc(Scenarios(), func(s Scenario) bool { return !Applies(s, r) })), ", ")
}
