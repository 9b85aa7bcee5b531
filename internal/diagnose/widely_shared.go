package diagnose

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
)

// widelyShared checks the widely shared diagnosis of DMS pods stuck in
// Init:CrashLoopBackOff on v25.4.0 ("dpf-provisioning-dms-role lacks
// secrets; patch it") against this cluster, and says plainly where it is
// wrong. In Kubernetes mode the operator passes --external-certificate TODO,
// so dmsinit.sh never reads a Secret there.
func widelyShared(v *view, d *Diagnosis) string {
	b := v.b
	if d.Summary.Failing == 0 {
		return ""
	}
	secretPods := map[string]bool{}
	for _, f := range d.Findings {
		if f.Class == ClassRBACForbidden && slices.ContainsFunc(f.Missing, func(r access.Request) bool { return r.Resource == "secrets" && r.Group == "" }) {
			for _, p := range f.Pods {
				secretPods[p] = true
			}
		}
	}
	var k8sMode, failing int
	others := map[Class]int{}
	for _, p := range d.Pods {
		if p.Class == ClassHealthy {
			continue
		}
		failing++
		if pod, ok := v.pods[p.Name]; ok && !v.factsOf(pod).args.CertPath() {
			k8sMode++
		}
		if !secretPods[p.Name] {
			others[p.Class]++
		}
	}
	const story = "The widely shared diagnosis (v25.4.0 DMS pods crash because dpf-provisioning-dms-role lacks `secrets`; patch that ClusterRole)"
	var s []string
	switch {
	case len(secretPods) == 0:
		none := choose(failing, "the failing pod is not", fmt.Sprintf("none of the %d failing pods is", failing))
		s = append(s, fmt.Sprintf("%s is wrong for this cluster: %s blocked by Secrets RBAC.", story, none))
		if k8sMode > 0 {
			s = append(s, fmt.Sprintf("%s dms-init with --external-certificate other than \"none\" (the operator passes TODO), so dmsinit.sh never reads a Secret; granting secrets changes nothing.",
				plural(k8sMode, "pod runs", "pods run")))
		}
		if n := others[ClassEmptyCertificateFiles]; n > 0 {
			s = append(s, fmt.Sprintf("%s dmsinit.sh B with --external-certificate none: it ignored its Forbidden Secret reads and completed with empty certificate files; granting secrets now does not run it again.",
				plural(n, "pod ran", "pods ran")))
		}
		if secretsAllowed(b) {
			s = append(s, "The ServiceAccount may already get Secrets (SubjectAccessReview allowed), and pods still fail.")
		}
		s = append(s, "Failing: "+breakdown(others)+".")
	case len(secretPods) < failing:
		s = append(s, fmt.Sprintf("%s holds for %s of %d failing pods (their dms-init runs the certificate path, --external-certificate none, and may not get their node's Secret); the other %d fail for: %s.",
			story, fmt.Sprint(len(secretPods)), failing, failing-len(secretPods), breakdown(others)))
		s = append(s, "Do not patch dpf-provisioning-dms-role as it suggests: the operator re-applies it and reverts the change.")
	default:
		who, their := choose(failing, "the one failing pod", fmt.Sprintf("all %d failing pods", failing)), choose(failing, "its", "their")
		s = append(s, fmt.Sprintf("%s holds for %s here: %s dms-init runs the certificate path (--external-certificate none) and may not get %s node's Secret.",
			story, who, their, their))
		s = append(s, "But do not patch dpf-provisioning-dms-role as it suggests: the operator re-applies it and reverts the change; `dpfdoctor fix` grants a separate Role limited to each node's Secret name.")
	}
	return strings.Join(s, " ")
}

// secretsAllowed reports whether a review allowed reading a Secret.
func secretsAllowed(b *evidence.Bundle) bool {
	return slices.ContainsFunc(b.Access, func(c evidence.AccessCheck) bool {
		return c.Known() && c.Allowed && c.Request.Resource == "secrets" && c.Request.Group == ""
	})
}

func breakdown(m map[Class]int) string {
	classes := slices.SortedFunc(maps.Keys(m), func(a, b Class) int { return cmp.Compare(rank(a), rank(b)) })
	var parts []string
	for _, c := range classes {
		parts = append(parts, fmt.Sprintf("%d %s", m[c], c))
	}
	if len(parts) == 0 {
		return "nothing else"
	}
	return strings.Join(parts, ", ")
}
