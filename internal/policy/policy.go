// Package policy decides whether a fix plan may be applied. It refuses
// anything a security reviewer would not sign: objects other than
// dpfdoctor's own Roles and bindings, wildcards, Secret list/watch, grants
// outside the DPF namespace, ClusterRoles for namespaced resources, bindings
// to anyone but the DMS ServiceAccount, and any object whose name belongs to
// the operator's inventory (it would be overwritten, or would overwrite).
// It is pure: the caller passes what it observed in the cluster.
package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
)

// ErrRefused is wrapped by every refusal.
var ErrRefused = errors.New("refused by policy")

// Refusal lists every reason a plan was refused.
type Refusal struct {
	Violations []string
}

func (r *Refusal) Error() string {
	return fmt.Sprintf("%v: %s", ErrRefused, strings.Join(r.Violations, "; "))
}

// Unwrap makes errors.Is(err, ErrRefused) hold.
func (r *Refusal) Unwrap() error { return ErrRefused }

// Observed is what the caller found in the cluster about the plan's targets.
type Observed struct {
	// Inventory lists the objects of the operator's applyset (from its
	// parent's applyset.kubernetes.io/inventory annotation).
	Inventory []plan.ObjectRef
	// Existing holds the labels of each target that exists; absent targets
	// are not in the map.
	Existing map[plan.ObjectRef]map[string]string
}

// Options narrow what a writer may apply.
type Options struct {
	// NamespacedOnly refuses cluster-scoped objects: for a writer that
	// holds no cluster-scoped RBAC write (the guard, least privilege), so
	// such a grant is left to `dpfdoctor fix`, run by someone who may.
	NamespacedOnly bool
}

// Check returns nil when the plan may be applied, else a *Refusal.
func Check(p *plan.Plan, o Observed) error { return CheckWith(p, o, Options{}) }

// CheckWith is Check under opts.
func CheckWith(p *plan.Plan, o Observed, opts Options) error {
	if p == nil {
		return nil
	}
	var v []string
	add := func(format string, a ...any) { v = append(v, fmt.Sprintf(format, a...)) }
	if p.Namespace == "" || p.ServiceAccount == "" {
		add("the plan names no namespace or ServiceAccount")
	}
	inventory := map[string]plan.ObjectRef{}
	for _, r := range o.Inventory {
		inventory[r.Name] = r
	}
	roles := map[plan.ObjectRef]bool{} // a change without an object adds the zero ref, which no binding names
	for _, c := range p.Changes {
		roles[c.Ref()] = true
	}
	for _, c := range p.Changes {
		if c.Object == nil {
			add("a change has no object")
			continue
		}
		ref := c.Ref()
		if opts.NamespacedOnly && ref.Namespace == "" {
			add("%s is cluster-scoped: only Roles and RoleBindings in %s are written here; run `dpfdoctor fix` for this grant", ref, p.Namespace)
		}
		for _, msg := range checkObject(p, c.Object, roles) {
			add("%s: %s", ref, msg)
		}
		if inv, ok := inventory[ref.Name]; ok {
			add("%s: the name belongs to the operator's inventory (%s); the operator would overwrite it", ref, inv)
		}
		if labels, ok := o.Existing[ref]; ok {
			if labels[dpf.ApplySetPartOfLabel] != "" {
				add("%s: the existing object is part of applyset %s", ref, labels[dpf.ApplySetPartOfLabel])
			}
			if labels[plan.ManagedByLabel] != plan.ManagedByValue {
				add("%s: an object of that name exists and is not managed by dpfdoctor", ref)
			}
		}
	}
	if len(v) > 0 {
		return &Refusal{Violations: v}
	}
	return nil
}

func checkObject(p *plan.Plan, u *unstructured.Unstructured, planned map[plan.ObjectRef]bool) []string {
	var v []string
	ref := plan.RefOf(u)
	if u.GetAPIVersion() != rbacv1.SchemeGroupVersion.String() || plan.KindOrder(ref.Kind) == len(plan.RBACKinds) {
		return []string{fmt.Sprintf("only %s of %s may be changed", strings.Join(plan.RBACKinds, ", "), rbacv1.SchemeGroupVersion)}
	}
	if !strings.HasPrefix(ref.Name, plan.NamePrefix) {
		v = append(v, fmt.Sprintf("the name must start with %q", plan.NamePrefix))
	}
	if u.GetLabels()[plan.ManagedByLabel] != plan.ManagedByValue {
		v = append(v, fmt.Sprintf("the object must be labelled %s=%s", plan.ManagedByLabel, plan.ManagedByValue))
	}
	namespaced := ref.Kind == "Role" || ref.Kind == "RoleBinding"
	switch {
	case namespaced && ref.Namespace != p.Namespace:
		v = append(v, fmt.Sprintf("namespace %q is not the DPF namespace %q", ref.Namespace, p.Namespace))
	case !namespaced && ref.Namespace != "":
		v = append(v, "a cluster-scoped object has a namespace")
	}
	obj, _ := rbac.NewObject(ref.Kind) // one of the four RBAC kinds, checked above
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, obj, true); err != nil {
		return append(v, fmt.Sprintf("malformed %s: %v", ref.Kind, err))
	}
	switch o := obj.(type) {
	case *rbacv1.Role:
		v = append(v, checkRules(o.Rules, false)...)
	case *rbacv1.ClusterRole:
		if o.AggregationRule != nil {
			v = append(v, "aggregation rules are not allowed")
		}
		v = append(v, checkRules(o.Rules, true)...)
	case *rbacv1.RoleBinding:
		v = append(v, checkBinding(p, o.RoleRef, o.Subjects, ref.Namespace, planned)...)
		if o.RoleRef.Kind == "ClusterRole" {
			v = append(v, "a RoleBinding must reference a Role")
		}
	case *rbacv1.ClusterRoleBinding:
		v = append(v, checkBinding(p, o.RoleRef, o.Subjects, "", planned)...)
		if o.RoleRef.Kind != "ClusterRole" {
			v = append(v, "a ClusterRoleBinding must reference a ClusterRole")
		}
	}
	return v
}

