package plan

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/diagnose"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
)

// ErrScope is returned for an unknown --scope.
var ErrScope = errors.New("unknown scope")

// ErrRestart is returned for an unknown restart mode.
var ErrRestart = errors.New("unknown restart mode")

// Input is what a plan is built from.
type Input struct {
	Diagnosis *diagnose.Diagnosis
	Bundle    *evidence.Bundle
	Scope     string // ScopeNames (default) or ScopeNamespace
	// Keep are dpfdoctor's objects as it last wrote them, which the plan
	// keeps (the guard's grant): the grants merge with these roles instead
	// of the bundle's, so no name granted before is dropped, and each
	// object not rendered anew is carried over without its server-set
	// fields.
	Keep []*unstructured.Unstructured
	// Restart is RestartAuto (default), RestartDelete or RestartNone.
	Restart string
}

// Build makes the plan for a diagnosis: for the fixable findings, the
// fewest RBAC objects granting exactly the missing permissions (merged with
// what earlier dpfdoctor runs granted, so nothing is taken away); for the
// others, a skip with their next step; for the affected pods, a restart
// decision for the cluster's DPF release.
func Build(in Input) (*Plan, error) {
	in.Scope = cmp.Or(in.Scope, ScopeNames)
	if in.Scope != ScopeNames && in.Scope != ScopeNamespace {
		return nil, fmt.Errorf("%w %q (want %q or %q)", ErrScope, in.Scope, ScopeNames, ScopeNamespace)
	}
	b := in.Bundle
	if b == nil {
		b = &evidence.Bundle{}
	}
	d := in.Diagnosis
	if d == nil {
		d = diagnose.Diagnose(b)
	}
	if in.Restart = cmp.Or(in.Restart, RestartAuto); !slices.Contains([]string{RestartAuto, RestartDelete, RestartNone}, in.Restart) {
		return nil, fmt.Errorf("%w %q (want auto, delete or none)", ErrRestart, in.Restart)
	}
	release, known := lookup(b.Install.Version) // the zero Release when unknown
	p := &Plan{SchemaVersion: SchemaVersion, Namespace: cmp.Or(b.Install.Namespace, dpf.DefaultNamespace), Version: b.Install.Version,
		OperatorConfig: cmp.Or(b.Install.OperatorConfig, dpf.OperatorConfigName), Scope: in.Scope,
		OperatorClusterRole: release.ClusterRole, OperatorRules: release.Rules}

	var (
		grants    []rbac.Grant
		affected  []AffectedPod
		granted   []AffectedPod // failed on RBAC granted since: restarts only
		grantedSA string
		missing   []string
	)
	for _, f := range d.Findings {
		switch {
		case f.Class == diagnose.ClassHealthy:
			continue
		case f.Class == diagnose.ClassPodMissing && f.Fixable:
			missing = append(missing, f.Nodes...)
			if len(f.Missing) == 0 {
				p.Addresses = append(p.Addresses, Addressed{Code: f.Code, Class: string(f.Class), Summary: f.Summary})
				continue
			} // else: grant what the re-created pods will need, below
		case !f.Fixable || len(f.Missing) == 0 && f.Code != diagnose.CodeRBACGranted:
			if len(f.Pods) > 0 || len(f.SecondaryPods) > 0 || f.Severity != diagnose.SeverityInfo {
				p.Skipped = append(p.Skipped, Skipped{Code: f.Code, Class: string(f.Class), Summary: f.Summary, Pods: f.Pods, NextStep: f.NextStep})
			}
			continue
		}
		sa, err := serviceAccount(b, f)
		if err != nil {
			return nil, err
		}
		switch {
		case f.Code == diagnose.CodeRBACGranted:
			// Restarts only: it names no ServiceAccount for the grant.
			grantedSA = cmp.Or(grantedSA, sa)
		case p.ServiceAccount == "":
			p.ServiceAccount = sa
		case sa != p.ServiceAccount:
			p.Skipped = append(p.Skipped, Skipped{Code: f.Code, Class: string(f.Class), Summary: f.Summary, Pods: f.Pods,
				NextStep: fmt.Sprintf("these pods run as ServiceAccount %s, not %s: run `dpfdoctor fix --node ...` for their nodes separately", sa, p.ServiceAccount)})
			continue
		}
		p.Addresses = append(p.Addresses, Addressed{Code: f.Code, Class: string(f.Class), Summary: f.Summary, Pods: f.Pods, Missing: f.Missing})
		for _, r := range f.Missing {
			grants = append(grants, rbac.Grant{Request: r, Reason: f.Code})
		}
		for _, name := range f.Pods {
			if pod, ok := b.Pod(name); ok {
				ap := AffectedPod{Name: pod.Name, Node: pod.Node, Ready: pod.Ready, Deleting: pod.Deleting}
				if f.Code == diagnose.CodeRBACGranted {
					granted = append(granted, ap)
				} else {
					affected = append(affected, ap)
				}
			}
		}
	}
	p.ServiceAccount = cmp.Or(p.ServiceAccount, grantedSA)
	if len(grants) > 0 {
		earlier := b.RBAC
		if in.Keep != nil {
			var err error
			if earlier, err = roles(in.Keep); err != nil {
				return nil, err
			}
		}
		objs, expect, err := render(earlier, p, grants)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			u, err := toUnstructured(o)
			if err != nil {
				return nil, err
			}
			p.Changes = append(p.Changes, Change{Object: u, Answers: answers(u)})
		}
		p.Expect = expect
		p.MustStayDenied = mustStayDenied(p)
	}
	p.keep(in.Keep)
	// A pod of several findings is restarted once.
	slices.SortFunc(affected, func(a, b AffectedPod) int { return strings.Compare(a.Name, b.Name) })
	affected = slices.CompactFunc(affected, func(a, b AffectedPod) bool { return a.Name == b.Name })
	mode, why := chooseRestart(in.Restart, release, known, len(affected)+len(granted))
	p.Restart = slices.Concat(RestartActions(mode, release, known, affected, dpuNodes(b)), GrantedPodActions(mode, release, known, granted),
		MissingPodActions(mode, release, missing))
	slices.SortFunc(p.Restart, func(a, b PodAction) int { return strings.Compare(a.Pod, b.Pod) })
	if len(p.Restart) > 0 {
		p.RestartMode, p.RestartWhy = mode, why
	}
	p.ID = id(p, b)
	return p, nil
}

