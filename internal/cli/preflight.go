package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/utils/ptr"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/outcome"
	"github.com/dpfdoctor/dpfdoctor/internal/preflight"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
)

// PreflightOptions are the flags of `dpfdoctor preflight`.
type PreflightOptions struct {
	genericiooptions.IOStreams

	To     string
	RBAC   []string
	Output string

	opts  preflight.Options
	kf    *genericclioptions.ConfigFlags
	color palette
}

const preflightLong = `Check, before upgrading DPF, what the target version's dms-init (or host
agent) will need against what the cluster will have after the upgrade: its
ServiceAccount's permission for every call of its call table, the DPUDevice
CRD as it is now (helm upgrade does not upgrade CRDs), the Issuer and the
nodes' Certificates its pods mount, the DPFOperatorConfig's
kubernetesAPIServerVIP/Port, and an operator that is not paused. Read-only.

--rbac says what RBAC the cluster will have:
  release   (default) the operator re-applies the target release's own RBAC
  current   RBAC stays as it is now (pinned by GitOps or by hand); asked with
            SubjectAccessReviews for the ServiceAccount
  PATH      the new release's manifests (files or directories, repeatable),
            evaluated locally

It prints what will break, per node where it differs, and what to do first:
the CRDs to apply and the least-privilege grant to pre-apply (the same YAML
as ` + "`dpfdoctor fix -o yaml`" + `). Exit 0: nothing will break; 3: something will.
See docs/preflight.md.

`

const preflightExample = `  # Will upgrading to v25.7.0 break dms-init? (the operator's own RBAC)
  dpfdoctor preflight --to v25.7.0

  # With RBAC pinned as it is now
  dpfdoctor preflight --to v25.7.0 --rbac current

  # With the new release's RBAC manifests, in CI
  dpfdoctor preflight --to v25.7.0 --rbac rendered/rbac/ -o json > preflight.json`

// NewCmdPreflight builds `dpfdoctor preflight`.
func NewCmdPreflight(kf *genericclioptions.ConfigFlags, s genericiooptions.IOStreams) *cobra.Command {
	o := &PreflightOptions{IOStreams: s, Output: OutputTable, kf: kf}
	cmd := &cobra.Command{
		Use:     "preflight --to VERSION",
		Short:   "Before a DPF upgrade: what the target's dms-init will need, checked against the cluster after the upgrade",
		Long:    preflightLong + ExitCodesHelp,
		Example: preflightExample,
		Args:    positional(cobra.NoArgs),
		RunE:    runE(o, func(c *cobra.Command, _ []string) { o.color = colour(c, o.Out) }),
	}
	f := cmd.Flags()
	f.StringVar(&o.To, "to", "", "The DPF version to upgrade to (required; see 'dpfdoctor versions')")
	f.StringArrayVar(&o.RBAC, "rbac", nil, "RBAC after the upgrade: release (default), current, or manifest files/directories (repeatable)")
	outputFlag(cmd, &o.Output, "Output format: table, json or yaml", OutputTable, OutputJSON, OutputYAML)
	_ = cmd.RegisterFlagCompletionFunc("to", oneOf(dpf.Versions()...))
	return cmd
}

// Validate checks the flags, and reads --rbac manifests, before any I/O
// with the cluster.
func (o *PreflightOptions) Validate() error {
	if strings.TrimSpace(o.To) == "" {
		return Usagef("--to is required: the DPF version to upgrade to (known: %s)", strings.Join(dpf.Versions(), ", "))
	}
	if _, err := dpf.Lookup(o.To); err != nil {
		return UsageError{Err: fmt.Errorf("--to: %w", err)}
	}
	o.opts = preflight.Options{To: o.To, RBAC: preflight.RBACRelease}
	switch {
	case len(o.RBAC) == 0:
	case len(o.RBAC) == 1 && (o.RBAC[0] == preflight.RBACRelease || o.RBAC[0] == preflight.RBACCurrent):
		o.opts.RBAC = o.RBAC[0]
	case slices.Contains(o.RBAC, preflight.RBACRelease) || slices.Contains(o.RBAC, preflight.RBACCurrent):
		return Usagef("--rbac release or current cannot be combined with other --rbac values, got %s (a manifest directory named so: ./%s)",
			strings.Join(o.RBAC, ", "), o.RBAC[0])
	default:
		set, err := rbac.LoadManifests(o.RBAC...)
		if err != nil {
			return UsageError{Err: fmt.Errorf("--rbac: %w", err)}
		}
		if set.Len() == 0 {
			return Usagef("--rbac %s: no Role, ClusterRole, RoleBinding or ClusterRoleBinding found", strings.Join(o.RBAC, ", "))
		}
		o.opts.RBAC, o.opts.Manifests, o.opts.ManifestPaths = preflight.RBACManifests, set, o.RBAC
	}
	return nil
}

