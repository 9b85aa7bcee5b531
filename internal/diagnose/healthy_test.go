package diagnose

import "testing"

func TestHealthy(t *testing.T) {
	expect(t, of(ClassHealthy), "healthy/ready.yaml", &want{code: CodeHealthy, pods: []string{"w1-dms", "w2-dms"}, next: "nothing to do"})
	expect(t, of(ClassHealthy), "healthy/near-miss-not-ready.yaml", nil)
	if d := Diagnose(load(t, "healthy/ready.yaml")); d.Problems() || d.WidelySharedDiagnosis != "" {
		t.Errorf("healthy cluster: problems %t, widely shared %q", d.Problems(), d.WidelySharedDiagnosis)
	}
}
