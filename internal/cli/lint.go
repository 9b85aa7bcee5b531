package cli

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/buildinfo"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/lint"
	"github.com/dpfdoctor/dpfdoctor/internal/outcome"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
	"github.com/spf13/cobra"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// LintOptions are the flags of `dpfdoctor lint`.
type LintOptions struct {
	genericiooptions.IOStreams

	Scripts        []string
	RBAC           []string
	ServiceAccount string // NS/NAME
	Args           string
	Pod            string
	Container      string
	CRDs           []string
	Output         string
	Suggest        bool
	FromCluster    bool
	FailOn         string // certain|possible
	Config         string // suppressions; default lint.ConfigFile when it exists
	// Dynamic runs each script in the sandbox against a throwaway sim of
	// DynamicVersion with the --rbac under test and sets the requests it
	// made beside the static verdicts (docs/lint.md).
	Dynamic        bool
	DynamicVersion string

	argsSet      bool
	saNS, saName string
	kf           *genericclioptions.ConfigFlags
}

const lintLong = `Check the kubectl calls of shell scripts against the RBAC that will run them.

lint parses each --script as bash (no regex scanning) and follows its kubectl
invocations through variables ($kubectl_cmd), functions, pipelines, command
substitutions, loops, here-documents and "apply -f -". With the script's
arguments (--args, or the container command of --pod) it decides the branches
they select; calls under conditions it cannot decide are "possible" and are
reported apart from "certain" ones. Every request is checked for the
ServiceAccount with the Kubernetes RBAC rule matching against the Roles,
ClusterRoles and bindings in --rbac (files, directories, Helm or kustomize
output, "-" for stdin), or the live cluster's with --from-cluster.

Denials a configuration file suppresses (--config, default
` + lint.ConfigFile + ` in the current directory when it exists) are listed
but do not fail the run.

Exit codes: 0 every certain call is allowed (with --fail-on possible: every
call); 3 a certain call is denied (with --fail-on possible: any call);
2 usage errors and malformed scripts or manifests (the message names
file:line); 1 internal errors; 4 the cluster is unreachable (--from-cluster).`

const lintExample = `  # The v25.4.0 regression: non-Kubernetes mode reads Secrets the role does not allow (exit 3)
  dpfdoctor lint --script dmsinit.sh --rbac provisioning-controller.yaml \
    --args "--external-certificate none --k8s-env false --kubeconfig /etc/dpf/kubeconfig"

  # Kubernetes mode, with the dms-init arguments of a rendered DMS pod
  dpfdoctor lint --script dmsinit.sh --rbac rbac/ --pod dms-pod.yaml --container dms-init

  # CI: SARIF for code scanning, JUnit for test reports, and the Role that would close the gaps
  helm template dpf ./chart | dpfdoctor lint --script dmsinit.sh --rbac - -o sarif > lint.sarif
  dpfdoctor lint --script dmsinit.sh --rbac rbac/ --fail-on possible --config .dpfdoctor-lint.yaml -o junit > lint.xml
  dpfdoctor lint --script dmsinit.sh --rbac rbac/ --args "..." --suggest`

// NewCmdLint builds `dpfdoctor lint`; kf is read with --from-cluster.
func NewCmdLint(kf *genericclioptions.ConfigFlags, s genericiooptions.IOStreams) *cobra.Command {
	o := &LintOptions{
		IOStreams:      s,
		Output:         lint.FormatText,
		FailOn:         string(lint.Certain),
		Container:      dpf.ContainerDMSInit,
		ServiceAccount: dpf.DefaultNamespace + "/" + dmsServiceAccount(),
		kf:             kf,
	}
	cmd := &cobra.Command{
		Use:     "lint --script FILE --rbac PATH [PATH...]",
		Short:   "Check a script's kubectl calls against RBAC manifests (for CI)",
		Long:    lintLong,
		Example: lintExample,
		Args:    positional(cobra.ArbitraryArgs), // more RBAC paths
		RunE:    runE(o, o.Complete),
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.Scripts, "script", nil, "shell script to check (repeatable)")
	f.StringSliceVar(&o.RBAC, "rbac", nil, "RBAC manifests: files, directories or - for stdin (repeatable; extra arguments are read as more paths)")
	f.StringVar(&o.ServiceAccount, "serviceaccount", o.ServiceAccount, "the ServiceAccount that runs the script, NAMESPACE/NAME; calls without -n use its namespace")
	f.StringVar(&o.Args, "args", "", `the script's arguments, split with shell quoting ($VAR stays unresolved), e.g. "--kube-node-ref worker-1 --external-certificate TODO"`)
	f.StringVar(&o.Pod, "pod", "", "a Pod (or workload) YAML whose container runs the script: its command and args become the script's arguments")
	f.StringVar(&o.Container, "container", o.Container, "the container of --pod that runs the script")
	f.StringSliceVar(&o.CRDs, "crds", nil, "CustomResourceDefinition files or directories, for kinds lint does not know (repeatable)")
	outputFlag(cmd, &o.Output, "output format: "+strings.Join(lint.Formats, "|"), lint.Formats...)
	f.BoolVar(&o.Suggest, "suggest", false, "print least-privilege Role/RoleBinding YAML that allows the denied certain calls")
	f.StringVar(&o.FailOn, "fail-on", o.FailOn, "exit 3 when a call of this certainty or a more certain one is denied: certain|possible")
	f.StringVar(&o.Config, "config", "", "configuration file with suppressions (default "+lint.ConfigFile+" when it exists)")
	f.BoolVar(&o.FromCluster, "from-cluster", false, "read the RBAC and the DMS pod's dms-init arguments from the cluster (the global kubeconfig flags)")
	f.BoolVar(&o.Dynamic, "dynamic", false, "also run each script in a sandbox (bubblewrap or unshare) against a throwaway sim with --rbac and compare the requests it made (audit log) with the static verdicts")
	f.StringVar(&o.DynamicVersion, "dynamic-dpf-version", "v25.7.0", "with --dynamic: the DPF release the throwaway sim runs (its CRDs)")
	_ = cmd.RegisterFlagCompletionFunc("fail-on", oneOf(string(lint.Certain), string(lint.Possible)))
	return cmd
}