// lookup finds the release of a version; an empty or unknown one is the zero
// Release.
func lookup(version string) (dpf.Release, bool) {
	r, err := dpf.Lookup(version)
	return r, err == nil
}

// serviceAccount is the ServiceAccount a finding's pods run as.
func serviceAccount(b *evidence.Bundle, f diagnose.Finding) (string, error) {
	for _, name := range append(append([]string(nil), f.Pods...), f.SecondaryPods...) {
		if pod, ok := b.Pod(name); ok {
			if sa := pod.ServiceAccountName(); sa != "" {
				return sa, nil
			}
		}
	}
	if r, ok := lookup(b.Install.Version); ok && r.ServiceAccount != "" {
		return r.ServiceAccount, nil
	}
	return "", fmt.Errorf("plan: finding %s names no pod with a ServiceAccount", f.Code)
}

// keep carries over the kept objects not rendered anew, sorts the changes
// roles before bindings, and takes the ServiceAccount from the kept
// bindings when no finding named it.
func (p *Plan) keep(objs []*unstructured.Unstructured) {
	rendered := map[ObjectRef]bool{}
	for _, c := range p.Changes {
		rendered[c.Ref()] = true
	}
	objs = slices.Clone(objs)
	sort.Slice(objs, func(i, j int) bool { return RefOf(objs[i]).String() < RefOf(objs[j]).String() })
	for _, o := range objs {
		if !rendered[RefOf(o)] {
			c := Clean(o)
			p.Changes = append(p.Changes, Change{Object: c, Answers: answers(c)})
		}
	}
	sort.SliceStable(p.Changes, func(i, j int) bool {
		return KindOrder(p.Changes[i].Ref().Kind) < KindOrder(p.Changes[j].Ref().Kind)
	})
	for _, c := range p.Changes {
		if k := c.Ref().Kind; p.ServiceAccount != "" || (k != "RoleBinding" && k != "ClusterRoleBinding") {
			continue
		}
		subjects, _, _ := unstructured.NestedSlice(c.Object.Object, "subjects")
		for _, s := range subjects {
			if m, _ := s.(map[string]any); m["kind"] == rbacv1.ServiceAccountKind && m["namespace"] == p.Namespace {
				p.ServiceAccount, _ = m["name"].(string)
			}
		}
	}
}

// roles reads the Roles and ClusterRoles among objs.
func roles(objs []*unstructured.Unstructured) (evidence.RBAC, error) {
	var s rbac.Set
	for _, o := range objs {
		if k := o.GetKind(); k == "Role" || k == "ClusterRole" {
			obj, err := typed(o)
			if err == nil {
				err = s.Add(obj)
			}
			if err != nil {
				return evidence.RBAC{}, fmt.Errorf("plan: %w", err)
			}
		}
	}
	return evidence.RBAC{Roles: s.Roles, ClusterRoles: s.ClusterRoles}, nil
}

// Clean strips the fields the server sets, leaving what dpfdoctor applies.
func Clean(u *unstructured.Unstructured) *unstructured.Unstructured {
	c := u.DeepCopy()
	for _, f := range []string{"resourceVersion", "uid", "creationTimestamp", "managedFields", "generation"} {
		unstructured.RemoveNestedField(c.Object, "metadata", f)
	}
	unstructured.RemoveNestedField(c.Object, "status")
	return c
}

