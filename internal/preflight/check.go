package preflight

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/diagnose"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
)

// Stable finding codes (docs/preflight.md). Never reuse a retired one.
const (
	CodeCRD         = "PRE-CRD-001"
	CodeRBAC        = "PRE-RBAC-001"
	CodeIssuer      = "PRE-CERT-001"
	CodeCertificate = "PRE-CERT-002"
	CodeAPIServer   = "PRE-API-001"
	CodePaused      = "PRE-PAUSED-001"
)

// Report is what preflight found. Its JSON form is versioned by
// SchemaVersion.
type Report struct {
	SchemaVersion string `json:"schemaVersion"`
	// From is the cluster's DPF version now, To the target.
	From      string `json:"from,omitempty"`
	To        string `json:"to"`
	Namespace string `json:"namespace"`
	// ServiceAccount the target's pods run as; Component is what runs the
	// calls (dms-init or the host agent).
	ServiceAccount string `json:"serviceAccount,omitempty"`
	Component      string `json:"component"`
	// RBAC is where the RBAC after the upgrade comes from (--rbac).
	RBAC        string   `json:"rbac"`
	Assumptions []string `json:"assumptions"`
	// Nodes are the nodes checked: those with a DMS pod or a DPU label.
	Nodes    []string  `json:"nodes"`
	Findings []Finding `json:"findings,omitempty"`
	// CRDs are the CRDs to apply before upgrading.
	CRDs []CRD `json:"crds,omitempty"`
	// Grant is the least-privilege RBAC to pre-apply: the objects
	// `dpfdoctor fix -o yaml` prints for the same missing permissions.
	Grant []*unstructured.Unstructured `json:"grant,omitempty"`
	// Access holds the answer to every call of the target's table.
	Access []evidence.AccessCheck `json:"access,omitempty"`
	// Gaps are what evidence could not read.
	Gaps []evidence.Gap `json:"gaps,omitempty"`
	// Reviews is the number of SubjectAccessReviews sent (--rbac current)
	// and Requests every API request preflight made.
	Reviews  int   `json:"reviews"`
	Requests int64 `json:"requests"`
}

// Finding is one thing that will break after the upgrade.
type Finding struct {
	Code    string `json:"code"`
	Summary string `json:"summary"`
	// Nodes it breaks on; empty means every node.
	Nodes []string `json:"nodes,omitempty"`
	// Missing lists the permissions to grant (PRE-RBAC-001).
	Missing []access.Request `json:"missing,omitempty"`
	// Before is what to do before upgrading.
	Before string `json:"before"`
}

// CRD is a CRD to apply before upgrading, and why.
type CRD struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
	// Command applies the target release's CRDs from its Helm chart.
	Command string `json:"command"`
}

// WillBreak reports whether anything will break.
func (r *Report) WillBreak() bool { return len(r.Findings) > 0 }

// GrantYAML renders Grant as `dpfdoctor fix -o yaml` does.
func (r *Report) GrantYAML() ([]byte, error) {
	p := plan.Plan{}
	for _, o := range r.Grant {
		p.Changes = append(p.Changes, plan.Change{Object: o})
	}
	return p.RBACYAML()
}

// Input is what Check decides on.
type Input struct {
	Bundle *evidence.Bundle
	Target dpf.Release
	// RBAC is the --rbac source; ManifestPaths the files for RBACManifests.
	RBAC          string
	ManifestPaths []string
	// Access answers Patterns(Bundle, Target) under that source.
	Access []evidence.AccessCheck
}

// Check decides what will break. It is pure.
func Check(in Input) (*Report, error) {
	b, t := in.Bundle, in.Target
	r := &Report{SchemaVersion: SchemaVersion, From: b.Install.Version, To: t.Version, Namespace: b.Install.Namespace,
		ServiceAccount: t.ServiceAccount, Component: component(t), RBAC: cmp.Or(in.RBAC, RBACRelease),
		Nodes: Nodes(b), Access: in.Access, Gaps: b.Gaps}
	for _, c := range in.Access {
		if c.Method == evidence.MethodReview {
			r.Reviews++
		}
	}
	r.Assumptions = assumptions(b, t, r, in.ManifestPaths)
	r.crd(b, t)
	missing := r.rbac(in)
	r.certificates(b, t)
	r.overrides(b, t)
	if len(missing) > 0 {
		grant, err := Grant(b, t, missing)
		if err != nil {
			return nil, err
		}
		r.Grant = grant
	}
	return r, nil
}

