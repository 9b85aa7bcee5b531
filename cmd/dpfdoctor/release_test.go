//go:build release

package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestRelease checks the snapshot `make release` left in dist/ (make
// test-release runs both): the archives and SBOMs per platform, the
// checksums, every binary's version, and the krew manifest, validated by
// krew's validate-krew-manifest and installed by krew from the local archive.
func TestRelease(t *testing.T) {
	dist := filepath.Join("..", "..", "dist")
	var meta struct{ Version, Commit string }
	readJSON(t, filepath.Join(dist, "metadata.json"), &meta)
	v := meta.Version
	if v == "" || len(meta.Commit) != 40 {
		t.Fatalf("dist/metadata.json: version %q, commit %q (want a 40-hex commit)", v, meta.Commit)
	}
	sums := checksums(t, filepath.Join(dist, "dpfdoctor_"+v+"_checksums.txt"))
	var artifacts []struct{ Name, Path, Goos, Goarch, Type string }
	readJSON(t, filepath.Join(dist, "artifacts.json"), &artifacts)
	bins := map[string]string{}
	for _, a := range artifacts {
		if a.Type == "Binary" && filepath.Base(a.Path) == "dpfdoctor" {
			bins[a.Goos+"/"+a.Goarch] = filepath.Join("..", "..", a.Path)
		}
	}
	for _, p := range []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64"} {
		osArch := strings.ReplaceAll(p, "/", "_")
		archives := map[string][]string{
			"dpfdoctor_" + v + "_" + osArch + ".tar.gz":         {"LICENSE", "README.md", "dpfdoctor"},
			"kubectl-dpfdoctor_" + v + "_" + osArch + ".tar.gz": {"LICENSE", "kubectl-dpfdoctor"},
		}
		for name, want := range archives {
			if got := tarNames(t, filepath.Join(dist, name)); !slices.Equal(got, want) {
				t.Errorf("%s holds %v, want %v", name, got, want)
			}
			if _, ok := sums[name]; !ok {
				t.Errorf("%s is not in the checksums file", name)
			}
		}
		var bom struct {
			BOMFormat  string `json:"bomFormat"`
			Components []struct {
				Name string `json:"name"`
			} `json:"components"`
		}
		readJSON(t, filepath.Join(dist, "dpfdoctor_"+v+"_"+osArch+".cdx.json"), &bom)
		if bom.BOMFormat != "CycloneDX" || !slices.ContainsFunc(bom.Components, func(c struct {
			Name string `json:"name"`
		}) bool {
			return c.Name == "k8s.io/client-go"
		}) {
			t.Errorf("%s SBOM: format %q, %d components, want CycloneDX listing k8s.io/client-go", p, bom.BOMFormat, len(bom.Components))
		}
		bin := bins[p]
		if bin == "" {
			t.Errorf("no %s binary in dist/artifacts.json", p)
			continue
		}
		// -trimpath keeps -ldflags out of the build information `go version
		// -m` shows, so the -X values are looked for in the binary itself.
		out, err := exec.Command("go", "version", "-m", bin).Output()
		if err != nil {
			t.Fatalf("go version -m %s: %v", bin, err)
		}
		for _, want := range []string{"\t-tags=nosim\n", "\tGOOS=" + strings.Split(p, "/")[0] + "\n", "\tGOARCH=" + strings.Split(p, "/")[1] + "\n"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("go version -m %s lacks %q:\n%s", bin, want, out)
			}
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"v" + v, meta.Commit} {
			if !bytes.Contains(data, []byte(want)) {
				t.Errorf("%s does not hold %q (-X internal/buildinfo)", bin, want)
			}
		}
		if p == "linux/amd64" {
			var info map[string]string
			out, err := exec.Command(bin, "version", "-o", "json").Output()
			if err != nil || json.Unmarshal(out, &info) != nil || info["version"] != "v"+v || info["commit"] != meta.Commit {
				t.Errorf("%s version -o json: %v\n%s", bin, err, out)
			}
		}
	}
	for name, sum := range sums {
		if got := sha256File(t, filepath.Join(dist, name)); got != sum {
			t.Errorf("%s: sha256 %s, the checksums file says %s", name, got, sum)
		}
	}
	checkKrew(t, dist, v, sums)
}

