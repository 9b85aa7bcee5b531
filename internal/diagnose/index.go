package diagnose

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
)

// view indexes a bundle for one classifier run, so that per-pod lookups
// stay cheap with thousands of pods.
type view struct {
	b       *evidence.Bundle
	pods    map[string]evidence.Pod
	logs    map[string][]logLine // own log lines by pod
	groups  map[string]*evidence.LogGroup
	shared  map[string]string // group ID → the read pod whose log the group's read pods agree on
	events  map[string][]evidence.Event
	secrets map[string]bool
	certs   map[string]evidence.Object
	dpuNode map[string]bool
	checks  map[string]evidence.AccessCheck
	denials map[string][]denied
	facts   map[string]*podFacts
	forbids map[string][]forbiddenLine // Forbidden lines by the pod whose log holds them
}

// podFacts are what a pod's spec says about its dmsinit.sh, computed once.
type podFacts struct {
	args      dpf.Args
	calls     []dpf.Call
	namespace string
	user      string
}

// forbiddenLine is a parsed API server Forbidden message in a log line.
type forbiddenLine struct {
	line logLine
	fb   dpf.Forbidden
}

// logLine is one line of a dms-init log and where it came from.
type logLine struct {
	text   string
	source string
	// shared names the pod the line is from when this pod's own logs were
	// not read and its failure signature group's read pods agree.
	shared string
}

func newView(b *evidence.Bundle) *view {
	v := &view{b: b, pods: make(map[string]evidence.Pod, len(b.Pods)), logs: map[string][]logLine{},
		groups: map[string]*evidence.LogGroup{}, shared: map[string]string{}, events: map[string][]evidence.Event{},
		secrets: make(map[string]bool, len(b.Secrets)), certs: make(map[string]evidence.Object, len(b.Certificates)),
		dpuNode: make(map[string]bool, len(b.DPUNodes)), checks: make(map[string]evidence.AccessCheck, len(b.Access)),
		denials: map[string][]denied{}, facts: make(map[string]*podFacts, len(b.Pods)), forbids: map[string][]forbiddenLine{}}
	for _, p := range b.Pods {
		v.pods[p.Name] = p
	}
	for _, l := range b.Logs {
		src := fmt.Sprintf("pod %s %s (%s)", l.Pod, l.Container, l.Instance)
		var lines []logLine
		for _, t := range strings.Split(l.Text, "\n") {
			if t = strings.TrimRight(t, "\r"); strings.TrimSpace(t) != "" {
				lines = append(lines, logLine{text: t, source: src})
			}
		}
		if l.Instance == evidence.InstancePrevious {
			v.logs[l.Pod] = append(lines, v.logs[l.Pod]...)
		} else {
			v.logs[l.Pod] = append(v.logs[l.Pod], lines...)
		}
	}
	for i := range b.LogGroups {
		g := &b.LogGroups[i]
		for _, p := range g.Pods {
			v.groups[p] = g
		}
		v.shared[g.ID] = v.agreed(g)
	}
	for _, e := range b.Events {
		if e.Kind == "Pod" {
			v.events[e.Name] = append(v.events[e.Name], e)
		}
	}
	for _, s := range b.Secrets {
		v.secrets[s.Name] = true
	}
	for _, c := range b.Certificates {
		v.certs[c.Name] = c
	}
	for _, n := range b.DPUNodes {
		v.dpuNode[n.Name] = true
	}
	for _, c := range b.Access {
		v.checks[c.Key()] = c
	}
	return v
}

// agreed returns the first read pod of the group when the read pods fail
// the same way (same verdict); otherwise "": nothing is inferred for unread
// pods.
func (v *view) agreed(g *evidence.LogGroup) string {
	out, first := "", ""
	for _, peer := range g.Fetched {
		lines := v.logs[peer]
		if len(lines) == 0 {
			continue
		}
		texts := make([]string, len(lines))
		for i, l := range lines {
			texts[i] = l.text
		}
		// dpf.LogVerdict is the rule evidence also uses to stop reading a
		// failure signature's logs.
		vd := dpf.LogVerdict(texts)
		if out == "" {
			out, first = peer, vd
			continue
		}
		if vd != first {
			return ""
		}
	}
	return out
}

// failing returns the pods that are not Ready.
func (v *view) failing() []evidence.Pod {
	return slices.DeleteFunc(slices.Clone(v.b.Pods), func(p evidence.Pod) bool { return p.Ready })
}

// log returns the pod's log lines: its own when they were read, else those
// its failure signature group's read pods agree on.
func (v *view) log(pod string) []logLine {
	if lines := v.logs[pod]; len(lines) > 0 {
		return lines
	}
	peer := v.logsFrom(pod)
	out := slices.Clone(v.logs[peer])
	for i := range out {
		out[i].shared = peer
	}
	return out
}