func component(t dpf.Release) string {
	switch t.Script {
	case dpf.ScriptHostAgent:
		return dpf.ContainerHostAgent
	case dpf.ScriptNone:
		return "none"
	}
	return dpf.ContainerDMSInit
}

// Nodes are the nodes with a DMS pod or a DPU label, sorted.
func Nodes(b *evidence.Bundle) []string {
	out := []string{} // never nil: -o json prints "nodes": []
	for _, p := range b.Pods {
		out = append(out, p.Node)
	}
	for _, n := range b.Nodes {
		out = append(out, n.Name)
	}
	slices.Sort(out)
	return slices.DeleteFunc(slices.Compact(out), func(s string) bool { return s == "" })
}

func assumptions(b *evidence.Bundle, t dpf.Release, r *Report, manifests []string) []string {
	var out []string
	shape := fmt.Sprintf("%s pods: init containers %s, containers %s", t.Version,
		cmp.Or(strings.Join(t.InitContainers, ", "), "none"), cmp.Or(strings.Join(t.Containers, ", "), "none"))
	if t.ServiceAccount != "" {
		shape += fmt.Sprintf(", ServiceAccount %s; %s makes %d API calls (dmsinit.sh %s, Kubernetes mode: --external-certificate TODO, so no Secret read and no Certificate write)",
			t.ServiceAccount, r.Component, len(dpf.Calls(t.Script, false)), t.Script)
	}
	out = append(out, shape+".")
	switch r.RBAC {
	case RBACCurrent:
		out = append(out, fmt.Sprintf("RBAC stays as it is now (pinned by GitOps or by hand): answered by %d SubjectAccessReviews as %s.",
			r.Reviews, access.ServiceAccount(b.Install.Namespace, t.ServiceAccount).User))
	case RBACManifests:
		out = append(out, fmt.Sprintf("RBAC after the upgrade is the manifests in %s (namespace %s rewritten to %s), plus the RBAC objects outside the operator's inventory that exist now; evaluated locally.",
			strings.Join(manifests, ", "), dpf.PlaceholderNamespace, b.Install.Namespace))
	default:
		out = append(out, fmt.Sprintf("RBAC: the operator re-applies its own %s inventory (ClusterRole %s); RBAC objects outside its inventory stay; evaluated locally.",
			t.Version, cmp.Or(t.ClusterRole, "none")))
	}
	crd := "has no"
	if b.Install.DPUDeviceStatusSubresource {
		crd = "has a"
	}
	out = append(out, fmt.Sprintf("CRDs stay as they are now (helm upgrade does not upgrade CRDs): the DPUDevice CRD %s status subresource.", crd))
	out = append(out, fmt.Sprintf("The DPFOperatorConfig %s keeps its spec.overrides, and cert-manager keeps issuing from Issuer %s.",
		cmp.Or(b.Install.OperatorConfig, dpf.OperatorConfigName), dpf.Issuer))
	if cur, err := dpf.Lookup(b.Install.Version); err == nil && cur.ServiceAccount != t.ServiceAccount && t.ServiceAccount != "" {
		out = append(out, fmt.Sprintf("Pods run as %s after the upgrade instead of %s; the operator creates it.", t.ServiceAccount, cmp.Or(cur.ServiceAccount, "default")))
	}
	if b.Install.Version != "" && dpf.Compare(t.Version, b.Install.Version) <= 0 {
		out = append(out, fmt.Sprintf("%s is not newer than the cluster's %s.", t.Version, b.Install.Version))
	}
	return out
}