// printLint prints a lint report with write, in one of the formats it
// writes itself; a template (-o jsonpath=…) applies to its -o json.
func printLint(w io.Writer, output string, formats []string, write func(w io.Writer, format, version string) error) error {
	if slices.Contains(formats, output) {
		return write(w, output, buildinfo.Get().Version)
	}
	var js bytes.Buffer
	if err := write(&js, lint.FormatJSON, buildinfo.Get().Version); err != nil {
		return err
	}
	return printStructured(w, output, json.RawMessage(js.Bytes()))
}

// dmsServiceAccount is the DMS ServiceAccount of the newest release that
// runs dmsinit.sh.
func dmsServiceAccount() string {
	name := "dpf-provisioning-dms-service-account"
	for _, r := range dpf.Releases() {
		if r.Component == dpf.ComponentDMS && r.ServiceAccount != "" {
			name = r.ServiceAccount
		}
	}
	return name
}

// Complete takes extra arguments as RBAC paths, so that `--rbac dir/*.yaml`
// works after shell globbing.
func (o *LintOptions) Complete(c *cobra.Command, args []string) {
	o.RBAC = append(o.RBAC, args...)
	o.argsSet = c.Flags().Changed("args")
	o.saNS, o.saName, _ = strings.Cut(o.ServiceAccount, "/")
}

// Validate checks flag combinations before any file is read.
func (o *LintOptions) Validate() error {
	switch {
	case len(o.Scripts) == 0:
		return Usagef("--script is required")
	case len(o.RBAC) == 0 && !o.FromCluster:
		return Usagef("--rbac (or --from-cluster) is required")
	case o.argsSet && o.Pod != "":
		return Usagef("--args and --pod both give the script's arguments: use one")
	case o.saNS == "" || o.saName == "" || strings.Contains(o.saName, "/"):
		return Usagef("--serviceaccount %q: want NAMESPACE/NAME", o.ServiceAccount)
	case o.FailOn != string(lint.Certain) && o.FailOn != string(lint.Possible):
		return Usagef("--fail-on %q: want %s or %s", o.FailOn, lint.Certain, lint.Possible)
	}
	return nil
}

// Run loads the inputs, lints and prints the report. A denied certain call
// returns outcome.ErrProblems (exit 3) after the report.
func (o *LintOptions) Run(ctx context.Context) error {
	scripts := make([]*lint.Script, 0, len(o.Scripts))
	for _, p := range o.Scripts {
		s, err := lint.LoadScript(p)
		if err != nil {
			return inputError(err)
		}
		scripts = append(scripts, s)
	}
	kinds := dpf.Kinds()
	if len(o.CRDs) > 0 {
		var err error
		if kinds, err = lint.LoadKinds(o.CRDs...); err != nil {
			return inputError(err)
		}
	}
	set, clusterArgv, err := o.loadRBAC(ctx)
	if err != nil {
		return err
	}
	args, err := o.scriptArgs(clusterArgv)
	if err != nil {
		return err
	}
	cfg, err := o.loadConfig()
	if err != nil {
		return err
	}
	lo := lint.Options{
		Kinds: kinds, Args: args, DefaultNamespace: o.saNS,
		Subject: access.ServiceAccount(o.saNS, o.saName), ServiceAccount: o.ServiceAccount,
		FailOn: lint.Certainty(o.FailOn), Suppress: cfg.Suppressions,
	}
	if o.Dynamic {
		return o.runDynamic(ctx, scripts, set, lo)
	}
	report := lint.Lint(scripts, set, lo)
	if o.Suggest {
		y, err := lint.Suggest(report, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: o.saName, Namespace: o.saNS})
		if err != nil {
			return err
		}
		report.Suggestion = string(y)
		if o.Output == lint.FormatSARIF && len(y) > 0 {
			fmt.Fprintf(o.ErrOut, "# Least-privilege RBAC that allows the denied certain requests:\n%s", y)
		}
	}
	code := ExitOK
	if report.Failed() {
		code = ExitProblems
	}
	if err := printLint(o.Out, o.Output, lint.Formats, func(w io.Writer, format, version string) error {
		return lint.Write(w, report, format, version, code)
	}); err != nil {
		return err
	}
	if report.Failed() {
		n, what := report.Denied, "certain"
		if o.FailOn == string(lint.Possible) {
			n, what = n+report.Possible, "certain or possible"
		}
		return silent(fmt.Errorf("%w: %d %s kubectl %s denied", outcome.ErrProblems, n, what, map[bool]string{true: "request", false: "requests"}[n == 1]))
	}
	return nil
}

