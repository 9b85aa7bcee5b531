package cli

import (
	"bytes"
	"encoding/json"
	"go/build"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/dpfdoctor/dpfdoctor/internal/diagnose"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
)

const (
	schemaDir  = "../../docs/schema"
	schemaBase = "https://raw.githubusercontent.com/dpfdoctor/dpfdoctor/main/docs/schema/"
	defsSchema = "defs-v1alpha1"
)

// outputSchemas names, per command with a JSON output, the schemas of
// docs/schema/ its documents follow. A command with -o json that is not
// here fails TestEveryJSONOutputHasSchema. A key may end in the flag of a
// mode that prints a document of its own ("dpfdoctor lint --dynamic").
var outputSchemas = map[string][]string{
	"dpfdoctor diagnose":       {"diagnosis-v1alpha1"},
	"dpfdoctor fix":            {"fix-plan-v1alpha1", "fix-report-v1alpha1"},
	"dpfdoctor lint":           {"lint-report-v1alpha1"},
	"dpfdoctor lint --dynamic": {"lint-dynamic-v1alpha1"}, // validated by internal/sandbox's lint --dynamic tests
	"dpfdoctor preflight":      {"preflight-v1alpha1"},
	"dpfdoctor versions":       {"versions-v1alpha1"},
	"dpfdoctor version":        {"version-v1alpha1"},
}

// offline are the arguments that make a command print its JSON document
// without a cluster; TestOutputsMatchSchemas runs them.
var offline = map[string][]string{
	"dpfdoctor versions": {"versions", "-o", "json"},
	"dpfdoctor version":  {"version", "-o", "json"},
}

// schemas compiles docs/schema/*.schema.json. Tests close them: every
// object schema with properties and no additionalProperties gets
// additionalProperties false, so a field the Go types print but the schema
// does not describe fails here, while readers of the published schemas
// still accept fields added within a schemaVersion.
func schemas(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(schemaDir, "*.schema.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no schemas in %s: %v", schemaDir, err)
	}
	c := jsonschema.NewCompiler()
	for _, f := range files {
		doc := loadJSON(t, f)
		closeObjects(doc)
		if err := c.AddResource(schemaBase+filepath.Base(f), doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	out := map[string]*jsonschema.Schema{}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".schema.json")
		s, err := c.Compile(schemaBase + filepath.Base(f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[name] = s
	}
	return out
}

func loadJSON(t *testing.T, file string) any {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return v
}

func closeObjects(v any) {
	switch v := v.(type) {
	case map[string]any:
		if _, ok := v["properties"].(map[string]any); ok {
			if _, set := v["additionalProperties"]; !set {
				v["additionalProperties"] = false
			}
		}
		for _, e := range v {
			closeObjects(e)
		}
	case []any:
		for _, e := range v {
			closeObjects(e)
		}
	}
}

// validate checks a JSON or YAML document against a schema.
func validate(t *testing.T, s *jsonschema.Schema, what string, data []byte) {
	t.Helper()
	js, err := yaml.YAMLToJSON(data) // JSON is YAML
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if err := s.Validate(v); err != nil {
		t.Errorf("%s does not match %s:\n%v", what, s.Location, err)
	}
}

// Every schema is valid draft 2020-12, has the $id it is published under,
// and fixes the schemaVersion its name carries; every one is used.
func TestSchemasValid(t *testing.T) {
	c := jsonschema.NewCompiler()
	meta, err := c.Compile("https://json-schema.org/draft/2020-12/schema")
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{defsSchema: true}
	for _, names := range outputSchemas {
		for _, n := range names {
			used[n] = true
		}
	}
	compiled := schemas(t)
	for name := range compiled {
		file := filepath.Join(schemaDir, name+".schema.json")
		doc := loadJSON(t, file).(map[string]any)
		if err := meta.Validate(doc); err != nil {
			t.Errorf("%s is not a valid 2020-12 schema: %v", file, err)
		}
		if doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" || doc["$id"] != schemaBase+name+".schema.json" {
			t.Errorf("%s: $schema %v, $id %v", file, doc["$schema"], doc["$id"])
		}
		if !used[name] {
			t.Errorf("%s is not the schema of any output in outputSchemas", file)
		}
		if name == defsSchema {
			continue
		}
		sv, _ := doc["properties"].(map[string]any)["schemaVersion"].(map[string]any)["const"].(string)
		if !strings.HasSuffix(name, "-"+sv[strings.LastIndex(sv, "/")+1:]) || !slices.Contains(doc["required"].([]any), any("schemaVersion")) {
			t.Errorf("%s: schemaVersion const %q must be required and end in the file's version", file, sv)
		}
	}
	// A schema catches a wrong document.
	validateFails := compiled["versions-v1alpha1"].Validate(map[string]any{"schemaVersion": "dpfdoctor.dev/versions/v1alpha1", "Releases": []any{}})
	if validateFails == nil {
		t.Error("versions schema accepts a document without releases and with a PascalCase key")
	}
}

