package diagnose

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
)

type skewCase struct {
	pod      evidence.Pod
	line     *logLine
	denied   []denied
	notFound bool // the API said the status subresource does not exist
}

// statusSubresourceSkew reports a dmsinit.sh that patches DPUDevice status
// (v25.7 and later: "Failed to update PCI address for DPUDevice ...")
// running against an operator whose role, or whose DPUDevice CRD, predates
// it: typically a newer hostdriver image with the v25.4.0 operator. RBAC can
// fix it only when the CRD has a status subresource.
func statusSubresourceSkew(v *view) []Finding {
	b := v.b
	var fixable, crd []skewCase
	for _, p := range v.failing() {
		sc, ok := skewCaseFor(v, p)
		if !ok {
			continue
		}
		if sc.notFound || !statusSubresource(b) {
			crd = append(crd, sc)
		} else {
			fixable = append(fixable, sc)
		}
	}
	var out []Finding
	if len(fixable) > 0 {
		out = append(out, skewFinding(b, fixable, true))
	}
	if len(crd) > 0 {
		out = append(out, skewFinding(b, crd, false))
	}
	return out
}

func skewCaseFor(v *view, p evidence.Pod) (skewCase, bool) {
	lines := v.log(p.Name)
	sc := skewCase{pod: p, denied: v.denied(p)}
	if l, e, ok := scriptError(lines, dpf.MsgUpdatePCIFailed); ok {
		sc.line = &l
		msg := strings.ToLower(e.Message)
		sc.notFound = strings.Contains(msg, "could not find the requested resource") || strings.Contains(msg, "notfound")
		return sc, true
	}
	for _, f := range v.forbidden(p.Name) {
		if req := forPodNode(v, p, f.line, f.fb.Request); !isStatusPatch(req) && !v.nowAllowed(p, req) {
			return skewCase{}, false // an earlier call is refused: RBACForbidden
		}
	}
	if bl, ok := firstBlocking(sc.denied); ok && isStatusPatch(bl.req) && patchesStatus(v.factsOf(p).calls) {
		return sc, true
	}
	return skewCase{}, false
}

// patchesStatus reports whether a call table has the status patch
// (dmsinit.sh C and later, and the host agent).
func patchesStatus(calls []dpf.Call) bool {
	return slices.ContainsFunc(calls, func(c dpf.Call) bool { return c.Resource == "dpudevices" && c.Subresource == "status" })
}

// statusSubresource reports whether the DPUDevice CRD has a status
// subresource: as seen, else as the cluster's release ships it.
func statusSubresource(b *evidence.Bundle) bool {
	in := b.Install
	if in.DPUDeviceCRD {
		return in.DPUDeviceStatusSubresource
	}
	r, ok := release(in.Version)
	return ok && r.DPUDeviceStatusSubresource
}

func skewFinding(b *evidence.Bundle, cases []skewCase, fixable bool) Finding {
	in := b.Install
	f := Finding{Class: ClassStatusSubresourceSkew, Code: CodeStatusSkewFixable, Severity: SeverityError, Fixable: fixable}
	if !fixable {
		f.Code = CodeStatusSkewCRD
	}
	var missing []access.Request
	versions := map[string]bool{}
	sarQuoted := map[string]bool{}
	for i, sc := range cases {
		p := sc.pod
		v := p.Version(in.Version)
		versions[v] = true
		for _, d := range sc.denied {
			missing = append(missing, d.req)
		}
		f.addPod(p.Name, fmt.Sprintf("dmsinit %s (%s) patches dpudevices/status; operator %s", p.Script(in.Version), v, cmp.Or(in.Version, "unknown")))
		if i >= maxQuoted {
			continue
		}
		if sc.line != nil {
			f.Evidence = appendLimited(f.Evidence, logEvidence(*sc.line), maxQuoted)
		}
		f.Evidence = quoteDenied(f.Evidence, sarQuoted, sc.denied, p.Node)
	}
	vs := slices.Collect(maps.Keys(versions))
	dpf.SortVersions(vs)
	f.Evidence = append(f.Evidence, Evidence{Kind: EvidenceConfig, Source: "versions",
		Text: fmt.Sprintf("pods run hostdriver %s; the operator is %s (from %s); DPUDevice CRD status subresource: %t",
			strings.Join(vs, ", "), cmp.Or(in.Version, "unknown"), cmp.Or(in.VersionSource, "unknown"), statusSubresource(b))})
	if fixable {
		status := access.Request{Verb: "patch", Group: dpf.GroupProvisioning, Resource: "dpudevices", Subresource: "status", Namespace: in.Namespace}
		f.Missing = withStatusReads(append(missing, status))
		f.Summary = fmt.Sprintf("%s: dmsinit.sh patches dpudevices/status, which the operator's DMS role (%s) does not grant: hostdriver and operator versions differ",
			plural(len(cases), "pod", "pods"), cmp.Or(in.Version, "unknown"))
		f.NextStep = "run `dpfdoctor fix` to grant get and patch on dpudevices/status in " + in.Namespace +
			" (no resourceNames: DPUDevice names are serial numbers) in a separate Role; in the long run, run the hostdriver image that matches the operator version"
		return f
	}
	f.Summary = fmt.Sprintf("%s: dmsinit.sh patches dpudevices/status, but this cluster's DPUDevice CRD has no status subresource (operator %s): no RBAC change can fix it",
		plural(len(cases), "pod", "pods"), cmp.Or(in.Version, "unknown"))
	f.NextStep = fmt.Sprintf("align versions: either upgrade the DPF operator and its CRDs to the hostdriver's version (%s), or run the hostdriver image of the operator's version (%s)",
		strings.Join(vs, ", "), cmp.Or(in.Version, "unknown"))
	return f
}
