package diagnose

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
)

// Every JSON field of the document is described in the schema doc.
func TestSchemaDocumented(t *testing.T) {
	data, err := os.ReadFile("../../docs/schema/diagnosis-v1alpha1.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	if !strings.Contains(doc, SchemaVersion) {
		t.Errorf("the schema doc does not name %s", SchemaVersion)
	}
	for _, v := range []any{Diagnosis{}, DPF{}, Summary{}, Finding{}, Evidence{}, PodResult{}, evidence.Gap{}, access.Request{}} {
		typ := reflect.TypeOf(v)
		for i := 0; i < typ.NumField(); i++ {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			if name == "" || name == "-" || name == "nonResourceURL" {
				continue
			}
			if !strings.Contains(doc, "`"+name+"`") {
				t.Errorf("%s.%s (%q) is not in docs/schema/diagnosis-v1alpha1.md", typ.Name(), typ.Field(i).Name, name)
			}
		}
	}
	for _, c := range append(Priority(), ClassHealthy, ClassOperatorPaused, ClassPodMissing) {
		if !strings.Contains(doc, "`"+string(c)+"`") {
			t.Errorf("class %s is not in the schema doc", c)
		}
	}
}

// Every finding code is in docs/diagnose.md.
func TestCodesDocumented(t *testing.T) {
	data, err := os.ReadFile("../../docs/diagnose.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range []string{CodeOperatorPaused, CodeCertificateNotReady, CodeRshimOccupied, CodeAPIServerUnreachable, CodeNoDPUFound,
		CodeRBACForbidden, CodeStatusSkewFixable, CodeStatusSkewCRD, CodePodMissing, CodeUnknown, CodeHealthy} {
		if !strings.Contains(string(data), code) {
			t.Errorf("%s is not in docs/diagnose.md", code)
		}
	}
}
