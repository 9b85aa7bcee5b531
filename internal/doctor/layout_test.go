package doctor_test

import (
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The stages stay in their lanes (README, "Layout"): plan and policy are pure (they
// import no cluster client themselves; evidence's types come with its
// collector), and no stage imports the facade, the CLI or the sim.
func TestStageImports(t *testing.T) {
	t.Parallel()
	const mod = "github.com/dpfdoctor/dpfdoctor/internal/"
	for pkg, banned := range map[string][]string{
		"plan":   {mod + "kube", "k8s.io/client-go/kubernetes", "k8s.io/client-go/rest", mod + "apply", mod + "verify"},
		"policy": {mod + "kube", "k8s.io/client-go/kubernetes", "k8s.io/client-go/rest", mod + "apply", mod + "verify"},
		"apply":  {mod + "doctor", mod + "cli", mod + "sim", mod + "verify", mod + "evidence"},
		"verify": {mod + "doctor", mod + "cli", mod + "sim", mod + "apply"},
		"doctor": {mod + "cli", mod + "sim"},

		// preflight reads (evidence, access reviews) and decides (plan's grant); it never writes.
		"preflight": {mod + "doctor", mod + "cli", mod + "sim", mod + "guard", mod + "apply", mod + "verify"},
	} {
		out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, "../"+pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		deps := "\n" + string(out)
		for _, b := range banned {
			if strings.Contains(deps, "\n"+b+"\n") {
				t.Errorf("internal/%s imports %s", pkg, b)
			}
		}
	}
}

// writers are the packages that may write cluster state (README, "Layout": only
// apply writes; sim is the cluster).
var writers = []string{"internal/apply", "internal/sim"}

// reviews are the objects whose Create asks a question instead of changing
// cluster state.
var reviews = map[string]bool{"SubjectAccessReviewInterface": true, "SelfSubjectAccessReviewInterface": true,
	"TokenReviewInterface": true}

// Effects follow the pipeline: no package but the writers calls a write
// method of a client-go typed, dynamic, metadata or REST client or of a
// controller-runtime client. The check type-checks the module's non-test
// source against the export data `go list -export` builds.
func TestOnlyApplyWrites(t *testing.T) {
	t.Parallel()
	const mod = "github.com/dpfdoctor/dpfdoctor/"
	out, err := exec.Command("go", "list", "-export", "-deps", "-f", "{{.ImportPath}}\t{{.Export}}\t{{.Dir}}\t{{join .GoFiles \" \"}}", mod+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	type pkg struct {
		path, dir string
		files     []string
	}
	exports := map[string]string{}
	var pkgs []pkg
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		f := append(strings.Split(line, "\t"), "", "", "")
		exports[f[0]] = f[1]
		if strings.HasPrefix(f[0], mod) {
			pkgs = append(pkgs, pkg{strings.TrimPrefix(f[0], mod), f[2], strings.Fields(f[3])})
		}
	}
	fset := token.NewFileSet()
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) { return os.Open(exports[path]) })
	writeMethods := map[string]bool{"Create": true, "Update": true, "UpdateStatus": true, "Patch": true, "Apply": true, "Delete": true, "DeleteCollection": true}
	clients := []string{"k8s.io/client-go/kubernetes/typed/", "k8s.io/client-go/dynamic", "k8s.io/client-go/metadata", "k8s.io/client-go/rest",
		"k8s.io/client-go/gentype", "sigs.k8s.io/controller-runtime/pkg/client"}
	checked := 0
	for _, p := range pkgs {
		if len(p.files) == 0 || slices.ContainsFunc(writers, func(w string) bool { return p.path == w || strings.HasPrefix(p.path, w+"/") }) {
			continue
		}
		var files []*ast.File
		for _, name := range p.files {
			f, err := parser.ParseFile(fset, filepath.Join(p.dir, name), nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		info := &types.Info{Selections: map[*ast.SelectorExpr]*types.Selection{}}
		if _, err := (&types.Config{Importer: imp}).Check(p.path, fset, files, info); err != nil {
			t.Fatalf("type-check %s: %v", p.path, err)
		}
		checked++
		for sel, s := range info.Selections {
			fn, ok := s.Obj().(*types.Func)
			if !ok || !writeMethods[fn.Name()] || fn.Pkg() == nil ||
				!slices.ContainsFunc(clients, func(c string) bool { return strings.HasPrefix(fn.Pkg().Path(), c) }) {
				continue
			}
			recv := s.Recv()
			if ptr, ok := recv.(*types.Pointer); ok {
				recv = ptr.Elem()
			}
			if named, ok := recv.(*types.Named); ok && fn.Name() == "Create" && reviews[named.Obj().Name()] {
				continue
			}
			pos := fset.Position(sel.Pos())
			file := p.path + "/" + filepath.Base(pos.Filename)
			t.Errorf("%s:%d: %s writes to the cluster (%s.%s); only %v may", file, pos.Line, p.path, recv, fn.Name(), writers)
		}
	}
	if checked < 5 {
		t.Fatalf("checked only %d packages", checked)
	}
}
