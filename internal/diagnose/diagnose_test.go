package diagnose

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
)

// A mixed cluster: each pod gets exactly one primary class.
func TestDiagnoseMixed(t *testing.T) {
	d := Diagnose(load(t, "../../cli/testdata/mixed.yaml"))
	want := map[string]Class{
		"w1-dms": ClassRBACForbidden, "w2-dms": ClassRBACForbidden, "w3-dms": ClassAPIServerUnreachable,
		"w4-dms": ClassCertificateNotReady, "w5-dms": ClassRshimOccupied, "w6-dms": ClassNoDPUFound,
		"w7-dms": ClassHealthy, "w8-dms": ClassStatusSubresourceSkew,
	}
	if len(d.Pods) != len(want) {
		t.Fatalf("%d pod results, want %d", len(d.Pods), len(want))
	}
	for _, p := range d.Pods {
		if p.Class != want[p.Name] {
			t.Errorf("%s: %s, want %s (%s)", p.Name, p.Class, want[p.Name], p.Detail)
		}
		if p.Code == "" || p.State == "" {
			t.Errorf("%s: code %q state %q", p.Name, p.Code, p.State)
		}
	}
	if d.Summary.Pods != 8 || d.Summary.Healthy != 1 || d.Summary.Failing != 7 || d.Summary.ByClass[ClassRBACForbidden] != 2 {
		t.Errorf("summary %+v", d.Summary)
	}
	if !d.Problems() {
		t.Error("Problems() = false")
	}
	if d.SchemaVersion != SchemaVersion || d.Requests != 23 || d.DPF.Version != "v25.4.0" {
		t.Errorf("header: %s %d %+v", d.SchemaVersion, d.Requests, d.DPF)
	}
	if !strings.Contains(d.WidelySharedDiagnosis, "holds for 2 of 7 failing pods") ||
		!strings.Contains(d.WidelySharedDiagnosis, "1 APIServerUnreachable") {
		t.Errorf("widely shared: %q", d.WidelySharedDiagnosis)
	}
	for _, p := range d.Pods {
		if p.Name == "w4-dms" && p.State != "Init:0/3" {
			t.Errorf("w4 state %q", p.State)
		}
		if p.Name == "w1-dms" && p.State != "Init:CrashLoopBackOff" {
			t.Errorf("w1 state %q", p.State)
		}
	}
}

// The widely shared story is called wrong when no failing pod needs Secrets.
func TestWidelySharedWrong(t *testing.T) {
	d := Diagnose(load(t, "rbac_forbidden/near-miss-secrets-granted.yaml"))
	for _, s := range []string{"is wrong for this cluster", "--external-certificate other than \"none\"", "may already get Secrets", "Failing: 2 APIServerUnreachable", "1 pod runs dms-init"} {
		if !strings.Contains(d.WidelySharedDiagnosis, s) {
			t.Errorf("widely shared lacks %q: %q", s, d.WidelySharedDiagnosis)
		}
	}
	d = Diagnose(load(t, "rbac_forbidden/hypothetical-secrets-forbidden.yaml"))
	if !strings.Contains(d.WidelySharedDiagnosis, "holds for all 2 failing pods") || !strings.Contains(d.WidelySharedDiagnosis, "do not patch") {
		t.Errorf("widely shared: %q", d.WidelySharedDiagnosis)
	}
}

// Diagnose never panics and always returns a valid document.
func TestDiagnoseDegenerate(t *testing.T) {
	for _, b := range []*evidence.Bundle{nil, {}, {Pods: []evidence.Pod{{Name: "x"}}}, {Pods: []evidence.Pod{{Name: "y-dms", Ready: true}}}} {
		d := Diagnose(b)
		if _, err := json.Marshal(d); err != nil {
			t.Fatal(err)
		}
		if d.SchemaVersion != SchemaVersion {
			t.Fatalf("schema %q", d.SchemaVersion)
		}
	}
}

// Classifiers are independent values: All returns a fresh slice of unique IDs.
func TestAll(t *testing.T) {
	a, b := All(), All()
	a[0] = nil
	if b[0] == nil {
		t.Fatal("All shares its slice")
	}
	seen := map[string]bool{}
	for _, c := range b {
		if seen[c.ID()] {
			t.Fatalf("duplicate ID %s", c.ID())
		}
		seen[c.ID()] = true
	}
}

func FuzzDiagnose(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":"dpfdoctor.dev/evidence/v1alpha1","install":{"namespace":"x"},"pods":[{"name":"a-dms","node":"a","initContainers":[{"name":"dms-init","image":"x:v25.7.0","args":["/opt/dpf/dmsinit.sh","--external-certificate","none"]}]}],"logs":[{"pod":"a-dms","container":"dms-init","instance":"current","text":"[dmsinit] Error (f:1): Failed to check kubectl version: x"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := evidence.Parse(data)
		if err != nil {
			return
		}
		_ = Diagnose(b).Markdown()
	})
}
