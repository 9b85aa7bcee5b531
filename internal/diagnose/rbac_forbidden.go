package diagnose

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
)

// rbacCase is one pod's RBAC problem.
type rbacCase struct {
	pod       evidence.Pod
	forbidden []logForbidden
	denied    []denied
	missing   []access.Request
	quiet     []logLine // "Waiting for secret" / "Timed out" lines when no Forbidden is visible
}

type logForbidden struct {
	line logLine
	req  access.Request // for this pod's node
}

// rbacForbidden reports dms-init failing because its ServiceAccount may not
// make a call its dmsinit.sh makes. The exact permission comes from the
// Forbidden text kubectl prints when the script shows it, else from
// SubjectAccessReviews against the pod's call table (the script hides
// kubectl's stderr around the Secret read from v25.7 on, so only "Waiting
// for secret..." reaches the log). Missing also lists denied calls the
// script makes later, so one fix grants them all. A denied
// dpudevices/status patch that comes first is StatusSubresourceSkew's.
func rbacForbidden(v *view) []Finding {
	groups := map[string][]rbacCase{}
	granted := Finding{Class: ClassRBACForbidden, Code: CodeRBACGranted, Severity: SeverityError, Fixable: true}
	for _, p := range v.failing() {
		if rc, ok := rbacCaseFor(v, p); ok {
			k := missingKey(rc.missing, p.Node)
			groups[k] = append(groups[k], rc)
		} else if detail, ev, ok := grantedSince(v, p); ok {
			granted.addPod(p.Name, detail)
			granted.Evidence = appendLimited(granted.Evidence, ev, maxQuoted)
		}
	}
	var out []Finding
	for _, k := range slices.Sorted(maps.Keys(groups)) {
		out = append(out, rbacFinding(v.b, groups[k]))
	}
	if len(granted.Pods) > 0 {
		granted.Summary = fmt.Sprintf("%s failed on RBAC that allows the call now (granted since that run): %s at the next restart",
			plural(len(granted.Pods), "pod", "pods"), choose(len(granted.Pods), "it passes", "they pass"))
		granted.NextStep = "nothing to grant; dms-init passes at its next restart, " + dpf.RetryWithin +
			"; `dpfdoctor fix --apply` restarts the pods now where the operator re-creates them (v25.7+) and otherwise watches them recover"
		out = append(out, granted)
	}
	return out
}

// grantedSince reports a pod whose last dms-init run failed on RBAC that
// allows the call now: a Forbidden in its log for a call a review allows,
// or (the script hiding kubectl's error) a wait for the node's Secret that
// exists and that it may read now. Such a pod passes at its next restart;
// typically dpfdoctor's own grant, written moments ago or by GitOps.
func grantedSince(v *view, p evidence.Pod) (string, Evidence, bool) {
	if _, denied := firstBlocking(v.denied(p)); denied || dmsInitCompleted(p) {
		return "", Evidence{}, false // a call is still refused (the skew's, say): not waiting for a retry
	}
	for _, f := range v.forbidden(p.Name) {
		if req := forPodNode(v, p, f.line, f.fb.Request); !isStatusPatch(req) && v.nowAllowed(p, req) {
			return fmt.Sprintf("its last run was refused %s, which is allowed now", req), logEvidence(f.line), true
		}
	}
	l, ok := find(v.log(p.Name), dpf.MsgSecretTimeoutC, dpf.MsgSecretTimeoutB, dpf.MsgWaitingSecretC, dpf.MsgWaitingSecretB)
	if !ok || !v.b.SecretsListed {
		return "", Evidence{}, false
	}
	f := v.factsOf(p)
	for _, c := range f.calls {
		if req := c.Request(f.namespace, p.Node); c.Resource == "secrets" && req.Name != "" && v.secrets[req.Name] && v.nowAllowed(p, req) {
			return fmt.Sprintf("its last run timed out waiting for Secret %s, which exists and which it may read now", req.Name), logEvidence(l), true
		}
	}
	return "", Evidence{}, false
}