// logsFrom names the pod whose logs classify pod, when not its own.
func (v *view) logsFrom(pod string) string {
	if len(v.logs[pod]) > 0 {
		return ""
	}
	if g, ok := v.groups[pod]; ok && v.shared[g.ID] != pod {
		return v.shared[g.ID]
	}
	return ""
}

// logNotRead says why a failing pod's own dms-init log was not read, and
// where its class came from then; "" when it was read, or when the
// container never ran (there is no log).
func (v *view) logNotRead(p evidence.Pod) string {
	c, ok := p.Work()
	if p.Ready || !ok || !c.Ran() || len(v.logs[p.Name]) > 0 {
		return ""
	}
	if v.b.HasGap("pods/log") {
		return "log not read: pods/log is forbidden for your user; class from pod state, events, objects and access reviews"
	}
	g, ok := v.groups[p.Name]
	switch {
	case !ok:
		return "log not read"
	case v.logsFrom(p.Name) != "":
		return fmt.Sprintf("log not read: class inferred from %s %s with the same failure signature",
			choose(len(g.Fetched), "pod", "pods"), listFirst(g.Fetched, 5, " and %d more"))
	case g.Unread == evidence.UnreadDisabled:
		return "log not read: --max-logs 0; class from pod state, events, objects and access reviews"
	case g.Unread == evidence.UnreadMaxLogs:
		return "log not read: log budget reached (--max-logs); class from pod state, events, objects and access reviews"
	case slices.Contains(g.Fetched, p.Name):
		return "log read but empty or unreadable"
	case len(g.Fetched) > 0:
		return fmt.Sprintf("log not read, and the pods read for its failure signature (%s) fail differently", listFirst(g.Fetched, 5, " and %d more"))
	}
	return "log not read"
}

// listFirst joins up to n names, then says with more how many are left.
func listFirst(names []string, n int, more string) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:n], ", ") + fmt.Sprintf(more, len(names)-n)
}

// factsOf returns the pod's dmsinit.sh facts.
func (v *view) factsOf(p evidence.Pod) *podFacts {
	if f, ok := v.facts[p.Name]; ok {
		return f
	}
	args := p.Args()
	f := &podFacts{args: args, calls: dpf.Calls(p.Script(v.b.Install.Version), args.CertPath()),
		namespace: cmp.Or(args.Namespace, dpf.DefaultNamespace), user: p.Subject().User}
	v.facts[p.Name] = f
	return f
}

// forbidden returns the Forbidden messages in the pod's log (its own, or
// its group's when inferred), parsed once per log.
func (v *view) forbidden(pod string) []forbiddenLine {
	lines := v.log(pod)
	if len(lines) == 0 {
		return nil
	}
	owner := pod
	if lines[0].shared != "" {
		owner = lines[0].shared
	}
	fs, ok := v.forbids[owner]
	if !ok {
		for _, l := range v.logs[owner] {
			if fb, ok := dpf.ParseForbidden(l.text); ok {
				fs = append(fs, forbiddenLine{line: l, fb: fb})
			}
		}
		v.forbids[owner] = fs
	}
	if owner == pod {
		return fs
	}
	out := slices.Clone(fs)
	for i := range out {
		out[i].line.shared = owner
	}
	return out
}

// denied returns the pod's calls its ServiceAccount may not make, in the
// order the script makes them. Calls whose review failed are skipped.
func (v *view) denied(p evidence.Pod) []denied {
	if ds, ok := v.denials[p.Name]; ok {
		return ds
	}
	var out []denied
	seen := map[string]bool{}
	f := v.factsOf(p)
	for _, c := range f.calls {
		if c.NonResourceURL != "" {
			continue
		}
		chk, ok := v.checks[evidence.CheckKey(f.user, c, f.namespace)]
		if !ok || !chk.Known() || chk.AllowedFor(p.Node) {
			continue
		}
		req := c.Request(f.namespace, p.Node)
		if seen[req.Key()] {
			continue
		}
		seen[req.Key()] = true
		out = append(out, denied{call: c, req: req, check: chk})
	}
	v.denials[p.Name] = out
	return out
}

// nowAllowed reports whether a request refused in an earlier run is allowed
// now: a review (or the listed RBAC) answers yes for the call that makes it.
func (v *view) nowAllowed(p evidence.Pod, r access.Request) bool {
	f := v.factsOf(p)
	for _, c := range f.calls {
		if !sameResource(c.Request(f.namespace, p.Node), r) {
			continue
		}
		chk, ok := v.checks[evidence.CheckKey(f.user, c, f.namespace)]
		return ok && chk.Known() && chk.AllowedFor(p.Node)
	}
	return false
}