// RefuseRequest says why the policy would refuse a grant of r alone, ""
// when it would not: for a suggestion to leave out what fix would never
// write.
func RefuseRequest(r access.Request) string {
	rule := rbacv1.PolicyRule{Verbs: []string{r.Verb}}
	if r.NonResourceURL != "" {
		rule.NonResourceURLs = []string{r.NonResourceURL}
	} else {
		rule.APIGroups, rule.Resources = []string{r.Group}, []string{r.RBACResource()}
	}
	if r.Name != "" {
		rule.ResourceNames = []string{r.Name}
	}
	v := checkRules([]rbacv1.PolicyRule{rule}, r.Namespace == "")
	if len(v) == 0 {
		return ""
	}
	_, why, _ := strings.Cut(v[0], ": ") // "rule 1: …"
	return why
}

// forbiddenVerbs are never granted: they let the holder widen its own or
// others' rights.
var forbiddenVerbs = map[string]bool{"escalate": true, "bind": true, "impersonate": true, "deletecollection": true}

func checkRules(rules []rbacv1.PolicyRule, clusterScoped bool) []string {
	var v []string
	if len(rules) == 0 {
		v = append(v, "a role without rules")
	}
	kinds := dpf.Kinds()
	for i, r := range rules {
		at := fmt.Sprintf("rule %d", i+1)
		if len(r.NonResourceURLs) > 0 {
			v = append(v, at+": non-resource URLs are not allowed")
		}
		for _, s := range slices.Concat(r.Verbs, r.Resources, r.APIGroups, r.ResourceNames) {
			if strings.Contains(s, "*") {
				v = append(v, fmt.Sprintf("%s: wildcard %q", at, s))
			}
		}
		if len(r.Verbs) == 0 || len(r.Resources) == 0 || len(r.APIGroups) == 0 {
			v = append(v, at+": every rule needs verbs, resources and API groups")
		}
		for _, verb := range r.Verbs {
			if forbiddenVerbs[verb] {
				v = append(v, fmt.Sprintf("%s: verb %q is never granted", at, verb))
			}
		}
		for _, res := range r.Resources {
			base, _, _ := strings.Cut(res, "/")
			for _, g := range r.APIGroups {
				if g == "" && base == "secrets" {
					for _, verb := range r.Verbs {
						if verb != "get" {
							v = append(v, fmt.Sprintf("%s: secrets may only be read one by one (get), not %q", at, verb))
						}
					}
				}
				if g == rbacv1.GroupName {
					v = append(v, fmt.Sprintf("%s: RBAC resources are never granted", at))
				}
				if clusterScoped {
					k := slices.IndexFunc(kinds, func(k dpf.Kind) bool { return k.Group == g && k.Resource == base })
					switch {
					case k < 0:
						v = append(v, fmt.Sprintf("%s: %s is not known to be cluster-scoped; grant it in a Role", at, res))
					case kinds[k].Namespaced:
						v = append(v, fmt.Sprintf("%s: %s is namespaced; grant it in a Role in the DPF namespace, not a ClusterRole", at, res))
					}
				}
			}
		}
	}
	return v
}

func checkBinding(p *plan.Plan, ref rbacv1.RoleRef, subjects []rbacv1.Subject, namespace string, planned map[plan.ObjectRef]bool) []string {
	var v []string
	if ref.APIGroup != rbacv1.GroupName || !strings.HasPrefix(ref.Name, plan.NamePrefix) {
		v = append(v, fmt.Sprintf("the binding references %s %q, not a dpfdoctor role", ref.Kind, ref.Name))
	} else {
		target := plan.ObjectRef{Group: rbacv1.GroupName, Kind: ref.Kind, Name: ref.Name}
		if ref.Kind == "Role" {
			target.Namespace = namespace
		}
		if !planned[target] {
			v = append(v, fmt.Sprintf("the binding references %s, which the plan does not contain", target))
		}
	}
	if len(subjects) == 0 {
		v = append(v, "the binding has no subjects")
	}
	for _, s := range subjects {
		if s.Kind != rbacv1.ServiceAccountKind || s.Name != p.ServiceAccount || s.Namespace != p.Namespace {
			v = append(v, fmt.Sprintf("subject %s %s/%s is not the DMS ServiceAccount %s/%s", s.Kind, s.Namespace, s.Name, p.Namespace, p.ServiceAccount))
		}
	}
	return v
}
