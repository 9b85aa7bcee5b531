package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/dpfdoctor/dpfdoctor/internal/apply"
	"github.com/dpfdoctor/dpfdoctor/internal/doctor"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/outcome"
)

// Each exit code once, and each is documented in --help and in README.md.
func TestExitCode(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		err  error
		code int
	}{
		{nil, ExitOK},
		{errors.New("boom"), ExitInternal},
		{Usagef("--scope must be %q", "names"), ExitUsage},
		{silent(fmt.Errorf("diagnose: %w", outcome.ErrProblems)), ExitProblems},
		{fmt.Errorf("get pods: %w", kube.ErrUnreachable), ExitUnreachable},
		{fmt.Errorf("get pods: %w", kube.ErrUnauthenticated), ExitUnreachable},
		{fmt.Errorf("load: %w", kube.ErrBadKubeconfig), ExitUnreachable},
		{fmt.Errorf("list: %w", outcome.ErrNotInstalled), ExitNotInstalled},
		{fmt.Errorf("need list pods: %w", kube.ErrInsufficientRights), ExitNoRights},
		{silent(doctor.ErrDeclined), ExitDeclined},
		{fmt.Errorf("%w (Lease x held by y)", apply.ErrGuardRepairing), ExitGuard},
		{fmt.Errorf("wait: %w", context.DeadlineExceeded), ExitTimeout},
		{fmt.Errorf("wait: %w", context.Canceled), ExitInterrupted},
	} {
		if got := ExitCode(tc.err); got != tc.code {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.code)
		}
		if !strings.Contains(ExitCodesHelp, fmt.Sprintf("\n  %-4d ", tc.code)) {
			t.Errorf("exit code %d is not in ExitCodesHelp", tc.code)
		}
		if !strings.Contains(string(readme), fmt.Sprintf("\n| %d | ", tc.code)) {
			t.Errorf("exit code %d is not in README.md's table", tc.code)
		}
	}
	if _, out, _ := run(t, "--help"); !strings.Contains(out, "7    declined") {
		t.Errorf("dpfdoctor --help does not document exit 7:\n%s", out)
	}
}

// badValues are flag values that parse but are wrong, per command: enums,
// ranges and paths. Flags that do not parse are found by walking the flags.
func badValues(missing, file string) map[string][][]string {
	return map[string][][]string{
		"dpfdoctor":          {{"--v", "loud"}},
		"dpfdoctor diagnose": {{"--max-logs", "-1"}, {"--from-bundle", missing}, {"--bundle", missing}, {"--bundle", os.TempDir()}, {"-o", "jsonpath={.pods["}, {"-o", "name"}, {"-v"}},
		"dpfdoctor fix":      {{"--scope", "cluster"}, {"--restart", "sometimes"}, {"--timeout", "0s"}, {"--reconcile-wait", "0s"}, {"--yes"}, {"-o", "go-template={{"}, {"--apply", "--yes", "-o", "name"}, {"--apply", "--yes", "--backup-dir", filepath.Join(file, "sub")}},
		"dpfdoctor guard":    {{"--mode", "fix-everything"}, {"--max-repairs-per-minute", "0"}, {"--max-logs", "-1"}},
		"dpfdoctor lint":     {{"--serviceaccount", "no-slash"}, {"--script", missing}, {"--fail-on", "never"}, {"--config", missing}, {"-o", "jsonpath"}},
		"dpfdoctor rollback": {{"--backup", missing}, {"--latest", "--backup", missing}},
		"dpfdoctor sim up":   {{"--scenario", "nope"}, {"--scenario", "healthy=3", "--nodes", "2"}, {"--dpf-version", "v1.0"}, {"--nodes", "0"}, {"--time-scale", "0"}},
		"dpfdoctor sim down": {{"--pid-file", missing}},
		"dpfdoctor version":  {{"-o", "table"}, {"-o", "name"}},
		"dpfdoctor versions": {{"--out", missing}, {"-o", "jsonpath-file=" + missing}},

		"dpfdoctor preflight": {{"--to", "v1.0"}, {"--rbac", missing}, {"--rbac", "current", "--rbac", "release"}},
	}
}

