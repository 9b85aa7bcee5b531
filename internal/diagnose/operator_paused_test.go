package diagnose

import "testing"

func TestOperatorPaused(t *testing.T) {
	b := load(t, "operator_paused/paused.yaml")
	fs := of(ClassOperatorPaused).Classify(b)
	if len(fs) != 1 || fs[0].Code != CodeOperatorPaused || fs[0].Severity != SeverityWarning || len(fs[0].Pods) != 0 {
		t.Fatalf("paused: %+v", fs)
	}
	d := Diagnose(b)
	if d.Problems() {
		t.Error("a paused operator with Ready pods is not a problem")
	}
	if d.Findings[0].Class != ClassOperatorPaused {
		t.Errorf("cluster-level finding first; got %s", d.Findings[0].Class)
	}
	if fs := of(ClassOperatorPaused).Classify(load(t, "operator_paused/near-miss-running.yaml")); len(fs) != 0 {
		t.Fatalf("near miss: %+v", fs)
	}
}