// Run checks the cluster and prints the report.
func (o *PreflightOptions) Run(ctx context.Context) error {
	clients, err := kube.FromFlags(o.kf, nil)
	if err != nil {
		return err
	}
	o.opts.Namespace = ptr.Deref(o.kf.Namespace, "")
	r, err := preflight.Run(ctx, clients, o.opts)
	if err != nil {
		return err
	}
	if err := printReport(o.Out, o.Output, r, func() error { return printPreflight(o.Out, r, o.color) }); err != nil {
		return err
	}
	if r.WillBreak() {
		return silent(fmt.Errorf("%w: %d things will break on upgrading to %s", outcome.ErrProblems, len(r.Findings), r.To))
	}
	return nil
}

func printPreflight(w io.Writer, r *preflight.Report, col palette) error {
	fmt.Fprintf(w, "%s DPF %s → %s in %s · %d nodes · RBAC: %s · %d API requests\n\n", col.paint(bold, "Preflight"),
		cmp.Or(r.From, "unknown"), r.To, r.Namespace, len(r.Nodes), r.RBAC, r.Requests)
	fmt.Fprintln(w, col.paint(bold, "ASSUMPTIONS"))
	for _, a := range r.Assumptions {
		fmt.Fprintf(w, "  - %s\n", a)
	}
	for _, g := range r.Gaps {
		fmt.Fprintf(w, "  - not seen: %s (%s)\n", g.What, g.Impact)
	}
	if !r.WillBreak() {
		fmt.Fprintf(w, "\n%s upgrading to %s needs nothing done first.\n", col.paint(green, "Nothing will break:"), r.To)
		return nil
	}
	fmt.Fprintf(w, "\n%s (%d)\n", col.paint(red, "WILL BREAK"), len(r.Findings))
	for _, f := range r.Findings {
		where := "every node"
		if len(f.Nodes) > 0 {
			where = "nodes " + firstFew(f.Nodes)
		}
		fmt.Fprintf(w, "  %s  %s\n    %s\n    before upgrading: %s\n", col.paint(red, f.Code), where, f.Summary, f.Before)
	}
	fmt.Fprintf(w, "\n%s\n", col.paint(bold, "BEFORE UPGRADING"))
	step := 0
	if len(r.CRDs) > 0 {
		step++
		fmt.Fprintf(w, "  %d. Apply the %s CRDs first:\n", step, r.To)
		for _, c := range r.CRDs {
			fmt.Fprintf(w, "       %s (%s)\n", c.Name, c.Reason)
		}
		fmt.Fprintf(w, "       %s\n", r.CRDs[0].Command)
	}
	for _, f := range r.Findings {
		if f.Code != preflight.CodeCRD && f.Code != preflight.CodeRBAC {
			step++
			fmt.Fprintf(w, "  %d. %s\n", step, f.Before)
		}
	}
	if len(r.Grant) > 0 {
		y, err := r.GrantYAML()
		if err != nil {
			return err
		}
		step++
		fmt.Fprintf(w, "  %d. Pre-apply this least-privilege grant (kubectl apply --server-side -f -; `dpfdoctor fix -o yaml` prints the same):\n\n", step)
		if _, err := w.Write(y); err != nil {
			return err
		}
	}
	return nil
}