// render renders the grants merged with what dpfdoctor granted before under
// the same names (the roles in earlier), and returns the objects and every
// request they grant.
func render(earlier evidence.RBAC, p *Plan, grants []rbac.Grant) ([]client.Object, []access.Request, error) {
	opts := rbac.RenderOptions{
		NamePrefix: NamePrefix,
		Subject:    rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: p.ServiceAccount, Namespace: p.Namespace},
		Labels:     map[string]string{ManagedByLabel: ManagedByValue},
		Annotations: map[string]string{ReasonAnnotation: "least-privilege grant for the DPF DMS ServiceAccount written by `dpfdoctor fix`; " +
			"separate from the operator's own role so that its reconcile leaves it alone"},
		Scope: p.Scope,
	}
	first, err := rbac.Render(grants, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("plan: %w", err)
	}
	names := map[ObjectRef]bool{}
	for _, o := range first {
		u, err := toUnstructured(o)
		if err != nil {
			return nil, nil, err
		}
		names[RefOf(u)] = true
	}
	all := append(append([]rbac.Grant(nil), grants...), earlierGrants(earlier, names)...)
	objs, err := rbac.Render(all, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("plan: %w", err)
	}
	var expect []access.Request
	for _, g := range all {
		expect = append(expect, g.Request)
	}
	return objs, access.Unique(expect), nil
}

// earlierGrants turns the rules of dpfdoctor's existing roles with the
// given names back into grants, keeping the findings they answered.
func earlierGrants(rb evidence.RBAC, names map[ObjectRef]bool) []rbac.Grant {
	var out []rbac.Grant
	add := func(kind, ns string, m metav1.ObjectMeta, rules []rbacv1.PolicyRule) {
		if !names[ObjectRef{Group: rbacv1.GroupName, Kind: kind, Namespace: ns, Name: m.Name}] || m.Labels[ManagedByLabel] != ManagedByValue {
			return
		}
		reason := m.Annotations[AnswersAnnotation]
		for _, r := range rules {
			if len(r.NonResourceURLs) > 0 {
				continue
			}
			for _, verb := range r.Verbs {
				for _, g := range r.APIGroups {
					for _, res := range r.Resources {
						resource, sub, _ := strings.Cut(res, "/")
						req := access.Request{Verb: verb, Group: g, Resource: resource, Subresource: sub, Namespace: ns}
						if len(r.ResourceNames) == 0 {
							out = append(out, rbac.Grant{Request: req, Reason: reason})
						}
						for _, n := range r.ResourceNames {
							req.Name = n
							out = append(out, rbac.Grant{Request: req, Reason: reason})
						}
					}
				}
			}
		}
	}
	for _, r := range rb.Roles {
		add("Role", r.Namespace, r.ObjectMeta, r.Rules)
	}
	for _, r := range rb.ClusterRoles {
		add("ClusterRole", "", r.ObjectMeta, r.Rules)
	}
	return out
}

func toUnstructured(o client.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	if err != nil {
		return nil, fmt.Errorf("plan: convert %T: %w", o, err)
	}
	u := &unstructured.Unstructured{Object: m}
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	return u, nil
}

func answers(u *unstructured.Unstructured) []string {
	var out []string
	for _, s := range strings.Split(u.GetAnnotations()[AnswersAnnotation], ";") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// mustStayDenied are the reviews proving the grant is no wider than needed:
// no Secret listing or watching anywhere, no Secret outside the DPF
// namespace, with per-name scope not the DPF CA's own Secret, and no RBAC
// writes.
func mustStayDenied(p *Plan) []access.Request {
	ns := p.Namespace
	out := []access.Request{
		{Verb: "list", Resource: "secrets", Namespace: ns},
		{Verb: "watch", Resource: "secrets", Namespace: ns},
		{Verb: "list", Resource: "secrets"},
		{Verb: "get", Resource: "secrets", Namespace: "kube-system", Name: "dpfdoctor-canary"},
		{Verb: "create", Group: rbacv1.GroupName, Resource: "rolebindings", Namespace: ns},
	}
	if p.Scope == ScopeNames {
		out = append(out, access.Request{Verb: "get", Resource: "secrets", Namespace: ns, Name: caSecretName})
	}
	if p.OperatorClusterRole != "" {
		out = append(out, access.Request{Verb: "patch", Group: rbacv1.GroupName, Resource: "clusterroles", Name: p.OperatorClusterRole})
	}
	return access.Unique(out)
}

func dpuNodes(b *evidence.Bundle) map[string]bool {
	m := map[string]bool{}
	for _, o := range b.DPUNodes {
		m[o.Name] = true
	}
	return m
}

// id hashes the facts the plan rests on (namespace, version, the affected
// pods and their state, the missing permissions) and its decisions.
func id(p *Plan, b *evidence.Bundle) string {
	type podFact struct {
		Name, Node string
		Ready      bool
	}
	var pods []podFact
	for _, pod := range b.Pods {
		pods = append(pods, podFact{pod.Name, pod.Node, pod.Ready})
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	c := *p
	c.ID = ""
	data, _ := json.Marshal(struct {
		Plan Plan
		Pods []podFact
	}{c, pods})
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])[:16]
}

// caSecretName holds the private key of the CA that signs every DMS
// server certificate (docs/versions.md): the Secret a wider grant would leak.
const caSecretName = "dpf-provisioning-ca-secret"