// Every command × {extra argument, unknown flag, bad -o, bad flag value}
// exits 2 before any I/O, with an error line and the command's --help to
// read next. The commands are found by walking the tree, so a new command
// cannot escape. KUBECONFIG names no file: a command that built a client
// anyway would exit 4, not 2.
func TestBadInputEveryCommand(t *testing.T) {
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "no-kubeconfig"))
	lintData := filepath.Join("..", "lint", "testdata")
	// base makes a command otherwise valid, so that the bad input is what fails.
	base := map[string][]string{
		"dpfdoctor lint": {"--script", filepath.Join(lintData, "dmsinit-v25.4.0.sh"), "--rbac", filepath.Join(lintData, "role-v25.4.0.yaml")},

		"dpfdoctor preflight": {"--to", "v25.7.0"},
	}
	missing := filepath.Join(t.TempDir(), "no", "such", "file")
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	values := badValues(missing, file)
	seen := map[string]bool{}

	type tcase struct {
		name string
		args []string
		says []string // one of them, besides the --help hint
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		path := c.CommandPath()
		seen[path] = true
		cases := []tcase{
			{"extra argument", []string{"no-such-argument"}, []string{"no-such-argument"}},
			{"unknown flag", []string{"--no-such-flag"}, []string{"--no-such-flag"}},
		}
		if c.Flags().Lookup("output") != nil {
			cases = append(cases, tcase{"bad -o", []string{"-o", "no-such-format"}, []string{"no-such-format"}})
		}
		flags := 0 // those whose wrong values parse: badValues must hold some
		c.Flags().VisitAll(func(f *pflag.Flag) {
			switch f.Value.Type() {
			case "string", "stringArray", "stringSlice":
				flags++
			default: // bool, int, float64, duration, …: "x" does not parse
				cases = append(cases, tcase{"--" + f.Name + "=x", []string{"--" + f.Name + "=x"}, []string{"--" + f.Name}})
			}
		})
		for _, v := range values[path] {
			cases = append(cases, tcase{strings.ReplaceAll(strings.Join(v, " "), missing, "MISSING"), v, v})
		}
		if flags > 0 && len(values[path]) == 0 {
			t.Errorf("%s has flags but no bad flag value in badValues: add one", path)
		}
		for _, tc := range cases {
			t.Run(path+"/"+tc.name, func(t *testing.T) {
				args := slices.Concat(strings.Fields(path)[1:], base[path])
				code, stdout, stderr := runWithin(t, 10*time.Second, append(args, tc.args...)...)
				if code != ExitUsage {
					t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, ExitUsage, stdout, stderr)
				}
				hint := fmt.Sprintf("See '%s --help' for usage.", path)
				names := false
				for _, w := range tc.says {
					names = names || strings.Contains(stderr, w)
				}
				if !strings.HasPrefix(stderr, "error: ") || !names || !strings.Contains(stderr, hint) {
					t.Errorf("stderr should be an error naming one of %q, then %q:\n%s", tc.says, hint, stderr)
				}
			})
		}
		for _, sub := range c.Commands() {
			if !sub.Hidden && sub.Name() != "help" {
				walk(sub)
			}
		}
	}
	s, _, _, _ := genericiooptions.NewTestIOStreams()
	walk(NewRootCommand(s))
	for path := range values {
		if !seen[path] {
			t.Errorf("badValues names %q, which is not a command", path)
		}
	}
}

// runWithin runs dpfdoctor like run, but fails the command (exit 124, not 2)
// if it blocks longer than d.
func runWithin(t *testing.T, d time.Duration, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	s, _, out, errOut := genericiooptions.NewTestIOStreams()
	cmd := NewRootCommand(s)
	cmd.SetContext(ctx)
	code := Run(cmd, args, errOut)
	return code, out.String(), errOut.String()
}

// An unknown subcommand gets cobra's suggestion.
func TestUnknownSubcommandSuggests(t *testing.T) {
	code, _, stderr := run(t, "diagnoze")
	if code != ExitUsage || !strings.Contains(stderr, `did you mean "diagnose"?`) {
		t.Errorf("exit %d:\n%s", code, stderr)
	}
}