// sameResource reports whether a and b are the same verb on the same
// resource and subresource.
func sameResource(a, b access.Request) bool {
	return a.Verb == b.Verb && a.Group == b.Group && a.Resource == b.Resource && a.Subresource == b.Subresource
}

// maxQuoted bounds how many pods' evidence a finding quotes, so a finding
// about 5,000 pods stays readable.
const maxQuoted = 3

// find returns the first log line containing the first of ss that one does.
func find(lines []logLine, ss ...string) (logLine, bool) {
	for _, s := range ss {
		for _, l := range lines {
			if strings.Contains(l.text, s) {
				return l, true
			}
		}
	}
	return logLine{}, false
}

// scriptError returns the first "[dmsinit] Error (...)" line whose message
// starts with prefix.
func scriptError(lines []logLine, prefix string) (logLine, dpf.ScriptError, bool) {
	for _, l := range lines {
		if e, ok := dpf.ParseErrorLine(strings.TrimSpace(l.text)); ok && strings.HasPrefix(e.Message, prefix) {
			return l, e, true
		}
	}
	return logLine{}, dpf.ScriptError{}, false
}

func logEvidence(l logLine) Evidence {
	src := l.source
	if l.shared != "" {
		src += " (same failure signature; this pod's logs were not read)"
	}
	return Evidence{Kind: EvidenceLog, Source: src, Text: strings.TrimSpace(l.text)}
}

// denied is one call of a pod's call table that its ServiceAccount may not
// make, per SubjectAccessReview.
type denied struct {
	call  dpf.Call
	req   access.Request // concrete, for the pod's node
	check evidence.AccessCheck
}

// blocks reports whether the script stops when the call is refused: calls
// with a fatal message, and the certificate Secret read the script waits on.
func (d denied) blocks() bool { return d.call.FatalMessage != "" || d.call.Resource == "secrets" }

func isStatusPatch(r access.Request) bool {
	return r.Group == dpf.GroupProvisioning && r.Resource == "dpudevices" && r.Subresource == "status"
}

// firstBlocking is the first denied call that stops the script.
func firstBlocking(ds []denied) (denied, bool) {
	if i := slices.IndexFunc(ds, denied.blocks); i >= 0 {
		return ds[i], true
	}
	return denied{}, false
}

func sarEvidence(d denied, node string) Evidence {
	if d.check.Method == evidence.MethodNotReached {
		return Evidence{Kind: EvidenceSAR, Source: "call order",
			Text: fmt.Sprintf("%s needs %s: %s", d.check.Subject.User, d.req.String(), d.check.Reason)}
	}
	answer := "denied"
	if d.check.Reason != "" {
		answer += " (" + d.check.Reason + ")"
	}
	text := fmt.Sprintf("%s may not %s: %s", d.check.Subject.User, d.req.String(), answer)
	if d.check.Request.Name != d.req.Name && d.check.Request.Name != "" {
		text += fmt.Sprintf("; asked for node %s's name %q, which stands for %s", node, d.check.Request.Name, d.check.NamePattern)
	}
	return Evidence{Kind: EvidenceSAR, Source: "SubjectAccessReview", Text: text}
}

// quoteDenied appends the review answers of ds not quoted yet.
func quoteDenied(es []Evidence, quoted map[string]bool, ds []denied, node string) []Evidence {
	for _, d := range ds {
		if k := d.check.Request.Key(); !quoted[k] {
			quoted[k] = true
			es = append(es, sarEvidence(d, node))
		}
	}
	return es
}

// appendLimited appends e unless the same text of the same kind is already
// quoted or limit items of its kind are; it keeps findings short at scale.
func appendLimited(es []Evidence, e Evidence, limit int) []Evidence {
	n := 0
	for _, x := range es {
		if x.Kind == e.Kind {
			n++
			if x.Text == e.Text {
				return es
			}
		}
	}
	if n >= limit {
		return es
	}
	return append(es, e)
}

func plural(n int, one, many string) string { return fmt.Sprintf("%d %s", n, choose(n, one, many)) }

// choose is one when n is 1, else many.
func choose(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// release returns the facts of the pod's DPF release line, if known.
func release(version string) (dpf.Release, bool) {
	r, err := dpf.Lookup(version)
	return r, err == nil
}

// withStatusReads adds, for every status patch, a get on the same status
// subresource: `kubectl patch --subresource status` reads it first, which is
// why DPF's own roles grant get, patch and update on dpudevices/status.
func withStatusReads(rs []access.Request) []access.Request {
	out := slices.Clone(rs)
	for _, r := range rs {
		if r.Verb == "patch" && r.Subresource == "status" {
			r.Verb = "get"
			out = append(out, r)
		}
	}
	return access.Unique(out)
}
