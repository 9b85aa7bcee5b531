package diagnose

import (
	"fmt"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
)

// emptyCertificateFiles reports pods whose dms-init completed but whose dms
// container fails, where dms-init ran dmsinit.sh B (v25.4.0) with
// --external-certificate none and its ServiceAccount may not get the
// node's Secret: B's three `get secret` reads are unchecked, so after
// Forbidden it writes empty certificate files and exits 0
// (docs/versions.md), and dms then fails on them. It is not dms-init's RBAC
// failure: dms-init succeeded and does not run again while the pod lives,
// so a grant alone changes nothing. The operator passes
// --external-certificate TODO and mounts <node>-server-secret itself, so
// the ServiceAccount needs no Secret at all.
func emptyCertificateFiles(v *view) []Finding {
	f := Finding{Class: ClassEmptyCertificateFiles, Code: CodeEmptyCertificateFiles, Severity: SeverityError}
	for _, p := range v.failing() {
		dms, lines, ds, ok := emptyCertificatePod(v, p)
		if !ok {
			continue
		}
		f.addPod(p.Name, "dms-init completed with empty certificate files (Secret reads Forbidden); dms exits on them")
		if len(f.Pods) > maxQuoted {
			continue
		}
		t, _ := dms.LastTermination()
		f.Evidence = append(f.Evidence, Evidence{Kind: EvidenceObject, Source: "pod " + p.Name,
			Text: fmt.Sprintf("init container %s completed (exit 0); container %s exited %d (%s), restarted %d times", dpf.ContainerDMSInit, dms.Name, t.ExitCode, t.Reason, dms.RestartCount)})
		if len(lines) > 0 {
			f.Evidence = append(f.Evidence, logEvidence(lines[0]))
		}
		for _, d := range ds {
			f.Evidence = append(f.Evidence, sarEvidence(d, p.Node))
		}
	}
	if len(f.Pods) == 0 {
		return nil
	}
	f.Summary = fmt.Sprintf("%s: dms-init ran dmsinit.sh B with --external-certificate none, its Secret reads were Forbidden and ignored, "+
		"and it left empty certificate files that the dms container fails on", plural(len(f.Pods), "pod", "pods"))
	f.NextStep = "not an RBAC fix: dms-init already succeeded and does not run again, so granting Secrets changes nothing, and the pod needs none " +
		"(the operator passes --external-certificate TODO and mounts <node>-server-secret at /opt/dpf/dms/certs). Restore the operator's dms-init " +
		"arguments (find what sets --external-certificate none), then re-create the pod; on v25.4.0 the operator re-creates it only while the node has no DPUNode"
	return []Finding{f}
}

// emptyCertificatePod returns the failing dms container of a pod whose
// dms-init (script B, certificate path) completed, with the Forbidden
// Secret reads in its log and the denied reviews of them.
func emptyCertificatePod(v *view, p evidence.Pod) (dms evidence.Container, lines []logLine, ds []denied, ok bool) {
	dms, blocked := p.Blocking()
	t, terminated := dms.LastTermination()
	if !blocked || dms.Name != dpf.ContainerDMS || !terminated || t.ExitCode == 0 || !dmsInitCompleted(p) ||
		!v.factsOf(p).args.CertPath() || p.Script(v.b.Install.Version) != dpf.ScriptB {
		return dms, nil, nil, false
	}
	for _, fb := range v.forbidden(p.Name) {
		if fb.fb.Request.Resource == "secrets" {
			lines = append(lines, fb.line)
		}
	}
	for _, d := range v.denied(p) {
		if d.req.Resource == "secrets" {
			ds = append(ds, d)
		}
	}
	return dms, lines, ds, len(lines)+len(ds) > 0
}

// dmsInitCompleted reports whether the pod's dms-init ran to exit 0.
func dmsInitCompleted(p evidence.Pod) bool {
	c, ok := p.Init(dpf.ContainerDMSInit)
	return ok && c.State.Terminated() && c.State.ExitCode == 0
}
