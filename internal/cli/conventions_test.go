package cli

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/creack/pty"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// The kube flags are the root's: every command's help lists them once,
// under "Global Flags", never among its own flags. No flag's usage has a
// backtick, which cobra would show as the value name (`sim up --help`
// once showed "--detach dpfdoctor sim down --pid-file FILE").
func TestGlobalFlagsOnce(t *testing.T) {
	s, _, _, _ := genericiooptions.NewTestIOStreams()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		path := c.CommandPath()
		for _, fs := range []*pflag.FlagSet{c.Flags(), c.PersistentFlags()} {
			fs.VisitAll(func(f *pflag.Flag) {
				if strings.Contains(f.Usage, "`") {
					t.Errorf("%s --%s: usage has a backtick, shown as its value name: %q", path, f.Name, f.Usage)
				}
			})
		}
		if c.HasParent() {
			_, help, _ := run(t, append(strings.Fields(path)[1:], "--help")...)
			own, global, ok := strings.Cut(help, "\nGlobal Flags:\n")
			if !ok {
				t.Errorf("%s --help has no Global Flags:\n%s", path, help)
			}
			for _, f := range []string{"--kubeconfig string", "--context string", "-n, --namespace string", "-v, --v Level", "--no-color"} {
				if strings.Contains(own, f) || strings.Count(global, f) != 1 {
					t.Errorf("%s --help: %q is not listed once, under Global Flags only:\n%s", path, f, help)
				}
			}
		}
		for _, sub := range c.Commands() {
			if sub.Name() != "help" && sub.Name() != "completion" {
				walk(sub)
			}
		}
	}
	walk(NewRootCommand(s))
	if _, help, _ := run(t, "sim", "up", "--help"); strings.Contains(help, "--detach dpfdoctor") || !strings.Contains(help, "      --detach  ") {
		t.Errorf("sim up --help:\n%s", help)
	}
}

// -v/--v is klog's level, as in kubectl; diagnose's old -v fails loudly
// and says where per-pod detail went.
func TestKlogVerbosity(t *testing.T) {
	t.Cleanup(func() { run(t, "version", "--v=0") })
	for _, v := range [][]string{{"-v=6"}, {"-v", "6"}, {"--v=6"}} {
		run(t, "version", "--v=0")
		if code, _, errOut := run(t, append([]string{"version"}, v...)...); code != ExitOK {
			t.Fatalf("version %v: exit %d: %s", v, code, errOut)
		}
		if !klog.V(6).Enabled() || klog.V(7).Enabled() {
			t.Errorf("version %v: klog verbosity is not 6", v)
		}
	}
	code, _, errOut := run(t, "diagnose", "--from-bundle", "testdata/mixed.yaml", "-v")
	if code != ExitUsage || !strings.Contains(errOut, "-o wide") {
		t.Errorf("diagnose -v: exit %d, stderr %q", code, errOut)
	}
}

