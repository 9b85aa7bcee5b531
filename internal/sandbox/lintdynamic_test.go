package sandbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/dpfdoctor/dpfdoctor/internal/cli"
	"github.com/dpfdoctor/dpfdoctor/internal/lint"
	"github.com/dpfdoctor/dpfdoctor/internal/sandbox"
)

var (
	lintFixtures = filepath.Join("..", "lint", "testdata")
	role254      = filepath.Join(lintFixtures, "role-v25.4.0.yaml")
	role257      = filepath.Join("testdata", "rbac-v25.7")
)

// onPlane returns a context in which lint --dynamic's sims start on a
// control plane from planes.
func onPlane(t *testing.T) context.Context {
	t.Helper()
	return sandbox.WithControlPlane(context.Background(), planes.get(t))
}

// lintDynamic runs `dpfdoctor lint --dynamic -o json` in ctx, checks the
// report against its schema and decodes it.
func lintDynamic(t *testing.T, ctx context.Context, args ...string) (int, *lint.DynamicReport) {
	t.Helper()
	code, out, errOut := runCLIContext(t, ctx, append([]string{"lint", "--dynamic", "-o", "json"}, args...)...)
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(out))
	if err != nil {
		t.Fatalf("lint --dynamic: exit %d: %v\n%s\n%s", code, err, out, errOut)
	}
	if err := dynamicSchema(t).Validate(doc); err != nil {
		t.Errorf("lint --dynamic -o json does not match its schema:\n%v", err)
	}
	var r lint.DynamicReport
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.SchemaVersion != lint.DynamicSchemaVersion {
		t.Fatalf("lint --dynamic: schemaVersion %q: %v", r.SchemaVersion, err)
	}
	return code, &r
}

