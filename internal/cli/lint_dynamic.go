package cli

import "github.com/spf13/pflag"

// lintDynamicFlags are `lint --dynamic [--dynamic-dpf-version V]`: run each
// script in the sandbox against a throwaway sim with the --rbac under test
// and set the requests it made beside the static verdicts (docs/lint.md).
type lintDynamicFlags struct {
	on      bool
	version string
}

func (f *lintDynamicFlags) add(fs *pflag.FlagSet) {
	fs.BoolVar(&f.on, "dynamic", false, "also run each script in a sandbox (bubblewrap or unshare) against a throwaway sim with --rbac and compare the requests it made (audit log) with the static verdicts")
	fs.StringVar(&f.version, "dynamic-dpf-version", "v25.7.0", "with --dynamic: the DPF release the throwaway sim runs (its CRDs)")
}
