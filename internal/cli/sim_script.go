//go:build !nosim

package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
	"github.com/dpfdoctor/dpfdoctor/internal/sandbox"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// simScriptFlags are `sim up --dmsinit-script FILE --rbac PATH...`: run a
// real dmsinit.sh in the sandbox, against the given RBAC (docs/sim.md).
type simScriptFlags struct {
	script string
	rbac   []string
	dpus   []string
}

func (f *simScriptFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.script, "dmsinit-script", "", "run this dmsinit.sh as each pod's dms-init and rshim-preflight in a sandbox, bubblewrap or unshare (up to --kubectl-max-nodes nodes)")
	fs.StringSliceVar(&f.dpus, "host-dpus", nil, "with --dmsinit-script: every host's BlueField devices in PCI order, bf3 or bf2 (default bf3; at most 8)")
	fs.StringSliceVar(&f.rbac, "rbac", nil, "RBAC manifests (files, directories) that replace the release's ClusterRole and binding; namespace dpf-provisioning becomes the DPF namespace (repeatable)")
}

// complete fills the sim options; errors are usage errors.
func (f *simScriptFlags) complete(o *sim.Options) error {
	if len(f.rbac) > 0 {
		set, err := rbac.LoadManifests(f.rbac...)
		if err != nil {
			return UsageError{Err: err}
		}
		o.RBAC = set
	}
	if len(f.dpus) > 8 {
		return UsageError{Err: fmt.Errorf("--host-dpus: %d devices, at most 8", len(f.dpus))}
	}
	for _, d := range f.dpus {
		id, ok := map[string]string{"bf3": sim.DeviceBlueField3, "bf2": sim.DeviceBlueField2}[d]
		if !ok {
			return UsageError{Err: fmt.Errorf("--host-dpus: %q is not bf3 or bf2", d)}
		}
		o.HostDPUs = append(o.HostDPUs, id)
	}
	if f.script == "" {
		return nil
	}
	script, err := filepath.Abs(f.script)
	if err == nil {
		_, err = os.Stat(script)
	}
	if err != nil {
		return UsageError{Err: fmt.Errorf("--dmsinit-script: %w", err)}
	}
	if _, err := sandbox.Launcher(); err != nil {
		return err
	}
	kubectl, err := exec.LookPath(sim.KubectlPath())
	if err != nil {
		return fmt.Errorf("--dmsinit-script needs kubectl (KUBECTL, KUBEBUILDER_ASSETS or PATH): %w", err)
	}
	if kubectl, err = filepath.Abs(kubectl); err != nil {
		return err
	}
	o.Script = sandbox.SimRunner{Script: script, Kubectl: kubectl}
	return nil
}
