package evidence

import (
	"slices"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
)

// Pod returns the named pod.
func (b *Bundle) Pod(name string) (Pod, bool) {
	return first(b.Pods, func(p Pod) bool { return p.Name == name })
}

// PodLogs returns the logs fetched for a pod, previous instance first.
func (b *Bundle) PodLogs(pod string) []Log {
	var prev, cur []Log
	for _, l := range b.Logs {
		if l.Pod != pod {
			continue
		}
		if l.Instance == InstancePrevious {
			prev = append(prev, l)
		} else {
			cur = append(cur, l)
		}
	}
	return append(prev, cur...)
}

// Group returns the log group a pod belongs to.
func (b *Bundle) Group(pod string) (LogGroup, bool) {
	return first(b.LogGroups, func(g LogGroup) bool { return slices.Contains(g.Pods, pod) })
}

// EventsFor returns the events about one object.
func (b *Bundle) EventsFor(kind, name string) []Event {
	var out []Event
	for _, e := range b.Events {
		if e.Kind == kind && e.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// Certificate returns the named cert-manager Certificate.
func (b *Bundle) Certificate(name string) (Object, bool) { return findObject(b.Certificates, name) }

// Issuer returns the named cert-manager Issuer.
func (b *Bundle) Issuer(name string) (Object, bool) { return findObject(b.Issuers, name) }

// DPUNode returns the named DPUNode.
func (b *Bundle) DPUNode(name string) (Object, bool) { return findObject(b.DPUNodes, name) }

func findObject(os []Object, name string) (Object, bool) {
	return first(os, func(o Object) bool { return o.Name == name })
}

// first returns the first element of xs that match accepts.
func first[T any](xs []T, match func(T) bool) (T, bool) {
	if i := slices.IndexFunc(xs, match); i >= 0 {
		return xs[i], true
	}
	var zero T
	return zero, false
}

// SecretPresent reports whether a Secret exists; known is false when Secrets
// could not be listed.
func (b *Bundle) SecretPresent(name string) (present, known bool) {
	if !b.SecretsListed {
		return false, false
	}
	return slices.ContainsFunc(b.Secrets, func(s SecretMeta) bool { return s.Name == name }), true
}

// HasGap reports whether the evidence named what (e.g. "pods/log") is
// missing.
func (b *Bundle) HasGap(what string) bool {
	return slices.ContainsFunc(b.Gaps, func(g Gap) bool { return g.What == what })
}

// Subject is the identity the pod's kubectl calls run as.
func (p Pod) Subject() access.Subject {
	return access.ServiceAccount(p.Namespace, p.ServiceAccountName())
}

// CheckKey identifies one access pattern: who asks, and the call with its
// name pattern rather than a concrete name.
func CheckKey(subjectUser string, c dpf.Call, namespace string) string {
	r := c.Request(namespace, "")
	return strings.Join([]string{subjectUser, r.Verb, r.Group, r.Resource, r.Subresource, r.Namespace, namePattern(c)}, "|")
}

// Key is the check's CheckKey.
func (c AccessCheck) Key() string {
	r := c.Request
	return strings.Join([]string{c.Subject.User, r.Verb, r.Group, r.Resource, r.Subresource, r.Namespace, c.NamePattern}, "|")
}

// namePattern is the name pattern dpfdoctor can resolve per node: patterns
// naming only the node; "" for calls without a name or with parts
// ({pci}, {serial}) only the host knows.
func namePattern(c dpf.Call) string {
	if c.Name == "" || strings.Contains(strings.ReplaceAll(c.Name, dpf.PatternNode, ""), "{") {
		return ""
	}
	return c.Name
}

// Check returns the access check that answers a pod's call.
func (b *Bundle) Check(p Pod, c dpf.Call) (AccessCheck, bool) {
	k := CheckKey(p.Subject().User, c, p.ScriptNamespace())
	return first(b.Access, func(a AccessCheck) bool { return a.Key() == k })
}

// ClusterVersion is Install.Version.
func (b *Bundle) ClusterVersion() string { return b.Install.Version }
