package sandbox

import (
	"context"
	"time"

	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// SimRunner runs a script as the simulated pods' dms-init and
// rshim-preflight (sim.Options.Script): each run gets a fresh sandbox whose
// fake host is the node's, per its scenario.
type SimRunner struct {
	// Script is the host path of the dmsinit.sh to run.
	Script string
	// Kubectl is the kubectl binary put on the sandbox's PATH.
	Kubectl string
	// Timeout bounds one container run (default 2 minutes).
	Timeout time.Duration
	// Launcher forces bwrap or unshare (Spec.Launcher).
	Launcher string
}

// RunScript implements sim.ScriptRunner.
func (r SimRunner) RunScript(ctx context.Context, run sim.ScriptRun) (sim.ScriptResult, error) {
	h := Host{Name: run.Node, RshimOccupied: run.RshimOccupied}
	if !run.NoDPU {
		h.Devices = run.DPUs
	}
	res, err := Run(ctx, Spec{
		Script: r.Script, Argv: run.Argv, Env: run.Env, Host: h,
		SA:      ServiceAccount{Token: run.Token, CA: run.CA, Namespace: run.Namespace},
		Kubectl: r.Kubectl, APIServer: run.APIServer, Timeout: r.Timeout, Launcher: r.Launcher,
	})
	if err != nil {
		return sim.ScriptResult{}, err
	}
	return sim.ScriptResult{Lines: res.Lines(), ExitCode: res.ExitCode, Message: res.TerminationMessage, EmptyCerts: res.EmptyCertificates}, nil
}
