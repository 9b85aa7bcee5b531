package diagnose

import (
	"fmt"
	"slices"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
)

// certificateNotReady reports pods that cannot start because the node's
// server Secret (<node>-server-secret, written by cert-manager for the
// Certificate <node>-dms-server-cert) is missing: the kubelet cannot mount
// server-volume, so not even rshim-preflight runs. It also covers the
// certificate path of dmsinit.sh timing out on a Secret it may read but
// that does not exist.
func certificateNotReady(v *view) []Finding {
	b := v.b
	f := Finding{Class: ClassCertificateNotReady, Code: CodeCertificateNotReady, Severity: SeverityError}
	issuerBad := false
	for _, p := range v.failing() {
		ev, detail, ok := certificateEvidence(v, p)
		if !ok {
			continue
		}
		f.addPod(p.Name, detail)
		if len(f.Pods) <= maxQuoted {
			f.Evidence = append(f.Evidence, ev...)
		}
	}
	if len(f.Pods) == 0 {
		return nil
	}
	ns := b.Install.Namespace
	if is, ok := b.Issuer(dpf.Issuer); ok {
		if _, notReady := is.NotReady(); notReady {
			issuerBad = true
			f.Evidence = append(f.Evidence, Evidence{Kind: EvidenceObject, Source: "Issuer " + ns + "/" + dpf.Issuer, Text: conditionText(is, "Ready")})
		}
	} else if len(b.Issuers) > 0 {
		issuerBad = true
		f.Evidence = append(f.Evidence, Evidence{Kind: EvidenceObject, Source: "Issuer " + ns + "/" + dpf.Issuer, Text: "absent"})
	}
	first := v.pods[f.Pods[0]]
	f.Summary = fmt.Sprintf("%s cannot start: the node's DMS server certificate Secret does not exist", plural(len(f.Pods), "pod", "pods"))
	step := fmt.Sprintf("find why cert-manager has not issued it: kubectl describe certificate %s -n %s (or `cmctl status certificate %s -n %s`)",
		first.CertificateName(), ns, first.CertificateName(), ns)
	if issuerBad {
		step = fmt.Sprintf("the Issuer %s is not Ready, so no DMS certificate can be issued: kubectl describe issuer %s -n %s, and check its CA Secret dpf-provisioning-ca-secret and the cert-manager pods; then ",
			dpf.Issuer, dpf.Issuer, ns) + step
	}
	f.NextStep = step + "; the pod starts by itself once the Secret exists (no RBAC change helps here)"
	return []Finding{f}
}

// certificateEvidence decides whether a pod is blocked by its certificate
// and returns what shows it.
func certificateEvidence(v *view, p evidence.Pod) ([]Evidence, string, bool) {
	b := v.b
	secret := dpf.SecretName(p.Node)
	if i := slices.IndexFunc(p.Volumes, func(v evidence.Volume) bool { return v.Name == dpf.ServerVolume }); i >= 0 && p.Volumes[i].Secret != "" {
		secret = p.Volumes[i].Secret
	}
	certName := p.CertificateName()
	ns := b.Install.Namespace
	var ev []Evidence
	mount := false
	for _, e := range v.events[p.Name] {
		if e.Reason == "FailedMount" && (strings.Contains(e.Message, dpf.ServerVolume) || strings.Contains(e.Message, secret)) {
			mount = true
			ev = append(ev, Evidence{Kind: EvidenceEvent, Source: "pod " + p.Name + " event FailedMount", Text: e.Message})
			break
		}
	}
	known := b.SecretsListed // else whether the Secret exists is not known
	absent := known && !v.secrets[secret]
	if absent {
		ev = append(ev, Evidence{Kind: EvidenceObject, Source: "Secret " + ns + "/" + secret, Text: "absent (Secret metadata list)"})
	}
	cert, haveCert := v.certs[certName]
	certBad := false
	switch {
	case haveCert && !cert.Ready():
		certBad = true
		ev = append(ev, Evidence{Kind: EvidenceObject, Source: "Certificate " + ns + "/" + certName, Text: conditionText(cert, "Ready")})
	case !haveCert && !b.HasGap("certificates"):
		certBad = true
		ev = append(ev, Evidence{Kind: EvidenceObject, Source: "Certificate " + ns + "/" + certName, Text: "absent"})
	}
	if !p.Started() && (mount || absent) {
		return ev, "cannot mount Secret " + secret + " (Certificate " + certName + " not issued)", true
	}
	// dmsinit.sh's certificate path (--external-certificate none) timed
	// out on a Secret it is allowed to read: the Secret is the problem when
	// it is absent (or, with Secrets unlisted, its Certificate is not Ready).
	missing := absent || (!known && certBad)
	for _, msg := range []string{dpf.MsgSecretTimeoutC, dpf.MsgSecretTimeoutB} {
		if l, _, ok := scriptError(v.log(p.Name), msg); ok && missing && v.secretReadAllowed(p) {
			return append(ev, logEvidence(l)), "timed out waiting for Secret " + secret + ", which cert-manager has not written", true
		}
	}
	return nil, "", false
}

// secretReadAllowed reports whether no review denied the pod's Secret read.
func (v *view) secretReadAllowed(p evidence.Pod) bool {
	return !slices.ContainsFunc(v.denied(p), func(d denied) bool { return d.req.Resource == "secrets" })
}

func conditionText(o evidence.Object, t string) string {
	c, ok := o.Condition(t)
	if !ok {
		return t + " condition not set"
	}
	s := fmt.Sprintf("%s=%s", c.Type, c.Status)
	if c.Reason != "" {
		s += " " + c.Reason
	}
	if c.Message != "" {
		s += ": " + c.Message
	}
	return s
}