// Every command with a JSON output has a schema file, so a new output
// cannot ship without one; every key of outputSchemas names a command (and
// flag) that exists.
func TestEveryJSONOutputHasSchema(t *testing.T) {
	s, _, _, _ := genericiooptions.NewTestIOStreams()
	seen := map[string]*cobra.Command{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		seen[c.CommandPath()] = c
		if f := c.Flags().Lookup("output"); f != nil && strings.Contains(f.Usage, "json") {
			if _, ok := outputSchemas[c.CommandPath()]; !ok {
				t.Errorf("%s prints JSON but has no schema in outputSchemas (docs/schema/)", c.CommandPath())
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(NewRootCommand(s))
	for key := range outputSchemas {
		path, mode, _ := strings.Cut(key, " --")
		switch c := seen[path]; {
		case c == nil:
			t.Errorf("outputSchemas names %q, which is not a command", key)
		case mode != "" && c.Flags().Lookup(mode) == nil:
			t.Errorf("outputSchemas names %q, but %s has no flag --%s", key, path, mode)
		}
		for _, n := range outputSchemas[key] {
			if _, err := os.Stat(filepath.Join(schemaDir, n+".schema.json")); err != nil {
				t.Errorf("%s: %v", key, err)
			}
		}
	}
}

// Real outputs, produced offline, match their schemas: diagnose on the
// bundles and goldens of testdata/, the plan fix would apply for them,
// lint on internal/lint's fixtures and goldens, preflight's golden, and the
// commands in offline. On envtest, TestFixAndRollbackCommands checks fix's
// plan and report, TestPreflightOnSim preflight's reports, and
// internal/sandbox's lint --dynamic tests every lint --dynamic -o json they
// run.
func TestOutputsMatchSchemas(t *testing.T) {
	sc := schemas(t)
	s, _, _, _ := genericiooptions.NewTestIOStreams()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if f := c.Flags().Lookup("output"); f != nil && strings.Contains(f.Usage, "json") && offline[c.CommandPath()] != nil {
			code, out, errOut := run(t, offline[c.CommandPath()]...)
			if code != ExitOK {
				t.Fatalf("%s: exit %d: %s", c.CommandPath(), code, errOut)
			}
			validate(t, sc[outputSchemas[c.CommandPath()][0]], c.CommandPath()+" -o json", []byte(out))
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(NewRootCommand(s))

	for _, bundle := range []string{"testdata/mixed.yaml", "testdata/healthy.yaml"} {
		for _, o := range []string{"json", "yaml"} {
			_, out, errOut := run(t, "diagnose", "--from-bundle", bundle, "-o", o)
			if out == "" {
				t.Fatalf("diagnose %s -o %s printed nothing: %s", bundle, o, errOut)
			}
			validate(t, sc["diagnosis-v1alpha1"], "diagnose --from-bundle "+bundle+" -o "+o, []byte(out))
		}
		b, err := evidence.Load(bundle)
		if err != nil {
			t.Fatal(err)
		}
		p, err := plan.Build(plan.Input{Diagnosis: diagnose.Diagnose(b), Bundle: b})
		if err != nil {
			t.Fatal(err)
		}
		js, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		validate(t, sc["fix-plan-v1alpha1"], "the plan for "+bundle, js)
	}
	empty, _ := json.Marshal(diagnose.Diagnose(nil))
	validate(t, sc["diagnosis-v1alpha1"], "an empty diagnosis", empty)
	goldens, _ := filepath.Glob("testdata/diagnose/*.golden")
	for _, g := range goldens {
		if strings.HasSuffix(g, ".json.golden") || strings.HasSuffix(g, ".yaml.golden") {
			validate(t, sc["diagnosis-v1alpha1"], g, mustReadBytes(t, g))
		}
	}

	validate(t, sc["preflight-v1alpha1"], "preflight golden", mustReadBytes(t, "../preflight/testdata/v25.4-to-v25.7.json.golden"))

	config := filepath.Join(t.TempDir(), "lint.yaml")
	if err := os.WriteFile(config, []byte("suppressions:\n- {code: DPF-LINT-001, path: '*.sh', line: 217, reason: accepted}\n- {code: DPF-LINT-003, reason: accepted}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sarif := sarifSchemas(t)
	nonK8s := "--external-certificate none --k8s-env false"
	for _, args := range [][]string{
		{"--script", lintData + "dmsinit-v25.4.0.sh", "--rbac", lintData + "role-v25.4.0.yaml", "--args", nonK8s, "--suggest", "--config", config},
		{"--script", lintData + "dmsinit-v25.7.sh", "--rbac", lintData + "role-v25.4.0.yaml", "--pod", lintData + "dms-pod.yaml", "--fail-on", "possible"},
		{"--script", lintData + "patterns.sh", "--script", lintData + "dmsinit-v25.4.0.sh", "--rbac", lintData + "role-patterns.yaml"},
	} {
		_, out, errOut := run(t, append([]string{"lint", "-o", "json"}, args...)...)
		if out == "" {
			t.Fatalf("lint %q printed nothing: %s", args, errOut)
		}
		validate(t, sc["lint-report-v1alpha1"], "lint -o json "+strings.Join(args, " "), []byte(out))
		_, out, _ = run(t, append([]string{"lint", "-o", "sarif"}, args...)...)
		validateSARIF(t, sarif, "lint -o sarif "+strings.Join(args, " "), []byte(out))
	}
	goldens, _ = filepath.Glob(lintData + "*.golden")
	for _, g := range goldens {
		switch {
		case strings.HasSuffix(g, ".json.golden"):
			validate(t, sc["lint-report-v1alpha1"], g, mustReadBytes(t, g))
		case strings.HasSuffix(g, ".sarif.golden"):
			validateSARIF(t, sarif, g, mustReadBytes(t, g))
		}
	}
}

// sarifSchemas are testdata/sarif-subset.schema.json (what GitHub code
// scanning reads) and, when the Go module cache holds it (gosec ships it as
// test data; hack/tools.sh builds golangci-lint with gosec), the full OASIS
// SARIF 2.1.0 schema.
func sarifSchemas(t *testing.T) []*jsonschema.Schema {
	t.Helper()
	subset, err := jsonschema.NewCompiler().Compile("testdata/sarif-subset.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if full := oasisSARIF(t); full != nil {
		return []*jsonschema.Schema{subset, full}
	}
	return []*jsonschema.Schema{subset}
}

// validateSARIF checks lint's SARIF against the schemas and that every
// uriBaseId is declared in originalUriBaseIds.
func validateSARIF(t *testing.T, schemas []*jsonschema.Schema, what string, data []byte) {
	t.Helper()
	for _, s := range schemas {
		validate(t, s, what, data)
	}
	var doc struct {
		Runs []struct {
			Bases   map[string]any `json:"originalUriBaseIds"`
			Results []struct {
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct {
							URIBaseID string `json:"uriBaseId"`
						} `json:"artifactLocation"`
					} `json:"physicalLocation"`
				} `json:"locations"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	for _, r := range doc.Runs {
		for _, res := range r.Results {
			for _, l := range res.Locations {
				if b := l.PhysicalLocation.ArtifactLocation.URIBaseID; b != "" && r.Bases[b] == nil {
					t.Errorf("%s: uriBaseId %q is not in originalUriBaseIds", what, b)
				}
			}
		}
	}
}

// oasisSARIF compiles the OASIS SARIF 2.1.0 schema from the module cache,
// or returns nil when it is not there.
func oasisSARIF(t *testing.T) *jsonschema.Schema {
	t.Helper()
	cache := os.Getenv("GOMODCACHE")
	if cache == "" {
		cache = filepath.Join(build.Default.GOPATH, "pkg", "mod")
	}
	files, _ := filepath.Glob(filepath.Join(cache, "github.com", "securego", "gosec", "v2@*", "report", "sarif", "testdata", "sarif-schema-2.1.0.json"))
	if len(files) == 0 {
		t.Log("the OASIS SARIF schema is not in the module cache: checked against the subset only")
		return nil
	}
	t.Logf("SARIF checked against %s too", files[len(files)-1])
	s, err := jsonschema.NewCompiler().Compile(files[len(files)-1])
	if err != nil {
		t.Fatalf("%s: %v", files[len(files)-1], err)
	}
	return s
}

func mustReadBytes(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
