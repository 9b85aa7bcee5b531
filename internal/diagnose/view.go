package diagnose

import (
	"fmt"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
)

// maxQuoted bounds how many pods' evidence a finding quotes, so a finding
// about 5,000 pods stays readable.
const maxQuoted = 3

// find returns the first log line containing s.
func find(lines []logLine, s string) (logLine, bool) {
	for _, l := range lines {
		if strings.Contains(l.text, s) {
			return l, true
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

func (d denied) isStatusPatch() bool { return isStatusPatch(d.req) }

func isStatusPatch(r access.Request) bool {
	return r.Group == dpf.GroupProvisioning && r.Resource == "dpudevices" && r.Subresource == "status"
}

// firstBlocking is the first denied call that stops the script.
func firstBlocking(ds []denied) (denied, bool) {
	for _, d := range ds {
		if d.blocks() {
			return d, true
		}
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
	out := append([]access.Request(nil), rs...)
	for _, r := range rs {
		if r.Verb == "patch" && r.Subresource == "status" {
			g := r
			g.Verb = "get"
			out = append(out, g)
		}
	}
	return access.Unique(out)
}