// -o jsonpath, go-template and their -file forms apply to a report's JSON,
// as kubectl applies them to any object; -o wide adds per-pod detail; a
// template that does not parse, a missing template file and -o name on a
// report exit 2 before anything is read.
func TestOutputFormats(t *testing.T) {
	dir := t.TempDir()
	jp, gt := filepath.Join(dir, "schema.jsonpath"), filepath.Join(dir, "failing.tmpl")
	if err := os.WriteFile(jp, []byte(`{.schemaVersion}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gt, []byte(`{{range .pods}}{{if ne .class "Healthy"}}{{.name}} {{end}}{{end}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	bundle := []string{"diagnose", "--from-bundle", "testdata/mixed.yaml"}
	lintArgs := []string{"lint", "--script", filepath.Join("..", "lint", "testdata", "dmsinit-v25.4.0.sh"), "--rbac", filepath.Join("..", "lint", "testdata", "role-v25.4.0.yaml")}
	for _, tc := range []struct {
		args []string
		code int
		want string // the whole of stdout, or (code 2) part of stderr
	}{
		{[]string{"versions", "-o", "jsonpath={.schemaVersion}"}, ExitOK, VersionsSchema},
		{append(bundle, "-o", "jsonpath={.schemaVersion}"), ExitProblems, "dpfdoctor.dev/v1alpha1"},
		{append(bundle, "-o", "jsonpath-file="+jp), ExitProblems, "dpfdoctor.dev/v1alpha1"},
		{append(bundle, "-o", "go-template={{.summary.failing}}/{{.summary.pods}}"), ExitProblems, "7/8"},
		{append(bundle, "-o", "go-template-file="+gt), ExitProblems, "w1-dms w2-dms w3-dms w4-dms w5-dms w6-dms w8-dms "},
		{[]string{"version", "-o", "go-template={{.version}}"}, ExitOK, "dev"},
		{append(lintArgs, "-o", "jsonpath={.schemaVersion}"), ExitOK, "dpfdoctor.dev/lint/v1alpha1"},

		{append(bundle, "-o", "jsonpath={.pods["), ExitUsage, "error parsing jsonpath"},
		{append(bundle, "-o", "go-template={{.summary"), ExitUsage, "error parsing template"},
		{append(bundle, "-o", "jsonpath-file="+filepath.Join(dir, "missing")), ExitUsage, "missing"},
		{append(bundle, "-o", "jsonpath"), ExitUsage, "no template given"},
		{append(bundle, "-o", "name"), ExitUsage, "-o name lists Kubernetes objects"},
		{[]string{"versions", "-o", "name"}, ExitUsage, "-o name lists Kubernetes objects"},
		{append(lintArgs, "-o", "go-template={{"), ExitUsage, "error parsing template"},
		{[]string{"fix", "--apply", "--yes", "-o", "name"}, ExitUsage, "--apply prints a report"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := run(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			if tc.code == ExitUsage {
				if out != "" || !strings.Contains(errOut, tc.want) {
					t.Errorf("stdout %q, stderr %q; want nothing and %q", out, errOut, tc.want)
				}
			} else if out != tc.want {
				t.Errorf("stdout %q, want %q", out, tc.want)
			}
		})
	}

	_, table, _ := run(t, bundle...)
	_, wide, _ := run(t, append(bundle, "-o", "wide")...)
	const podHeader, evidence = "POD      NODE   CLASS", "   evidence ("
	if strings.Contains(table, podHeader) || strings.Contains(table, evidence) ||
		!strings.Contains(wide, podHeader) || !strings.Contains(wide, evidence) || !strings.Contains(wide, "w8-dms   w8") {
		t.Errorf("-o wide should add the pod table and the evidence to the table:\n%s", wide)
	}
}

// Colour only on a terminal, and not with NO_COLOR (any value) or
// --no-color; the demo scripts' section headings likewise.
func TestNoColor(t *testing.T) {
	args := []string{"diagnose", "--from-bundle", "testdata/mixed.yaml"}
	for _, tc := range []struct {
		name, noColor string
		tty           bool
		flags         []string
		ansi          bool
	}{
		{"terminal", "", true, nil, true},
		{"NO_COLOR", "1", true, nil, false},
		{"NO_COLOR=false", "false", true, nil, false},
		{"--no-color", "", true, []string{"--no-color"}, false},
		{"pipe", "", false, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("NO_COLOR", tc.noColor)
			var out string
			if tc.tty {
				out = onTerminal(t, func(tty *os.File) {
					s := genericiooptions.IOStreams{In: strings.NewReader(""), Out: tty, ErrOut: io.Discard}
					Run(NewRootCommand(s), append(args, tc.flags...), io.Discard)
				})
			} else {
				_, out, _ = run(t, append(args, tc.flags...)...)
			}
			if !strings.Contains(out, "CLASS") || strings.Contains(out, "\x1b[") != tc.ansi {
				t.Errorf("ANSI codes: %t, want %t:\n%q", !tc.ansi, tc.ansi, out)
			}
		})
	}
	for _, script := range []string{"demo.sh", "demo-fix.sh", "demo-guard.sh", "demo-widely-shared.sh"} {
		src, err := os.ReadFile(filepath.Join("..", "..", "hack", script))
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(strings.Split(string(src), "\n"), func(l string) bool { return strings.HasPrefix(strings.TrimSpace(l), "section()") })
		if i < 0 {
			t.Fatalf("%s defines no section()", script)
		}
		def := strings.Split(string(src), "\n")[i] + "\nsection heading\n"
		t.Setenv("NO_COLOR", "")
		tty := onTerminal(t, func(tty *os.File) {
			cmd := exec.Command("bash", "-c", def)
			cmd.Stdout = tty
			if err := cmd.Run(); err != nil {
				t.Error(err)
			}
		})
		piped, err := exec.Command("bash", "-c", def).Output()
		if err != nil || !strings.Contains(tty, "\x1b[1m== heading") || string(piped) != "\n== heading\n" {
			t.Errorf("%s section(): on a terminal %q, piped %q (%v)", script, tty, piped, err)
		}
	}
}

// onTerminal runs f with a pseudo-terminal and returns what f wrote to it.
func onTerminal(t *testing.T, f func(tty *os.File)) string {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ptmx.Close() }()
	read := make(chan []byte)
	go func() { b, _ := io.ReadAll(ptmx); read <- b }() // ends with EIO once tty is closed
	f(tty)
	_ = tty.Close()
	return string(<-read)
}

// Flag values complete as cobra's `completion` scripts ask for them
// (`dpfdoctor __complete …`): fixed values from internal/dpf and the sim's
// tables, -o per command, and on a cluster --context, -n and --node (DPU
// Nodes only).
func TestCompletion(t *testing.T) {
	complete := func(t *testing.T, args ...string) []string {
		t.Helper()
		code, out, errOut := run(t, append([]string{cobra.ShellCompRequestCmd}, args...)...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != ExitOK || len(lines) == 0 || lines[len(lines)-1] != ":4" { // 4: ShellCompDirectiveNoFileComp
			t.Fatalf("__complete %v: exit %d\n%s\n%s", args, code, out, errOut)
		}
		return lines[:len(lines)-1]
	}
	scenarios := []string{}
	for _, s := range sim.Scenarios() {
		scenarios = append(scenarios, string(s))
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"sim", "up", "--scenario", ""}, scenarios},
		{[]string{"sim", "up", "--dpf-version", ""}, dpf.Versions()},
		{[]string{"preflight", "--to", ""}, dpf.Versions()},
		{[]string{"fix", "--scope", ""}, []string{"names", "namespace"}},
		{[]string{"guard", "--mode", ""}, []string{"observe", "repair"}},
		{[]string{"lint", "--fail-on", ""}, []string{"certain", "possible"}},
	} {
		if got := complete(t, tc.args...); !slices.Equal(got, tc.want) {
			t.Errorf("%v: %q, want %q", tc.args, got, tc.want)
		}
	}
	for cmd, want := range map[string][]string{
		"diagnose": {"table", "wide", "json", "yaml", "jsonpath", "jsonpath-file", "go-template", "go-template-file"},
		"fix":      {"table", "yaml", "name", "json", "jsonpath"},
		"version":  {"json", "yaml", "go-template"},
		"lint":     {"text", "json", "sarif", "junit", "jsonpath"},
	} {
		got := complete(t, cmd, "-o", "")
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("%s -o completes %q, not %q", cmd, got, w)
			}
		}
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		if code, out, _ := run(t, "completion", shell); code != ExitOK || !strings.Contains(out, cobra.ShellCompRequestCmd) {
			t.Errorf("completion %s: exit %d", shell, code)
		}
	}

	cfg := bareCluster(t)
	cs := kubernetes.NewForConfigOrDie(cfg)
	for name, labels := range map[string]map[string]string{"complete-dpu-1": {dpf.DPUNodeLabel: "true"}, "complete-plain-1": nil} {
		_, err := cs.CoreV1().Nodes().Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	kc := writeKubeconfig(t, cfg)
	if got := complete(t, "diagnose", "--kubeconfig", kc, "--node", "complete-"); !slices.Equal(got, []string{"complete-dpu-1"}) {
		t.Errorf("--node: %q, want the DPU Node only", got)
	}
	if got := complete(t, "fix", "--kubeconfig", kc, "--node", ""); !slices.Contains(got, "complete-dpu-1") || slices.Contains(got, "complete-plain-1") {
		t.Errorf("fix --node: %q", got)
	}
	if got := complete(t, "diagnose", "--kubeconfig", kc, "-n", ""); !slices.Contains(got, "kube-system") || !slices.Contains(got, "default") {
		t.Errorf("-n: %q", got)
	}
	if got := complete(t, "versions", "--kubeconfig", kc, "--context", ""); !slices.Equal(got, []string{"c"}) {
		t.Errorf("--context: %q, want the kubeconfig's context c", got)
	}
	// A cluster that does not answer completes nothing, quickly.
	dead := writeKubeconfig(t, &rest.Config{Host: "https://127.0.0.1:1"})
	if got := complete(t, "diagnose", "--kubeconfig", dead, "-n", ""); len(got) != 0 {
		t.Errorf("-n on an unreachable cluster: %q", got)
	}
}