// rbacCaseFor decides whether RBAC stops the pod's dms-init.
func rbacCaseFor(v *view, p evidence.Pod) (rbacCase, bool) {
	if dmsInitCompleted(p) {
		return rbacCase{}, false // RBAC did not stop it (see emptyCertificateFiles)
	}
	rc := rbacCase{pod: p}
	lines := v.log(p.Name)
	for _, f := range v.forbidden(p.Name) {
		req := forPodNode(v, p, f.line, f.fb.Request)
		if isStatusPatch(req) || v.nowAllowed(p, req) {
			continue // the skew's, or granted since that run
		}
		rc.forbidden = append(rc.forbidden, logForbidden{line: f.line, req: req})
	}
	rc.denied = v.denied(p)
	_, pciFailed := find(lines, dpf.MsgUpdatePCIFailed)
	blocking, hasBlocking := firstBlocking(rc.denied)
	if len(rc.forbidden) == 0 && !(hasBlocking && !isStatusPatch(blocking.req) && !pciFailed) {
		return rbacCase{}, false
	}
	if len(rc.forbidden) == 0 {
		for _, msgs := range [][]string{{dpf.MsgWaitingSecretC, dpf.MsgWaitingSecretB}, {dpf.MsgSecretTimeoutC, dpf.MsgSecretTimeoutB}} {
			if l, ok := find(lines, msgs...); ok {
				rc.quiet = append(rc.quiet, l)
			}
		}
	}
	var missing []access.Request
	for _, f := range rc.forbidden {
		missing = append(missing, f.req)
	}
	for _, d := range rc.denied {
		missing = append(missing, d.req)
	}
	rc.missing = withStatusReads(missing)
	return rc, true
}

// forPodNode rewrites a Forbidden request quoted from another pod of the
// same failure signature group to this pod's node: through the call table
// when a call matches, else by replacing the peer's node name.
func forPodNode(v *view, p evidence.Pod, l logLine, r access.Request) access.Request {
	if l.shared == "" || r.Name == "" {
		return r
	}
	peer, ok := v.pods[l.shared]
	if !ok || peer.Node == "" {
		return r
	}
	f := v.factsOf(p)
	for _, c := range f.calls {
		if cr := c.Request(f.namespace, peer.Node); sameResource(cr, r) && cr.Name == r.Name {
			return c.Request(r.Namespace, p.Node)
		}
	}
	r.Name = strings.ReplaceAll(r.Name, peer.Node, p.Node)
	return r
}

// missingKey groups pods that miss the same permissions, with node names
// abstracted.
func missingKey(rs []access.Request, node string) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, patternOf(r, node))
	}
	sort.Strings(parts)
	return strings.Join(parts, ";")
}

// patternOf renders a request with the node's name replaced by {node}.
func patternOf(r access.Request, node string) string {
	if node != "" {
		r.Name = strings.ReplaceAll(r.Name, node, dpf.PatternNode)
	}
	return r.String()
}

func rbacFinding(b *evidence.Bundle, cases []rbacCase) Finding {
	f := Finding{Class: ClassRBACForbidden, Code: CodeRBACForbidden, Severity: SeverityError, Fixable: true}
	var missing []access.Request
	sarQuoted := map[string]bool{}
	for i, rc := range cases {
		p := rc.pod
		missing = append(missing, rc.missing...)
		f.addPod(p.Name, podDetail(rc))
		if i >= maxQuoted {
			continue
		}
		for _, fb := range rc.forbidden {
			f.Evidence = appendLimited(f.Evidence, logEvidence(fb.line), maxQuoted)
		}
		for _, l := range rc.quiet {
			f.Evidence = appendLimited(f.Evidence, logEvidence(l), 2*maxQuoted)
		}
		f.Evidence = quoteDenied(f.Evidence, sarQuoted, rc.denied, p.Node)
	}
	f.Missing = access.Unique(missing)
	first := cases[0]
	var pats []string
	for _, r := range first.missing {
		pats = append(pats, patternOf(r, first.pod.Node))
	}
	sa := first.pod.ServiceAccountName()
	how := "kubectl's Forbidden message in the dms-init log"
	if len(first.forbidden) == 0 {
		how = "SubjectAccessReview (the script hides kubectl's error here)"
	}
	f.Summary = fmt.Sprintf("%s: ServiceAccount %s may not %s (from %s)",
		plural(len(cases), "pod", "pods"), sa, strings.Join(pats, "; "), how)
	role := "dpf-provisioning-dms-role"
	if r, ok := release(b.Install.Version); ok && r.ClusterRole != "" {
		role = r.ClusterRole
	}
	what := choose(len(f.Missing), "this permission", fmt.Sprintf("these %d permissions", len(f.Missing)))
	f.NextStep = fmt.Sprintf("run `dpfdoctor fix` to grant exactly %s in a separate Role/ClusterRole and binding for %s "+
		"(do not edit %s: the DPF operator re-applies it and reverts the change); dms-init retries by itself",
		what, sa, role)
	return f
}

func podDetail(rc rbacCase) string {
	if len(rc.missing) == 0 {
		return "RBAC denied"
	}
	first := rc.missing[0]
	if len(rc.forbidden) > 0 {
		first = rc.forbidden[0].req
	} else if bl, ok := firstBlocking(rc.denied); ok {
		first = bl.req
	}
	s := "may not " + first.String()
	if n := len(rc.missing) - 1; n > 0 {
		s += fmt.Sprintf(" (+%d more it needs)", n)
	}
	return s
}
