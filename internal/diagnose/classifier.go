package diagnose

import "github.com/dpfdoctor/dpfdoctor/internal/evidence"

// Classifier finds one failure class in a bundle. Implementations are pure
// and live one per file.
type Classifier interface {
	// ID is the stable code of the class's main finding, e.g. DPF-RBAC-001.
	ID() string
	// Class is the failure class it reports.
	Class() Class
	// Classify returns the findings for the class; nil when it does not
	// apply. Findings list every pod the class applies to; Diagnose then
	// splits them into primary and secondary pods.
	Classify(b *evidence.Bundle) []Finding
}

// classifier is every Classifier here: its code, its class and its
// classification over a shared index of the bundle, so that Diagnose
// indexes it once. Each classify function lives in its own file.
type classifier struct {
	id       string
	class    Class
	classify func(v *view) []Finding
}

func (c classifier) ID() string                            { return c.id }
func (c classifier) Class() Class                          { return c.class }
func (c classifier) Classify(b *evidence.Bundle) []Finding { return c.classify(newView(b)) }

// All returns every classifier, in priority order, as a fresh slice.
func All() []Classifier {
	return []Classifier{
		classifier{CodeOperatorPaused, ClassOperatorPaused, operatorPaused},
		classifier{CodeCertificateNotReady, ClassCertificateNotReady, certificateNotReady},
		classifier{CodeRshimOccupied, ClassRshimOccupied, rshimOccupied},
		classifier{CodeAPIServerUnreachable, ClassAPIServerUnreachable, apiServerUnreachable},
		classifier{CodeNoDPUFound, ClassNoDPUFound, noDPUFound},
		classifier{CodeRBACForbidden, ClassRBACForbidden, rbacForbidden},
		classifier{CodeStatusSkewFixable, ClassStatusSubresourceSkew, statusSubresourceSkew},
		classifier{CodePodMissing, ClassPodMissing, podMissing},
		classifier{CodeUnknown, ClassUnknown, unknown},
		classifier{CodeHealthy, ClassHealthy, healthy},
	}
}

// Stable finding codes. Never reuse a retired one.
const (
	CodeOperatorPaused       = "DPF-PAUSED-001"
	CodeCertificateNotReady  = "DPF-CERT-001"
	CodeRshimOccupied        = "DPF-RSHIM-001"
	CodeAPIServerUnreachable = "DPF-API-001"
	CodeNoDPUFound           = "DPF-NODPU-001"
	CodeRBACForbidden        = "DPF-RBAC-001"
	CodeStatusSkewFixable    = "DPF-SKEW-001"
	CodeStatusSkewCRD        = "DPF-SKEW-002"
	CodePodMissing           = "DPF-NOPOD-001"
	CodeUnknown              = "DPF-UNKNOWN-001"
	CodeHealthy              = "DPF-OK-000"
)