// loadConfig reads --config, or lint.ConfigFile when it exists.
func (o *LintOptions) loadConfig() (*lint.Config, error) {
	file := o.Config
	if file == "" {
		if _, err := os.Stat(lint.ConfigFile); err != nil {
			return &lint.Config{}, nil //nolint:nilerr // no default file: nothing suppressed
		}
		file = lint.ConfigFile
	}
	c, err := lint.LoadConfig(file)
	if err != nil {
		return nil, UsageError{Err: err}
	}
	return c, nil
}

func (o *LintOptions) loadRBAC(ctx context.Context) (*rbac.Set, []string, error) {
	set := &rbac.Set{}
	var argv []string
	if o.FromCluster {
		clients, err := kube.FromFlags(o.kf, nil)
		if err != nil {
			return nil, nil, err
		}
		cs, a, err := lint.FromCluster(ctx, clients.Kube, cmp.Or(clients.Namespace, o.saNS), dpf.ComponentLabel+"="+dpf.ComponentDMS)
		if err != nil {
			return nil, nil, kube.Classify(err)
		}
		set.Merge(cs)
		argv = a
	}
	for _, p := range o.RBAC {
		var one *rbac.Set
		var err error
		if p == "-" {
			var data []byte
			if data, err = io.ReadAll(o.In); err != nil {
				return nil, nil, fmt.Errorf("read RBAC from stdin: %w", err)
			}
			one, err = rbac.ParseManifests("<stdin>", data)
		} else {
			one, err = rbac.LoadManifests(p)
		}
		if err != nil {
			return nil, nil, inputError(err)
		}
		set.Merge(one)
	}
	set.SetDefaultNamespace(o.saNS)
	if set.Len() == 0 {
		return nil, nil, Usagef("no Role, ClusterRole, RoleBinding or ClusterRoleBinding in %s", strings.Join(o.RBAC, ", "))
	}
	return set, argv, nil
}

// scriptArgs decides the script's arguments: --args, --pod, the cluster's
// DMS pod, or unknown (nil).
func (o *LintOptions) scriptArgs(clusterArgv []string) (*lint.Args, error) {
	switch {
	case o.argsSet:
		a, err := lint.ParseArgs(o.Args)
		if err != nil {
			return nil, UsageError{Err: err}
		}
		return a, nil
	case o.Pod != "":
		data, err := os.ReadFile(o.Pod)
		if err != nil {
			return nil, inputError(fmt.Errorf("read --pod: %w", err))
		}
		argv, err := lint.ContainerArgv(o.Pod, data, o.Container)
		if err != nil {
			return nil, UsageError{Err: err} // the file or --container is wrong
		}
		words, ok := lint.ScriptArgv(argv, o.Scripts[0])
		if !ok {
			return nil, Usagef("container %s in %s does not run %s: %q", o.Container, o.Pod, o.Scripts[0], argv)
		}
		return lint.ArgsFromArgv(words), nil
	case clusterArgv != nil:
		words, ok := lint.ScriptArgv(clusterArgv, o.Scripts[0])
		if ok {
			return lint.ArgsFromArgv(words), nil
		}
		fmt.Fprintf(o.ErrOut, "warning: the DMS pod's %s container does not run %s; its arguments are unknown\n", dpf.ContainerDMSInit, o.Scripts[0])
	case o.FromCluster:
		fmt.Fprintf(o.ErrOut, "warning: no DMS pod with a %s container in %s; the script's arguments are unknown\n", dpf.ContainerDMSInit, o.saNS)
	}
	return nil, nil
}

// inputError makes unreadable or malformed input files usage errors
// (exit 2); their messages name file:line.
func inputError(err error) error {
	var (
		se *lint.ScriptError
		me *rbac.ManifestError
		pe *fs.PathError
	)
	if errors.As(err, &se) || errors.As(err, &me) || errors.As(err, &pe) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return UsageError{Err: err}
	}
	return err
}
