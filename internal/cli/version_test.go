package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// `version -o json|yaml` has a schemaVersion and camelCase keys; a test
// binary has no linker values, so the fallbacks show.
func TestVersionOutput(t *testing.T) {
	want := []string{"buildDate", "commit", "goVersion", "platform", "schemaVersion", "version"}
	for _, format := range []string{"json", "yaml"} {
		code, out, errOut := run(t, "version", "-o", format)
		var got map[string]string
		if err := yaml.Unmarshal([]byte(out), &got); err != nil || code != ExitOK {
			t.Fatalf("version -o %s: exit %d, %v\n%s%s", format, code, err, out, errOut)
		}
		if len(got) != len(want) || got["version"] != "dev" || got["schemaVersion"] != "dpfdoctor.dev/version/v1alpha1" {
			t.Errorf("version -o %s = %v, want keys %v", format, got, want)
		}
		for _, k := range want {
			if got[k] == "" {
				t.Errorf("version -o %s: %s is empty", format, k)
			}
		}
		if format == "json" && !json.Valid([]byte(out)) {
			t.Errorf("version -o json is not JSON:\n%s", out)
		}
	}
	if code, out, _ := run(t, "version"); code != ExitOK || !strings.HasPrefix(out, "dpfdoctor dev (commit ") {
		t.Errorf("version: exit %d, %q", code, out)
	}
	if code, _, errOut := run(t, "version", "-o", "table"); code != ExitUsage || !strings.Contains(errOut, "allowed formats are: json,yaml") {
		t.Errorf("version -o table: exit %d, %q", code, errOut)
	}
}
