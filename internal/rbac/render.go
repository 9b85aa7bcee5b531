package rbac

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// Names dpfdoctor puts on the objects it renders.
const (
	// AnswersAnnotation lists why an object exists: the findings or script
	// calls its rules answer.
	AnswersAnnotation = "dpfdoctor.dev/answers"
	ManagedByLabel    = "app.kubernetes.io/managed-by"
	ManagedByValue    = "dpfdoctor"
	DefaultNamePrefix = "dpfdoctor-"

	// ScopeNames keeps resourceNames on every rule (the default).
	ScopeNames = "names"
	// ScopeNamespace drops resourceNames from namespaced rules, granting the
	// verbs on every object of the resource in the namespace.
	ScopeNamespace = "namespace"
)

// Grant is one request to allow, and why.
type Grant struct {
	// Request to allow. Name set → resourceNames; Namespace "" →
	// cluster-scoped (or a non-resource URL).
	Request access.Request
	// Reason is the finding or call the grant answers; it goes into the
	// AnswersAnnotation.
	Reason string
}

// RenderOptions shape the rendered objects.
type RenderOptions struct {
	NamePrefix  string            // default DefaultNamePrefix
	Subject     rbacv1.Subject    // the ServiceAccount (or User/Group) to bind
	Labels      map[string]string // ManagedByLabel=ManagedByValue is always added
	Annotations map[string]string
	Scope       string // ScopeNames (default) or ScopeNamespace
}

// ErrInvalidGrant is returned for a grant Render refuses: a wildcard, or a
// request with no verb or resource.
var ErrInvalidGrant = errors.New("invalid grant")

// Render groups grants into the fewest objects: one Role and RoleBinding per
// namespace with namespaced grants, and one ClusterRole and
// ClusterRoleBinding only if a cluster-scoped grant exists. Rules are merged
// deterministically (verbs of the same group, resource and name merged, then
// names of the same group, resource and verbs), sorted, and never use "*".
//
// Object names are <prefix><subject-name>; objects outside the subject's own
// namespace (other namespaces' Roles, and the ClusterRole) get
// "-<subject-namespace>" appended, so ServiceAccounts of the same name in
// different namespaces never share an object. The result is the same for
// the same grants on every run. Objects come as *rbacv1.Role,
// *rbacv1.RoleBinding, *rbacv1.ClusterRole and *rbacv1.ClusterRoleBinding
// with TypeMeta set: per namespace (sorted) a Role then its RoleBinding,
// then the ClusterRole and its ClusterRoleBinding.
func Render(grants []Grant, o RenderOptions) ([]client.Object, error) {
	o, err := o.complete()
	if err != nil {
		return nil, err
	}
	byNS := map[string][]Grant{}
	for _, g := range grants {
		if err := validGrant(g.Request); err != nil {
			return nil, err
		}
		byNS[g.Request.Namespace] = append(byNS[g.Request.Namespace], g)
	}
	// Cluster-wide grants ("" namespace) go last, into the ClusterRole.
	namespaces := slices.DeleteFunc(slices.Sorted(maps.Keys(byNS)), func(ns string) bool { return ns == "" })
	if len(byNS[""]) > 0 {
		namespaces = append(namespaces, "")
	}
	base := o.NamePrefix + nameSafe(o.Subject.Name)
	var objs []client.Object
	for _, ns := range namespaces {
		gs := byNS[ns]
		name := base
		if o.Subject.Namespace != "" && ns != o.Subject.Namespace {
			name += "-" + nameSafe(o.Subject.Namespace)
		}
		meta := o.meta(name, ns, gs)
		if ns == "" {
			objs = append(objs,
				&rbacv1.ClusterRole{TypeMeta: typeMeta("ClusterRole"), ObjectMeta: meta, Rules: mergeRules(gs, false)},
				&rbacv1.ClusterRoleBinding{TypeMeta: typeMeta("ClusterRoleBinding"), ObjectMeta: *meta.DeepCopy(),
					RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name}, Subjects: []rbacv1.Subject{o.Subject}})
			continue
		}
		objs = append(objs,
			&rbacv1.Role{TypeMeta: typeMeta("Role"), ObjectMeta: meta, Rules: mergeRules(gs, o.Scope == ScopeNamespace)},
			&rbacv1.RoleBinding{TypeMeta: typeMeta("RoleBinding"), ObjectMeta: *meta.DeepCopy(),
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name}, Subjects: []rbacv1.Subject{o.Subject}})
	}
	return objs, nil
}

func (o RenderOptions) complete() (RenderOptions, error) {
	o.NamePrefix = cmp.Or(o.NamePrefix, DefaultNamePrefix)
	o.Scope = cmp.Or(o.Scope, ScopeNames)
	if o.Scope != ScopeNames && o.Scope != ScopeNamespace {
		return o, fmt.Errorf("render RBAC: unknown scope %q (want %q or %q)", o.Scope, ScopeNames, ScopeNamespace)
	}
	o.Subject.Kind = cmp.Or(o.Subject.Kind, rbacv1.ServiceAccountKind)
	switch o.Subject.Kind {
	case rbacv1.ServiceAccountKind:
		o.Subject.APIGroup = ""
		if o.Subject.Namespace == "" {
			return o, errors.New("render RBAC: the ServiceAccount subject needs a namespace")
		}
	case rbacv1.UserKind, rbacv1.GroupKind:
		o.Subject.APIGroup = rbacv1.GroupName
		o.Subject.Namespace = ""
	default:
		return o, fmt.Errorf("render RBAC: unknown subject kind %q", o.Subject.Kind)
	}
	if o.Subject.Name == "" {
		return o, errors.New("render RBAC: the subject needs a name")
	}
	return o, nil
}

