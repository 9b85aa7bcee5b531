package guard

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/dpfdoctor/dpfdoctor/internal/apply"
	"github.com/dpfdoctor/dpfdoctor/internal/diagnose"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
)

// Event reasons the guard records.
const (
	// ReasonDiagnosed (Warning, on the pod): "<class>: <next step>", once per
	// pod and diagnosis.
	ReasonDiagnosed = "DPFDoctorDiagnosed"
	// ReasonRepaired (Normal, on each pod the repair answers): what was
	// granted, and where.
	ReasonRepaired = "DPFDoctorRepaired"
	// ReasonRestored (Normal, on the restored object, or the
	// DPFOperatorConfig for cluster-scoped ones): a deleted or altered grant
	// was put back.
	ReasonRestored = "DPFDoctorRestored"
	// ReasonRecovered (Normal, on the pod): Ready again, and how long it took.
	ReasonRecovered = "DPFDoctorRecovered"
	// ReasonRepairFailed and ReasonRepairRefused (Warning, on the
	// DPFOperatorConfig): a repair that could not be written, or that the
	// policy refused.
	ReasonRepairFailed  = "DPFDoctorRepairFailed"
	ReasonRepairRefused = "DPFDoctorRepairRefused"
	// ReasonGuardPaused and ReasonGuardResumed (Normal, on the
	// DPFOperatorConfig): its apply.GuardPausedAnnotation was set (the note
	// carries its value: the acknowledgement rollback waits for) or removed.
	ReasonGuardPaused  = apply.ReasonGuardPaused
	ReasonGuardResumed = "DPFDoctorGuardResumed"
)

// event records an events.k8s.io/v1 Event; action is what the guard did.
func (r *reconciler) event(obj runtime.Object, typ, reason, action, msg string) {
	r.recorder.Eventf(obj, nil, typ, reason, action, "%s", clip(msg))
}

// notePause follows the DPFOperatorConfig's apply.GuardPausedAnnotation and
// reports whether repairs are paused. Each change is recorded as an Event
// and in dpfdoctor_guard_paused. A pause also makes the repairer forget the
// grant it remembered, so a resumed guard adopts what it finds and does not
// undo the rollback that paused it.
func (r *reconciler) notePause(cfg *unstructured.Unstructured) bool {
	v := cfg.GetAnnotations()[apply.GuardPausedAnnotation]
	if v == r.paused {
		return v != ""
	}
	r.paused = v
	if v == "" {
		r.metrics.paused.Set(0)
		r.event(cfg, corev1.EventTypeNormal, ReasonGuardResumed, "Resume", "repairs resumed: the annotation "+apply.GuardPausedAnnotation+" was removed")
		r.log.Info("repairs resumed")
		return false
	}
	r.metrics.paused.Set(1)
	r.repair = newRepairer(r)
	r.event(cfg, corev1.EventTypeNormal, ReasonGuardPaused, "Pause", fmt.Sprintf(
		"repairs paused by the annotation %s=%s; diagnosis continues. Remove the annotation to resume", apply.GuardPausedAnnotation, v))
	r.log.Info("repairs paused", "by", v)
	return true
}

// maxMessage keeps event messages within what the API server accepts.
const maxMessage = 1000

func clip(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	return s[:maxMessage-3] + "..."
}

// recordDiagnoses records DPFDoctorDiagnosed on each failing pod whose
// diagnosis is new.
func (r *reconciler) recordDiagnoses(fails []failingPod, d *diagnose.Diagnosis) {
	byName := make(map[string]*corev1.Pod, len(fails))
	for _, f := range fails {
		byName[f.obj.Name] = f.obj
	}
	for _, pr := range d.Pods {
		p, ok := byName[pr.Name]
		if !ok || pr.Class == diagnose.ClassHealthy {
			continue
		}
		f, ok := findingFor(d, pr)
		if !ok || !r.tracker.report(p.UID, string(pr.Class)+"|"+pr.Code) {
			continue
		}
		r.event(p, corev1.EventTypeWarning, ReasonDiagnosed, "Diagnose", fmt.Sprintf("%s: %s", pr.Class, r.nextStep(f)))
		r.log.Info("diagnosed", "pod", p.Name, "state", pr.State, "class", pr.Class, "code", pr.Code)
	}
}

// nextStep is the finding's next step; in repair mode, for what a grant
// fixes, the step is the guard's own.
func (r *reconciler) nextStep(f diagnose.Finding) string {
	if r.opts.Mode == ModeRepair && f.Fixable && len(f.Missing) > 0 {
		return fmt.Sprintf("%s; dpfdoctor guard grants the missing permissions now (see the %s event)", f.Summary, ReasonRepaired)
	}
	return f.NextStep
}

// findingFor is the finding that gives the pod its primary class.
func findingFor(d *diagnose.Diagnosis, pr diagnose.PodResult) (diagnose.Finding, bool) {
	i := slices.IndexFunc(d.Findings, func(f diagnose.Finding) bool { return f.Class == pr.Class && slices.Contains(f.Pods, pr.Name) })
	if i < 0 {
		return diagnose.Finding{}, false
	}
	return d.Findings[i], true
}

// recordRecovered observes time to Ready and records DPFDoctorRecovered.
func (r *reconciler) recordRecovered(rs []recovery) {
	for _, rec := range rs {
		r.metrics.timeToReady.Observe(rec.after.Seconds())
		r.event(rec.pod, corev1.EventTypeNormal, ReasonRecovered, "Recover", fmt.Sprintf("Ready %.1fs after dpfdoctor guard saw it fail", rec.after.Seconds()))
		r.log.Info("recovered", "pod", rec.pod.Name, "seconds", rec.after.Seconds())
	}
}

// setPods sets dpfdoctor_dms_pods{state} from the cache.
func (m *metrics) setPods(s *snapshot) {
	counts := map[string]int{}
	for i := range s.pods {
		counts[dpf.PodState(s.pods[i])]++
	}
	setCounts(m.pods, counts)
}

// setFindings sets dpfdoctor_findings{class}: the diagnosed pods by primary
// class, the pods awaiting a retry by their last class, and the Ready pods
// as Healthy.
func (m *metrics) setFindings(d *diagnose.Diagnosis, s *snapshot, waiting []string) {
	counts := map[string]int{}
	for _, c := range waiting {
		counts[c]++
	}
	for _, pr := range d.Pods {
		if pr.Class != diagnose.ClassHealthy {
			counts[string(pr.Class)]++
		}
	}
	for i := range s.pods {
		if dpf.PodReady(s.pods[i]) {
			counts[string(diagnose.ClassHealthy)]++
		}
	}
	setCounts(m.findings, counts)
}