// crd: a target whose calls patch dpudevices/status needs a DPUDevice CRD
// with a status subresource, and the CRD stays as it is.
func (r *Report) crd(b *evidence.Bundle, t dpf.Release) {
	calls := dpf.Calls(t.Script, false)
	i := slices.IndexFunc(calls, func(c dpf.Call) bool {
		return c.Resource == "dpudevices" && c.Subresource == "status" && c.Verb == "patch"
	})
	if i < 0 || b.Install.DPUDeviceStatusSubresource {
		return
	}
	patch := calls[i]
	name := evidence.DPUDeviceCRDName()
	why := "has no status subresource"
	switch {
	case b.HasGap("customresourcedefinitions"):
		why = "could not be read, so its status subresource is unknown"
	case !b.Install.DPUDeviceCRD:
		why = "is not installed"
	}
	fails := ""
	if patch.FatalMessage != "" {
		fails = fmt.Sprintf(" and fails with %q", strings.TrimSuffix(strings.SplitN(patch.FatalMessage, ":", 2)[0], " $name"))
	}
	cmd := fmt.Sprintf("helm show crds <dpf-operator chart> --version %s | kubectl apply --server-side -f -", t.Version)
	r.Findings = append(r.Findings, Finding{Code: CodeCRD,
		Summary: fmt.Sprintf("The DPUDevice CRD %s %s: %s's %s patches dpudevices/status (%s)%s; helm upgrade does not upgrade CRDs.",
			name, why, t.Version, r.Component, patch.Func, fails),
		Before: fmt.Sprintf("apply the %s DPUDevice CRD first: %s", t.Version, cmd)})
	r.CRDs = append(r.CRDs, CRD{Name: name, Reason: "status subresource, for " + patch.Request(r.Namespace, "").GroupResource(), Command: cmd})
}

// rbac turns the denied access answers into one finding per set of
// affected nodes, and returns every missing permission.
func (r *Report) rbac(in Input) []access.Request {
	var fs []Finding
	byNodes := map[string]int{} // index into fs
	for _, c := range in.Access {
		if c.Allowed {
			continue
		}
		var nodes []string
		var missing []access.Request
		for _, n := range r.Nodes {
			if !c.AllowedFor(n) {
				nodes = append(nodes, n)
				missing = append(missing, requestFor(c, n))
			}
		}
		if len(r.Nodes) == 0 {
			missing = append(missing, c.Request)
		}
		if len(missing) == 0 {
			continue
		}
		if len(nodes) == len(r.Nodes) {
			nodes = nil // every node
		}
		k := strings.Join(nodes, ",")
		i, ok := byNodes[k]
		if !ok {
			i = len(fs)
			byNodes[k] = i
			fs = append(fs, Finding{Code: CodeRBAC, Nodes: nodes})
		}
		fs[i].Missing = append(fs[i].Missing, missing...)
	}
	subj := access.ServiceAccount(r.Namespace, r.ServiceAccount).User
	var all []access.Request
	for _, f := range fs {
		f.Missing = access.Unique(f.Missing)
		all = append(all, f.Missing...)
		var perms []string
		for _, m := range f.Missing {
			perms = append(perms, m.Verb+" "+m.GroupResource())
		}
		slices.Sort(perms)
		f.Summary = fmt.Sprintf("%s %s will be denied as %s: %s.", r.To, r.Component, subj, strings.Join(slices.Compact(perms), ", "))
		f.Before = "pre-apply the least-privilege grant below (the same objects `dpfdoctor fix -o yaml` prints); the operator leaves it alone"
		r.Findings = append(r.Findings, f)
	}
	return access.Unique(all)
}

// requestFor is a check's request for one node: its name pattern resolved
// for that node.
func requestFor(c evidence.AccessCheck, node string) access.Request {
	req := c.Request
	if c.NamePattern != "" {
		req.Name = strings.ReplaceAll(c.NamePattern, dpf.PatternNode, node)
	}
	return req
}