func validGrant(r access.Request) error {
	fields := []string{r.Verb, r.Group, r.Resource, r.Subresource, r.Namespace, r.Name, r.NonResourceURL}
	switch {
	case slices.ContainsFunc(fields, func(f string) bool { return strings.Contains(f, "*") }):
		return fmt.Errorf("%w: %s uses a wildcard", ErrInvalidGrant, r)
	case r.Verb == "":
		return fmt.Errorf("%w: %s has no verb", ErrInvalidGrant, r)
	case r.NonResourceURL != "" && r.Namespace != "":
		return fmt.Errorf("%w: non-resource URL %s cannot be namespaced", ErrInvalidGrant, r.NonResourceURL)
	case r.NonResourceURL == "" && r.Resource == "":
		return fmt.Errorf("%w: %s has no resource", ErrInvalidGrant, r)
	}
	return nil
}

func typeMeta(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: kind}
}

func (o RenderOptions) meta(name, ns string, gs []Grant) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{}}
	maps.Copy(m.Labels, o.Labels)
	m.Labels[ManagedByLabel] = ManagedByValue
	reasons := sets.New[string]()
	for _, g := range gs {
		for _, r := range strings.Split(g.Reason, ";") { // a kept object's reasons come joined
			if r = strings.TrimSpace(r); r != "" {
				reasons.Insert(r)
			}
		}
	}
	if len(o.Annotations) > 0 || len(reasons) > 0 {
		m.Annotations = map[string]string{}
		maps.Copy(m.Annotations, o.Annotations)
		if len(reasons) > 0 {
			m.Annotations[AnswersAnnotation] = strings.Join(sets.List(reasons), "; ")
		}
	}
	return m
}

// nameSafe turns a subject name into something valid in an object name.
func nameSafe(s string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' {
			b.WriteRune(c)
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}

// target is what one rule applies to, before verbs are merged.
type target struct{ group, resource, name, url string }

func mergeRules(gs []Grant, dropNames bool) []rbacv1.PolicyRule {
	verbs := map[target]sets.Set[string]{}
	for _, g := range gs {
		r := g.Request
		t := target{group: r.Group, resource: r.RBACResource(), name: r.Name}
		if r.NonResourceURL != "" {
			t = target{url: r.NonResourceURL}
		}
		if dropNames {
			t.name = ""
		}
		if verbs[t] == nil {
			verbs[t] = sets.New[string]()
		}
		verbs[t].Insert(r.Verb)
	}
	// A verb granted for every name makes the same verb for one name redundant.
	for t, vs := range verbs {
		if t.name == "" {
			continue
		}
		vs.Delete(sets.List(verbs[target{group: t.group, resource: t.resource}])...)
		if vs.Len() == 0 {
			delete(verbs, t)
		}
	}
	type ruleKey struct {
		group, resource, url, verbs string
		named                       bool
	}
	names := map[ruleKey][]string{}
	for t, vs := range verbs {
		k := ruleKey{group: t.group, resource: t.resource, url: t.url, verbs: strings.Join(sets.List(vs), ","), named: t.name != ""}
		names[k] = append(names[k], t.name)
	}
	rules := make([]rbacv1.PolicyRule, 0, len(names))
	for k, ns := range names {
		r := rbacv1.PolicyRule{Verbs: strings.Split(k.verbs, ",")}
		if k.url != "" {
			r.NonResourceURLs = []string{k.url}
		} else {
			r.APIGroups = []string{k.group}
			r.Resources = []string{k.resource}
		}
		if k.named {
			sort.Strings(ns)
			r.ResourceNames = ns
		}
		rules = append(rules, r)
	}
	sort.Slice(rules, func(i, j int) bool { return ruleSortKey(rules[i]) < ruleSortKey(rules[j]) })
	return rules
}

func ruleSortKey(r rbacv1.PolicyRule) string {
	kind := "0"
	if len(r.NonResourceURLs) > 0 {
		kind = "1"
	}
	return strings.Join([]string{kind, strings.Join(r.APIGroups, ","), strings.Join(r.Resources, ","), strings.Join(r.NonResourceURLs, ","),
		strings.Join(r.ResourceNames, ","), strings.Join(r.Verbs, ",")}, "\x00")
}

// ToYAML renders objects as one multi-document YAML stream, in order, with
// sorted keys and without empty creationTimestamps: the same bytes for the
// same objects on every run.
func ToYAML(objs []client.Object) ([]byte, error) {
	var b bytes.Buffer
	for i, o := range objs {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			return nil, fmt.Errorf("render %T as YAML: %w", o, err)
		}
		if md, ok := m["metadata"].(map[string]any); ok && md["creationTimestamp"] == nil {
			delete(md, "creationTimestamp")
		}
		y, err := yaml.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("render %T as YAML: %w", o, err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(y)
	}
	return b.Bytes(), nil
}
