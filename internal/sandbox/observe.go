package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/lint"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// ObserveOptions configure Observe.
type ObserveOptions struct {
	// Script is the host path of the script; each of ArgSets is one run.
	Script  string
	ArgSets [][]string
	// Version is the DPF release of the throwaway sim (its CRDs and, without
	// RBAC, its role).
	Version string
	// RBAC replaces the release's role, as `sim up --rbac` does.
	RBAC *rbac.Set
	// ServiceAccount runs the script (created when the release has no such
	// ServiceAccount).
	Namespace, ServiceAccount string
	Kubectl                   string
	// Timeout bounds each run (default 2 minutes).
	Timeout time.Duration
}

// Observation is one observed run: the script's exit code, its log, and the API
// requests it made as the ServiceAccount, from the API server's audit log.
type Observation struct {
	Args     []string
	ExitCode int
	Log      []string
	Requests []lint.Observed
}

// SimNode and SimNodeIP are the throwaway sim's node, as the operator's
// arguments name it (--kube-node-ref, --dms-ip).
const (
	SimNode   = "dpu-worker-1"
	SimNodeIP = "127.0.0.2"
)

// controlPlaneKey carries WithControlPlane's control plane.
type controlPlaneKey struct{}

// WithControlPlane returns a context in which Observe starts its throwaway
// sims on cp (started with an audit log) instead of on API servers of their
// own: tests that run `lint --dynamic` through the CLI many times start one.
func WithControlPlane(ctx context.Context, cp *sim.ControlPlane) context.Context {
	return context.WithValue(ctx, controlPlaneKey{}, cp)
}

// Observe starts a throwaway sim with one DPU node whose DMS pod never
// runs a container (certificate-not-ready), so that the ServiceAccount's
// only requests are the script's, and runs the script once per argument
// set in the sandbox on a healthy BlueField-3 host.
func Observe(ctx context.Context, o ObserveOptions) ([]Observation, error) {
	user := access.ServiceAccount(o.Namespace, o.ServiceAccount).User
	cp, _ := ctx.Value(controlPlaneKey{}).(*sim.ControlPlane)
	c, err := sim.Start(ctx, sim.Options{Version: o.Version, Nodes: 1, Scenario: string(sim.CertificateNotReady), RBAC: o.RBAC,
		Audit: true, Resync: time.Hour, NodeStatusReport: -1, ControlPlane: cp})
	if err != nil {
		return nil, fmt.Errorf("start the sim: %w", err)
	}
	defer func() { _ = c.Stop() }()
	token, err := c.ServiceAccountToken(ctx, o.Namespace, o.ServiceAccount)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(c.Config.Host)
	if err != nil {
		return nil, fmt.Errorf("API server %s: %w", c.Config.Host, err)
	}
	host, port := u.Hostname(), u.Port()
	var runs []Observation
	offset := c.AuditStart // a shared control plane's log holds earlier sims' requests
	for _, args := range o.ArgSets {
		res, err := Run(ctx, Spec{
			Script: o.Script, Argv: append([]string{"/bin/bash", "/opt/dpf/dmsinit.sh"}, args...),
			Env:  []string{"KUBERNETES_SERVICE_HOST=" + host, "KUBERNETES_SERVICE_PORT=" + port},
			Host: Host{Name: SimNode, Devices: []Device{{PCI: sim.PCIAddress, DeviceID: sim.DeviceBlueField3, Serial: "MT2306XZ0001", PF0: "ens1f0np0"}}},
			SA:   ServiceAccount{Token: token, CA: c.Config.CAData, Namespace: o.Namespace}, Kubectl: o.Kubectl,
			APIServer: net.JoinHostPort(host, port), Timeout: o.Timeout,
		})
		if err != nil {
			return nil, err
		}
		run := Observation{Args: args, ExitCode: res.ExitCode, Log: res.Lines()}
		if run.Requests, offset, err = audited(c.AuditLog, offset, user); err != nil {
			return nil, err
		}
		runs = append(runs, run)
	}
	return runs, nil
}

// audited reads the user's requests since offset. The log backend writes
// each event before the request returns (--audit-log-mode blocking, the
// default), so everything the finished script did is there.
func audited(log string, offset int64, user string) ([]lint.Observed, int64, error) {
	events, end, err := sim.ReadAudit(log, offset, user)
	if errors.Is(err, os.ErrNotExist) {
		return nil, offset, nil // no request at all yet
	}
	if err != nil {
		return nil, offset, err
	}
	var out []lint.Observed
	for _, e := range events {
		if e.Incidental() {
			continue
		}
		ob := lint.Observed{Request: e.Request(), Allowed: e.Allowed(), Reason: e.Reason()}
		if e.ResponseStatus != nil {
			ob.Code = e.ResponseStatus.Code
		}
		out = append(out, ob)
	}
	return out, end, nil
}

// OperatorArgSets are the argument sets the operator passes dmsinit.sh in
// the throwaway sim's DMS pod: rshim-preflight's and dms-init's.
func OperatorArgSets() [][]string {
	return [][]string{{"--cmd", "check-rshim-not-occupied"}, dpf.OperatorArgs(SimNode, SimNodeIP, "")[1:]}
}