// dynamicSchema compiles docs/schema/lint-dynamic-v1alpha1.schema.json
// with the schemas it refers to, closed as internal/cli/schema_test.go
// closes them (an object with properties gets additionalProperties false),
// so a field the report prints but the schema does not describe fails.
func dynamicSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	const base = "https://raw.githubusercontent.com/dpfdoctor/dpfdoctor/main/docs/schema/"
	c := jsonschema.NewCompiler()
	for _, name := range []string{"defs-v1alpha1", "lint-report-v1alpha1", "lint-dynamic-v1alpha1"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "docs", "schema", name+".schema.json"))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		closeObjects(doc)
		if err := c.AddResource(base+name+".schema.json", doc); err != nil {
			t.Fatal(err)
		}
	}
	s, err := c.Compile(base + "lint-dynamic-v1alpha1.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func closeObjects(v any) {
	switch v := v.(type) {
	case map[string]any:
		if _, ok := v["properties"]; ok && v["additionalProperties"] == nil {
			v["additionalProperties"] = false
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

// lint --dynamic agrees with static lint on every fixture: each script, run
// with the operator's arguments against its release, makes no request lint
// did not predict, and every request RBAC denied is one lint denies.
func TestLintDynamicAgreesWithStatic(t *testing.T) {
	t.Parallel()
	requireSim(t)
	for _, tc := range []struct {
		name, script, rbac, version string
		wantExit                    int
	}{
		{"sysfs fixture, v25.7 role", fixture, role257, "v25.7.0", cli.ExitOK},
		{"sysfs fixture, v25.4.0 role", fixture, role254, "v25.4.0", cli.ExitProblems}, // dpudevices/status, denied both ways
		{"lint v25.4.0 fixture", filepath.Join(lintFixtures, "dmsinit-v25.4.0.sh"), role254, "v25.4.0", cli.ExitOK},
		{"lint v25.7 fixture", filepath.Join(lintFixtures, "dmsinit-v25.7.sh"), role257, "v25.7.0", cli.ExitOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, r := lintDynamic(t, onPlane(t), "--script", tc.script, "--rbac", tc.rbac, "--dynamic-dpf-version", tc.version)
			if code != tc.wantExit {
				t.Errorf("exit %d, want %d", code, tc.wantExit)
			}
			if len(r.Runs) != 2 {
				t.Fatalf("%d runs, want rshim-preflight's and dms-init's", len(r.Runs))
			}
			// rshim-preflight gets --cmd check-rshim-not-occupied alone, as
			// the operator passes it, and the host's rshim is free.
			if pre := r.Runs[0]; strings.Join(pre.Args, " ") != "--cmd check-rshim-not-occupied" || pre.ExitCode != 0 {
				t.Errorf("rshim-preflight %v: exit %d\n%s", pre.Args, pre.ExitCode, strings.Join(pre.Log, "\n"))
			}
			observed := 0
			for _, run := range r.Runs {
				for _, m := range run.Missed {
					t.Errorf("%s: static analysis missed %s", strings.Join(run.Args, " "), m)
				}
				for _, c := range run.Calls {
					observed += len(c.Observed)
					for _, o := range c.Observed {
						if !o.Allowed && c.Decision.Allowed {
							t.Errorf("%s: denied at run time, allowed by lint: %s (line %d)", o, c.Call, c.Line)
						}
					}
				}
			}
			if observed < 4 {
				t.Errorf("only %d requests observed: the script did not reach its kubectl calls", observed)
			}
		})
	}
}

// A call static analysis cannot see (eval) is reported as a lint bug, and
// its denial fails the run: exit 3, in every format.
func TestLintDynamicPlantedMiss(t *testing.T) {
	t.Parallel()
	requireSim(t)
	ctx := onPlane(t)
	script := filepath.Join("testdata", "planted-miss.sh")
	code, r := lintDynamic(t, ctx, "--script", script, "--rbac", role257, "--args", "")
	if code != cli.ExitProblems || len(r.Runs) != 1 {
		t.Fatalf("exit %d, %d runs", code, len(r.Runs))
	}
	m := r.Runs[0].Missed
	if len(m) != 1 || m[0].Request.Resource != "secrets" || m[0].Request.Name != "dpf-provisioning-client-secret" || m[0].Allowed || m[0].Code != 403 {
		t.Fatalf("missed: %+v", m)
	}
	if len(r.Runs[0].Static.Warnings) == 0 || !strings.Contains(r.Runs[0].Static.Warnings[0].Message, "eval") {
		t.Errorf("static warnings: %+v", r.Runs[0].Static.Warnings)
	}
	code, out, _ := runCLIContext(t, ctx, "lint", "--dynamic", "--script", script, "--rbac", role257, "--args", "")
	if code != cli.ExitProblems || !strings.Contains(out, "STATIC MISS (a lint bug") || !strings.Contains(out, "get secrets dpf-provisioning-client-secret in dpf-operator-system — DENIED (403)") {
		t.Errorf("text: exit %d\n%s", code, out)
	}
	code, out, _ = runCLIContext(t, ctx, "lint", "--dynamic", "--script", script, "--rbac", role257, "--args", "", "-o", "sarif")
	if code != cli.ExitProblems || !strings.Contains(out, `"ruleId": "`+lint.RuleStaticMiss+`"`) || !strings.Contains(out, `"ruleId": "`+lint.RuleObservedDenied+`"`) {
		t.Errorf("sarif: exit %d\n%s", code, out)
	}
}

// Lists and watches that kubectl pins to one name with a metadata.name
// field selector (get NAME -w, get --field-selector, wait --for=delete) are
// allowed by a Role that names the object, as the API server decides:
// static lint allows them, and at run time nothing is denied or missed.
func TestLintDynamicListWatchByName(t *testing.T) {
	t.Parallel()
	requireSim(t)
	dir := filepath.Join("testdata", "by-name")
	code, r := lintDynamic(t, onPlane(t), "--script", filepath.Join(dir, "watch-by-name.sh"), "--rbac", filepath.Join(dir, "role.yaml"), "--args", "")
	if code != cli.ExitOK || len(r.Runs) != 1 {
		t.Fatalf("exit %d, %d runs, want 0 and 1", code, len(r.Runs))
	}
	run := r.Runs[0]
	for _, m := range run.Missed {
		t.Errorf("static analysis missed %s", m)
	}
	verbs := map[string]bool{}
	for _, c := range run.Calls {
		if !c.Decision.Allowed {
			t.Errorf("lint denies %s (line %d): %s", c.Call, c.Line, c.Decision.Reason)
		}
		for _, o := range c.Observed {
			verbs[o.Request.Verb] = true
			if !o.Allowed || o.Request.Name != sandbox.SimNode+"-dms" {
				t.Errorf("observed %s", o)
			}
		}
	}
	if !verbs["list"] || !verbs["watch"] {
		t.Errorf("observed verbs %v: the script did not list and watch; its log:\n%s", verbs, strings.Join(run.Log, "\n"))
	}
}

// Bad input to the new flags is a usage error (exit 2), found before any
// sandbox or API server starts.
func TestScriptFlagsUsage(t *testing.T) {
	for _, args := range [][]string{
		{"sim", "up", "--dmsinit-script", filepath.Join(t.TempDir(), "missing.sh")},
		{"sim", "up", "--dmsinit-script", fixture, "--rbac", filepath.Join(lintFixtures, "malformed-role.yaml")},
		{"sim", "up", "--rbac", filepath.Join(t.TempDir(), "missing")},
		{"sim", "up", "--dmsinit-script", fixture, "--host-dpus", "bf3,bf4"},
		{"sim", "up", "--dmsinit-script", fixture, "--host-dpus", "bf3,bf3,bf3,bf3,bf3,bf3,bf3,bf3,bf3"},
		{"lint", "--dynamic", "--dynamic-dpf-version", "v9.9", "--script", fixture, "--rbac", role257},
	} {
		if code, _, errOut := runCLI(t, args...); code != cli.ExitUsage {
			t.Errorf("%v: exit %d, want %d\n%s", args, code, cli.ExitUsage, errOut)
		}
	}
}
