package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// Release archives and the image are built with -tags nosim: they carry no
// simulator and no envtest; a plain build keeps `dpfdoctor sim`.
func TestNoSimTag(t *testing.T) {
	t.Parallel()
	harness := []string{"github.com/dpfdoctor/dpfdoctor/internal/sim", "sigs.k8s.io/controller-runtime/pkg/envtest"}
	for _, tc := range []struct {
		tags string
		want bool
	}{{"", true}, {"nosim", false}} {
		out, err := exec.Command("go", "list", "-deps", "-tags", tc.tags, ".").Output()
		if err != nil {
			t.Fatalf("go list -deps -tags %q: %v", tc.tags, err)
		}
		deps := "\n" + string(out)
		for _, p := range harness {
			if got := strings.Contains(deps, "\n"+p+"\n"); got != tc.want {
				t.Errorf("go list -deps -tags %q ./cmd/dpfdoctor: %s listed = %v, want %v", tc.tags, p, got, tc.want)
			}
		}
	}
}

// Installed as kubectl-dpfdoctor on PATH, the binary runs as `kubectl
// dpfdoctor` through the real kubectl's plugin lookup and names itself that
// way; as oc-dpfdoctor it names itself `oc dpfdoctor`. The linker's version
// (-X, as the release sets it) is what `version -o json` reports.
func TestKubectlPlugin(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary and runs kubectl")
	}
	kubectl := filepath.Join(sim.Assets(), "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		t.Fatalf("kubectl from the envtest set (hack/envtest.sh): %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "kubectl-dpfdoctor")
	// -s -w as the release (.goreleaser.yaml): no symbol table or DWARF,
	// which also halves the link time.
	const ldflags = "-s -w -X github.com/dpfdoctor/dpfdoctor/internal/buildinfo.version=v9.8.7-test -X github.com/dpfdoctor/dpfdoctor/internal/buildinfo.commit=0123abc"
	if out, err := exec.Command("go", "build", "-tags", "nosim", "-ldflags", ldflags, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if err := os.Link(bin, filepath.Join(dir, "oc-dpfdoctor")); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) string {
		t.Helper()
		c := exec.Command(name, args...)
		c.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	var v map[string]string
	if out := run(kubectl, "dpfdoctor", "version", "-o", "json"); json.Unmarshal([]byte(out), &v) != nil ||
		v["version"] != "v9.8.7-test" || v["commit"] != "0123abc" || v["schemaVersion"] != "dpfdoctor.dev/version/v1alpha1" {
		t.Errorf("kubectl dpfdoctor version -o json:\n%s", out)
	}
	if out := run(kubectl, "dpfdoctor", "version"); !strings.HasPrefix(out, "dpfdoctor v9.8.7-test (commit 0123abc, ") {
		t.Errorf("kubectl dpfdoctor version:\n%s", out)
	}
	for _, tc := range []struct{ cmd, want string }{
		{kubectl, "kubectl dpfdoctor"}, {filepath.Join(dir, "oc-dpfdoctor"), "oc dpfdoctor"},
	} {
		args := []string{"--help"}
		if tc.cmd == kubectl {
			args = []string{"dpfdoctor", "--help"}
		}
		out := run(tc.cmd, args...)
		for _, w := range []string{"\n  " + tc.want + " [command]\n", `Use "` + tc.want + ` [command] --help"`} {
			if !strings.Contains(out, w) {
				t.Errorf("%s --help lacks %q:\n%s", tc.want, w, out)
			}
		}
		if strings.Contains(out, "\n  sim ") {
			t.Errorf("the nosim build lists the sim command:\n%s", out)
		}
	}
}
