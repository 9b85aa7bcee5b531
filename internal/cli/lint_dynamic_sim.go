//go:build !nosim

package cli

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/lint"
	"github.com/dpfdoctor/dpfdoctor/internal/outcome"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
	"github.com/dpfdoctor/dpfdoctor/internal/sandbox"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// runDynamic runs every script once per argument set: --args or --pod, else
// the operator's (rshim-preflight's and dms-init's).
func (o *LintOptions) runDynamic(ctx context.Context, scripts []*lint.Script, set *rbac.Set, lo lint.Options) error {
	if o.Output == lint.FormatJUnit {
		return Usagef("--dynamic writes text, json or sarif")
	}
	if _, err := dpf.Lookup(o.DynamicVersion); err != nil {
		return UsageError{Err: err}
	}
	if _, err := sandbox.Launcher(); err != nil {
		return err
	}
	kubectl, err := exec.LookPath(sim.KubectlPath())
	if err != nil {
		return fmt.Errorf("--dynamic needs kubectl (KUBECTL, KUBEBUILDER_ASSETS or PATH): %w", err)
	}
	// Both sides see the manifests as the operator applies them.
	set.RewriteNamespace(dpf.PlaceholderNamespace, o.saNS)
	argSets := sandbox.OperatorArgSets()
	if lo.Args != nil {
		argSets = [][]string{lo.Args.Strings()}
	}
	ctrllog.SetLogger(logr.Discard())
	report := &lint.DynamicReport{}
	for i, s := range scripts {
		path, err := filepath.Abs(o.Scripts[i])
		if err != nil {
			return err
		}
		fmt.Fprintf(o.ErrOut, "running %s in the sandbox against a DPF %s sim (%d argument sets)...\n", o.Scripts[i], o.DynamicVersion, len(argSets))
		runs, err := sandbox.Observe(ctx, sandbox.ObserveOptions{Script: path, ArgSets: argSets, Version: o.DynamicVersion, RBAC: set,
			Namespace: o.saNS, ServiceAccount: o.saName, Kubectl: kubectl})
		if err != nil {
			return err
		}
		for _, run := range runs {
			lo.Args = lint.ArgsFromArgv(run.Args)
			static := lint.Lint([]*lint.Script{s}, set, lo)
			report.Runs = append(report.Runs, lint.NewDynamicRun(static, o.Scripts[i], run.Args, run.ExitCode, run.Log, run.Requests))
		}
	}
	code := ExitOK
	if report.Failed() {
		code = ExitProblems
	}
	if err := printLint(o.Out, o.Output, []string{lint.FormatText, lint.FormatJSON, lint.FormatSARIF}, func(w io.Writer, format, version string) error {
		return lint.WriteDynamic(w, report, format, version, code)
	}); err != nil {
		return err
	}
	if report.Failed() {
		return silent(fmt.Errorf("%w: lint --dynamic found denied or unpredicted requests", outcome.ErrProblems))
	}
	return nil
}