// certificates: a target whose pods mount the node's server Secret needs
// the Issuer, and each node's Certificate Ready.
func (r *Report) certificates(b *evidence.Bundle, t dpf.Release) {
	if !t.CertVolume {
		return
	}
	if iss, ok := b.Issuer(dpf.Issuer); !ok && !b.HasGap("issuers") {
		r.Findings = append(r.Findings, Finding{Code: CodeIssuer,
			Summary: fmt.Sprintf("Issuer %s is absent: no DMS server Certificate is issued, and a pod whose <node>-server-secret is missing cannot start (FailedMount).", dpf.Issuer),
			Before:  "make cert-manager and the operator's Issuer work (kubectl describe issuer -n " + r.Namespace + " " + dpf.Issuer + ")"})
	} else if c, notReady := iss.NotReady(); ok && notReady {
		r.Findings = append(r.Findings, Finding{Code: CodeIssuer,
			Summary: fmt.Sprintf("Issuer %s is not Ready (%s): no DMS server Certificate is issued.", dpf.Issuer, cmp.Or(c.Message, c.Reason)),
			Before:  "make the Issuer Ready (kubectl describe issuer -n " + r.Namespace + " " + dpf.Issuer + ")"})
	}
	var nodes []string
	for _, n := range r.Nodes {
		cert, ok := b.Certificate(dpf.CertificateName(n))
		if _, notReady := cert.NotReady(); ok && notReady {
			nodes = append(nodes, n)
		}
	}
	if len(nodes) > 0 {
		r.Findings = append(r.Findings, Finding{Code: CodeCertificate, Nodes: nodes,
			Summary: fmt.Sprintf("The node's Certificate <node>-dms-server-cert is not Ready: the %s pod mounts <node>-server-secret and cannot start (FailedMount).", t.Version),
			Before:  "make the Certificates Ready (kubectl describe certificate -n " + r.Namespace + " <node>-dms-server-cert)"})
	}
}

// overrides: the pods run with hostNetwork and reach the API server at the
// DPFOperatorConfig's kubernetesAPIServerVIP/Port; the operator must not be
// paused, or it applies neither the new inventory nor the new pods.
func (r *Report) overrides(b *evidence.Bundle, t dpf.Release) {
	cfg := cmp.Or(b.Install.OperatorConfig, dpf.OperatorConfigName)
	if t.Script != dpf.ScriptNone && (b.Install.APIServerVIP == "" || b.Install.APIServerPort == 0) {
		r.Findings = append(r.Findings, Finding{Code: CodeAPIServer,
			Summary: fmt.Sprintf("DPFOperatorConfig %s sets no spec.overrides.kubernetesAPIServerVIP/Port: the hostNetwork %s cannot reach the API server (\"Failed to check kubectl version\").", cfg, r.Component),
			Before:  fmt.Sprintf("set them: kubectl patch dpfoperatorconfig -n %s %s --type merge -p '{\"spec\":{\"overrides\":{\"kubernetesAPIServerVIP\":\"<VIP>\",\"kubernetesAPIServerPort\":6443}}}'", r.Namespace, cfg)})
	}
	if b.Install.Paused {
		r.Findings = append(r.Findings, Finding{Code: CodePaused,
			Summary: fmt.Sprintf("DPFOperatorConfig %s is paused (spec.overrides.paused): the operator applies neither the %s inventory nor its pods.", cfg, t.Version),
			Before:  fmt.Sprintf("unpause it: kubectl patch dpfoperatorconfig -n %s %s --type merge -p '{\"spec\":{\"overrides\":{\"paused\":false}}}'", r.Namespace, cfg)})
	}
}

// Grant is the fix plan's grant for the missing permissions, for the
// target's ServiceAccount, merged with dpfdoctor's earlier grants.
func Grant(b *evidence.Bundle, t dpf.Release, missing []access.Request) ([]*unstructured.Unstructured, error) {
	after := *b
	after.Install.Version, after.Pods = t.Version, nil
	d := &diagnose.Diagnosis{Findings: []diagnose.Finding{{Class: diagnose.ClassRBACForbidden, Code: CodeRBAC,
		Severity: diagnose.SeverityError, Fixable: true, Missing: missing, Summary: "permissions " + t.Version + " needs"}}}
	p, err := plan.Build(plan.Input{Diagnosis: d, Bundle: &after})
	if err != nil {
		return nil, fmt.Errorf("preflight grant: %w", err)
	}
	out := make([]*unstructured.Unstructured, len(p.Changes))
	for i, c := range p.Changes {
		out[i] = c.Object
	}
	return out, nil
}