// checkKrew validates dist/krew/dpfdoctor.yaml with krew's own validator,
// checks its URIs and sums against the release, and installs the linux/amd64
// plugin from the local archive with krew (which checks the sum again).
func checkKrew(t *testing.T, dist, v string, sums map[string]string) {
	manifest := filepath.Join(dist, "krew", "dpfdoctor.yaml")
	validate := tool(t, "validate-krew-manifest")
	// -skip-install: its install step downloads the URIs; krew installs
	// the local archive below instead.
	if out, err := exec.Command(validate, "-manifest", manifest, "-skip-install").CombinedOutput(); err != nil {
		t.Fatalf("validate-krew-manifest: %v\n%s", err, out)
	}
	var m struct {
		Spec struct {
			Version   string
			Platforms []struct {
				URI, Sha256, Bin string
				Selector         struct{ MatchLabels map[string]string }
			}
		}
	}
	data, err := os.ReadFile(manifest)
	if err != nil || yaml.Unmarshal(data, &m) != nil {
		t.Fatalf("read %s: %v", manifest, err)
	}
	if m.Spec.Version != "v"+v || len(m.Spec.Platforms) != 4 {
		t.Errorf("krew manifest: version %q, %d platforms; want v%s and 4", m.Spec.Version, len(m.Spec.Platforms), v)
	}
	for _, p := range m.Spec.Platforms {
		l := p.Selector.MatchLabels
		name := "kubectl-dpfdoctor_" + v + "_" + l["os"] + "_" + l["arch"] + ".tar.gz"
		if p.URI != "https://github.com/dpfdoctor/dpfdoctor/releases/download/v"+v+"/"+name || p.Sha256 != sums[name] || p.Bin != "kubectl-dpfdoctor" {
			t.Errorf("krew platform %v: uri %s, sha256 %s, bin %s; want %s with sha256 %s", l, p.URI, p.Sha256, p.Bin, name, sums[name])
		}
	}
	root := t.TempDir()
	krew := exec.Command(tool(t, "krew"), "install", "--manifest", manifest, "--archive", filepath.Join(dist, "kubectl-dpfdoctor_"+v+"_linux_amd64.tar.gz"))
	krew.Env = append(os.Environ(), "KREW_ROOT="+root, "KREW_OS=linux", "KREW_ARCH=amd64", "KREW_NO_UPGRADE_CHECK=1")
	if out, err := krew.CombinedOutput(); err != nil {
		t.Fatalf("krew install: %v\n%s", err, out)
	}
	out, err := exec.Command(filepath.Join(root, "bin", "kubectl-dpfdoctor"), "--help").Output()
	if err != nil || !strings.Contains(string(out), `Use "kubectl dpfdoctor [command] --help"`) {
		t.Errorf("kubectl-dpfdoctor from krew --help: %v\n%s", err, out)
	}
}

// tool builds (once) and locates a pinned tool with hack/tools.sh.
func tool(t *testing.T, name string) string {
	out, err := exec.Command(filepath.Join("..", "..", "hack", "tools.sh"), name).Output()
	if err != nil {
		t.Fatalf("hack/tools.sh %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

func readJSON(t *testing.T, file string, v any) {
	data, err := os.ReadFile(file)
	if err == nil {
		err = json.Unmarshal(data, v)
	}
	if err != nil {
		t.Fatalf("read %s: %v", file, err)
	}
}

// checksums reads a sha256sum file: name → sum.
func checksums(t *testing.T, file string) map[string]string {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sums := map[string]string{}
	for s := bufio.NewScanner(f); s.Scan(); {
		sum, name, ok := strings.Cut(s.Text(), "  ")
		if !ok || len(sum) != 64 {
			t.Fatalf("%s: bad line %q", file, s.Text())
		}
		sums[name] = sum
	}
	return sums
}

func sha256File(t *testing.T, file string) string {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// tarNames lists a .tar.gz archive's regular files, sorted.
func tarNames(t *testing.T, file string) []string {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var names []string
	for tr := tar.NewReader(gz); ; {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if h.Typeflag == tar.TypeReg {
			names = append(names, h.Name)
		}
	}
	slices.Sort(names)
	return names
}
