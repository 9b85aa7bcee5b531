package diagnose

import "fmt"

// operatorPaused reports a DPFOperatorConfig with spec.overrides.paused:
// fixes made now hold, but the operator reconciles nothing.
func operatorPaused(v *view) []Finding {
	in := v.b.Install
	if !in.Paused {
		return nil
	}
	return []Finding{{
		Class:    ClassOperatorPaused,
		Code:     CodeOperatorPaused,
		Severity: SeverityWarning,
		Summary:  "the DPF operator is paused: RBAC fixes hold, but it reconciles nothing (no DMS pods re-created, no drift reverted)",
		Evidence: []Evidence{{Kind: EvidenceConfig, Source: fmt.Sprintf("DPFOperatorConfig %s/%s", in.Namespace, in.OperatorConfig),
			Text: "spec.overrides.paused: true"}},
		NextStep: fmt.Sprintf("when you are done, resume it: kubectl patch dpfoperatorconfig %s -n %s --type merge -p '{\"spec\":{\"overrides\":{\"paused\":false}}}'",
			in.OperatorConfig, in.Namespace),
	}}
}
