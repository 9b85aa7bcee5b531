package guard

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/fanout"
	"github.com/dpfdoctor/dpfdoctor/internal/preflight"
)

// ReasonUpgradeCheck (Warning, on the DPFOperatorConfig): the version the
// installation reports changed, and preflight's check for it finds what
// will break (docs/preflight.md).
const ReasonUpgradeCheck = "DPFDoctorUpgradeCheck"

// MetricUpgradeFindings is preflight's check for the reported version, by
// finding code.
const MetricUpgradeFindings = "dpfdoctor_upgrade_findings"

// checkUpgrade runs preflight's check (RBAC as the operator re-applies it,
// from the cache; no SubjectAccessReview) whenever the version the
// DPFOperatorConfig label or the pods report differs from the last one
// checked: it sets dpfdoctor_upgrade_findings and, when something will
// break, records DPFDoctorUpgradeCheck. On a change the DPUDevice CRD is
// read again, since an upgrade is when it changes.
func (r *reconciler) checkUpgrade(ctx context.Context, s *snapshot, b *evidence.Bundle) error {
	v := b.Install.Version
	if v == "" || v == r.checkedVersion {
		return nil
	}
	target, err := dpf.Lookup(v)
	if err != nil {
		r.checkedVersion = v
		return nil
	}
	after := *b
	if r.checkedVersion != "" { // the bundle has just read it at the first check
		r.crd.reset()
		r.crd.fill(ctx, r.clients, &after.Install, r.log)
	}
	// The guard reads neither Issuers nor Certificates.
	after.Gaps = append(slices.Clone(b.Gaps), evidence.Gap{What: "issuers", Reason: "the guard does not read Issuers", Impact: "Issuer readiness is not checked"})
	acc, err := evidence.Answer(preflight.Patterns(&after, target), fanout.Limit,
		preflight.Local(preflight.AfterUpgrade(&after, target, nil, preflight.RBACRelease)))
	if err != nil {
		return err
	}
	rep, err := preflight.Check(preflight.Input{Bundle: &after, Target: target, RBAC: preflight.RBACRelease, Access: acc})
	if err != nil {
		return fmt.Errorf("upgrade check for %s: %w", v, err)
	}
	r.checkedVersion = v
	counts := map[string]int{}
	var msgs []string
	for _, f := range rep.Findings {
		counts[f.Code]++
		msgs = append(msgs, f.Code+": "+f.Summary+" Next: "+f.Before)
	}
	r.metrics.upgrade.Reset()
	for _, code := range []string{preflight.CodeCRD, preflight.CodeRBAC, preflight.CodeAPIServer, preflight.CodePaused} {
		r.metrics.upgrade.WithLabelValues(v, code).Set(float64(counts[code]))
	}
	if len(msgs) > 0 && s.config != nil {
		r.event(s.config, corev1.EventTypeWarning, ReasonUpgradeCheck, "UpgradeCheck", fmt.Sprintf("DPF %s: %s", v, strings.Join(msgs, " | ")))
		r.log.Info("upgrade check: something will break", "version", v, "findings", len(msgs))
	}
	return nil
}
