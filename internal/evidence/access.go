package evidence

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/fanout"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// probeNode stands in for a node when every real node's concrete name is
// granted by name: the review then answers for names nobody granted.
const probeNode = "dpfdoctor-probe"

// Pattern is one distinct access question: who, which call, which
// namespace, with the pods and nodes that need it. Key is its CheckKey.
type Pattern struct {
	Key       string
	Subject   access.Subject
	Call      dpf.Call
	Namespace string
	Pods      []string
	Nodes     []string
}

// access sends one SubjectAccessReview per distinct call pattern the pods
// need, for one representative node, and derives the other nodes' answers
// from the listed RBAC objects when a Role grants only some names.
func (r *run) access(ctx context.Context) error {
	pods := r.b.Pods
	for _, n := range r.b.NodesWithoutPod() {
		if p, ok := r.b.ExpectedPod(n); ok {
			pods = append(slices.Clip(pods), p)
		}
	}
	patterns := AccessPatterns(pods, r.b.Install.Version)
	if len(patterns) == 0 {
		return nil
	}
	var refused atomic.Bool
	set := r.b.RBAC.Set()
	checks, err := Answer(patterns, r.o.Concurrency, func(p Pattern) (AccessCheck, error) {
		return r.review(ctx, p, set, &refused)
	})
	if err != nil {
		return err
	}
	if refused.Load() {
		r.gap(ReviewsRefused())
	}
	r.b.Access = checks
	return nil
}

// Answer answers every pattern with ask, at most limit at a time, in two
// rounds: first the requests the script makes on its own, then those kubectl
// sends only after reading the same object (dpf.Call.AfterRead). While that
// read is denied for every node, the script never reaches the request, so
// it is not asked: its check says MethodNotReached and counts as needed.
// Checks come back in the patterns' order.
func Answer(patterns []Pattern, limit int, ask func(Pattern) (AccessCheck, error)) ([]AccessCheck, error) {
	checks := make([]AccessCheck, len(patterns))
	index := make(map[string]int, len(patterns))
	var first, then []int
	for i, p := range patterns {
		index[p.Key] = i
		if p.Call.AfterRead {
			then = append(then, i)
		} else {
			first = append(first, i)
		}
	}
	round := func(idx []int) error {
		return fanout.Each(len(idx), limit, func(j int) (err error) {
			i := idx[j]
			checks[i], err = ask(patterns[i])
			return err
		})
	}
	if err := round(first); err != nil {
		return nil, err
	}
	var reached []int
	for _, i := range then {
		p := patterns[i]
		lead, ok := index[CheckKey(p.Subject.User, p.Call.Lead(), p.Namespace)]
		if ok && deniedEverywhere(checks[lead]) {
			checks[i] = p.notReached(checks[lead])
			continue
		}
		reached = append(reached, i)
	}
	if err := round(reached); err != nil {
		return nil, err
	}
	return checks, nil
}

// deniedEverywhere reports whether a check is a known "no" that no node's
// own grant overrides.
func deniedEverywhere(c AccessCheck) bool {
	return c.Known() && !c.Allowed && !slices.ContainsFunc(c.NodeOverrides, func(o NodeOverride) bool { return o.Allowed })
}

// notReached is the check of a request the script never gets to, because
// kubectl's read before it (lead) is denied.
func (p Pattern) notReached(lead AccessCheck) AccessCheck {
	c := p.Question(nil)
	c.Method = MethodNotReached
	c.Reason = "not asked: kubectl sends it only after reading the object, and " + lead.Request.String() + " is denied"
	return c
}

// AccessPatterns groups the pods' call tables, for the cluster's version,
// into distinct access questions, in a stable order. GET /version is open
// to every client (system:public-info-viewer) and skipped: its failures are
// reachability failures, not RBAC.
func AccessPatterns(pods []Pod, version string) []Pattern {
	byKey := map[string]*Pattern{}
	var keys []string
	// Pods of one shape (ServiceAccount, namespace, script, certificate
	// mode) share their call table and keys: resolve each shape once.
	type shape struct {
		pod, sa, ns string
		script      dpf.ScriptVariant
		certPath    bool
	}
	type resolved struct {
		subject access.Subject
		ns      string
		calls   []dpf.Call
		keys    []string
	}
	shapes := map[shape]*resolved{}
	for _, p := range pods {
		args := p.Args()
		sh := shape{pod: p.Namespace, sa: p.ServiceAccountName(), ns: args.Namespace, script: p.Script(version), certPath: args.CertPath()}
		rs, ok := shapes[sh]
		if !ok {
			rs = &resolved{subject: p.Subject(), ns: cmp.Or(sh.ns, dpf.DefaultNamespace)}
			for _, c := range dpf.Calls(sh.script, sh.certPath) {
				if c.NonResourceURL != "" {
					continue
				}
				rs.calls = append(rs.calls, c)
				rs.keys = append(rs.keys, CheckKey(rs.subject.User, c, rs.ns))
			}
			shapes[sh] = rs
		}
		for i, k := range rs.keys {
			pt, ok := byKey[k]
			if !ok {
				pt = &Pattern{Key: k, Subject: rs.subject, Call: rs.calls[i], Namespace: rs.ns}
				byKey[k] = pt
				keys = append(keys, k)
			}
			if len(pt.Pods) == 0 || pt.Pods[len(pt.Pods)-1] != p.Name {
				pt.Pods = append(pt.Pods, p.Name)
				pt.Nodes = append(pt.Nodes, p.Node)
			}
		}
	}
	sort.Strings(keys)
	out := make([]Pattern, 0, len(keys))
	for _, k := range keys {
		pt := byKey[k]
		pt.Nodes = uniqueSorted(pt.Nodes)
		out = append(out, *pt)
	}
	return out
}

// Question is the access check that asks the pattern for one
// representative node: the first node no name-restricted rule of set grants
// (probeNode when they grant every node). A rule that allows that request
// allows every node.
func (p Pattern) Question(set *rbac.Set) AccessCheck {
	pat := namePattern(p.Call)
	rep := probeNode
	if len(p.Nodes) > 0 {
		rep = p.Nodes[0]
	}
	if set != nil && strings.Contains(pat, dpf.PatternNode) {
		rep = probeNode
		for _, n := range p.Nodes {
			if !set.EvaluateNamed(p.Subject, p.Call.Request(p.Namespace, n)).Allowed {
				rep = n
				break
			}
		}
	}
	return AccessCheck{Subject: p.Subject, Request: p.Call.Request(p.Namespace, rep), NamePattern: pat, Pods: p.Pods}
}

// Overrides are the nodes whose concrete name a name-restricted rule of set
// grants, for a question answered "no" for the representative node.
func (p Pattern) Overrides(set *rbac.Set) []NodeOverride {
	if set == nil || !strings.Contains(namePattern(p.Call), dpf.PatternNode) {
		return nil
	}
	var out []NodeOverride
	for _, n := range p.Nodes {
		req := p.Call.Request(p.Namespace, n)
		if d := set.EvaluateNamed(p.Subject, req); d.Allowed {
			out = append(out, NodeOverride{Node: n, Name: req.Name, Allowed: true, Source: d.By})
		}
	}
	return out
}

// review answers one pattern: from the listed RBAC objects (set) when they
// prove it allowed, else with a SubjectAccessReview.
func (r *run) review(ctx context.Context, p Pattern, set *rbac.Set, refused *atomic.Bool) (AccessCheck, error) {
	check := p.Question(set)
	// A rule bound to the subject that allows the representative request
	// allows every node: rep is a node no name-restricted rule grants.
	if r.rbacOK {
		if d := set.Evaluate(p.Subject, check.Request); d.Allowed {
			check.Allowed, check.Method, check.Reason = true, MethodRBACObjects, "allowed by "+d.By
			return check, nil
		}
	}
	if refused.Load() {
		check.Method, check.Error = MethodReview, NotAsked
		return check, nil
	}
	denied, err := Review(ctx, r.cl.Kube, &check)
	if denied {
		refused.Store(true)
	}
	if err == nil && check.Known() && !check.Allowed {
		check.NodeOverrides = p.Overrides(set)
	}
	return check, err
}

// NotAsked is the error of a check not asked because creating
// SubjectAccessReviews is forbidden.
const NotAsked = "not asked: creating SubjectAccessReviews is forbidden"

// Review asks the API server whether c.Subject may make c.Request and
// records the answer in c. refused reports that creating the review is
// forbidden. A failed review is recorded in c.Error, except when the API
// server is unreachable, refuses the credentials or ctx ends: that error is
// returned.
func Review(ctx context.Context, kc kubernetes.Interface, c *AccessCheck) (refused bool, err error) {
	c.Method = MethodReview
	res, err := kc.AuthorizationV1().SubjectAccessReviews().Create(ctx, c.Request.SubjectAccessReview(c.Subject), metav1.CreateOptions{})
	switch {
	case apierrors.IsForbidden(err):
		c.Error = "forbidden: create subjectaccessreviews.authorization.k8s.io"
		return true, nil
	case err != nil:
		classified := kube.Classify(err)
		if errors.Is(classified, kube.ErrUnreachable) || errors.Is(classified, kube.ErrUnauthenticated) || errors.Is(err, context.Canceled) {
			return false, fmt.Errorf("review %s: %w", c.Request, classified)
		}
		c.Error = err.Error()
		return false, nil
	}
	c.Allowed, c.Reason = res.Status.Allowed, res.Status.Reason
	if res.Status.EvaluationError != "" {
		c.Reason = strings.TrimSpace(c.Reason + " (evaluation error: " + res.Status.EvaluationError + ")")
	}
	return false, nil
}

// ReviewsRefused is the gap of a collection that may not create
// SubjectAccessReviews.
func ReviewsRefused() Gap {
	req := access.Request{Verb: "create", Group: authorizationv1.GroupName, Resource: "subjectaccessreviews"}
	return Gap{What: "subjectaccessreviews", Request: &req, Reason: "forbidden: " + req.String(),
		Impact: "what the pods' ServiceAccount may do is not checked; RBAC problems are found only from Forbidden lines in logs"}
}

// rbacComplete reports whether every RBAC list succeeded, so that a rule
// found there proves a request allowed.
func (r *run) rbacComplete() bool {
	return !slices.ContainsFunc([]string{"clusterrolebindings", "rolebindings", "clusterroles", "roles"}, r.b.HasGap)
}

// lastApplied is stripped from RBAC objects with managedFields.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

const rbacImpact = "per-node grants (resourceNames) are not taken into account; access comes from SubjectAccessReviews only"

func rbacList(res, namespace string) access.Request {
	return access.Request{Verb: "list", Group: rbacv1.GroupName, Resource: res, Namespace: namespace}
}

// rbacBindings lists ClusterRoleBindings and the namespace's RoleBindings.
func (r *run) rbacBindings(ctx context.Context) error {
	ns := r.o.Namespace
	return parallel(
		func() error {
			l, err := r.cl.Kube.RbacV1().ClusterRoleBindings().List(ctx, fromCache)
			if err == nil {
				r.crbs = l.Items
			}
			r.crbFailed = err != nil
			return r.optional("clusterrolebindings", rbacList("clusterrolebindings", ""), rbacImpact, err)
		},
		func() error {
			l, err := r.cl.Kube.RbacV1().RoleBindings(ns).List(ctx, fromCache)
			if err == nil {
				r.rbs = l.Items
			}
			r.rbFailed = err != nil
			return r.optional("rolebindings", rbacList("rolebindings", ns), rbacImpact, err)
		},
	)
}

// rbacRoles lists the roles the bindings of the pods' ServiceAccounts
// reference (zero to two LISTs) and keeps what is relevant to them, plus
// every object dpfdoctor manages.
func (r *run) rbacRoles(ctx context.Context) error {
	ns := r.o.Namespace
	subjects := r.subjects()
	crbs, rbs := r.crbs, r.rbs
	var (
		crs   []rbacv1.ClusterRole
		roles []rbacv1.Role
	)
	// Roles are listed only when a kept binding references one: most
	// clusters have no RoleBinding for the DMS ServiceAccount until a fix.
	needCR, needRole := r.crbFailed || r.rbFailed, r.rbFailed
	for _, b := range crbs {
		needCR = needCR || managed(b.ObjectMeta) || bindsAny(b.Subjects, "", subjects)
	}
	for _, b := range rbs {
		if managed(b.ObjectMeta) || bindsAny(b.Subjects, b.Namespace, subjects) {
			needCR = needCR || b.RoleRef.Kind == "ClusterRole"
			needRole = needRole || b.RoleRef.Kind == "Role"
		}
	}
	var fns []func() error
	if needCR {
		fns = append(fns, func() error {
			l, err := r.cl.Kube.RbacV1().ClusterRoles().List(ctx, fromCache)
			if err == nil {
				crs = l.Items
			}
			return r.optional("clusterroles", rbacList("clusterroles", ""), rbacImpact, err)
		})
	}
	if needRole {
		fns = append(fns, func() error {
			l, err := r.cl.Kube.RbacV1().Roles(ns).List(ctx, fromCache)
			if err == nil {
				roles = l.Items
			}
			return r.optional("roles", rbacList("roles", ns), rbacImpact, err)
		})
	}
	if err := parallel(fns...); err != nil {
		return err
	}
	var out RBAC
	wantCR, wantRole := map[string]bool{}, map[string]bool{}
	for _, b := range crbs {
		// Bootstrap bindings (system:discovery, ...) grant every
		// authenticated user the same; they are left out as noise.
		if managed(b.ObjectMeta) || (bindsAny(b.Subjects, "", subjects) && !strings.HasPrefix(b.Name, "system:")) {
			strip(&b.ObjectMeta)
			out.ClusterRoleBindings = append(out.ClusterRoleBindings, b)
			wantCR[b.RoleRef.Name] = true
		}
	}
	for _, b := range rbs {
		if managed(b.ObjectMeta) || bindsAny(b.Subjects, b.Namespace, subjects) {
			strip(&b.ObjectMeta)
			out.RoleBindings = append(out.RoleBindings, b)
			if b.RoleRef.Kind == "ClusterRole" {
				wantCR[b.RoleRef.Name] = true
			} else {
				wantRole[b.RoleRef.Name] = true
			}
		}
	}
	for _, c := range crs {
		if managed(c.ObjectMeta) || wantCR[c.Name] {
			strip(&c.ObjectMeta)
			out.ClusterRoles = append(out.ClusterRoles, c)
		}
	}
	for _, ro := range roles {
		if managed(ro.ObjectMeta) || wantRole[ro.Name] {
			strip(&ro.ObjectMeta)
			out.Roles = append(out.Roles, ro)
		}
	}
	sort.Slice(out.ClusterRoles, func(i, j int) bool { return out.ClusterRoles[i].Name < out.ClusterRoles[j].Name })
	sort.Slice(out.ClusterRoleBindings, func(i, j int) bool { return out.ClusterRoleBindings[i].Name < out.ClusterRoleBindings[j].Name })
	sort.Slice(out.Roles, func(i, j int) bool { return out.Roles[i].Name < out.Roles[j].Name })
	sort.Slice(out.RoleBindings, func(i, j int) bool { return out.RoleBindings[i].Name < out.RoleBindings[j].Name })
	r.mu.Lock()
	r.b.RBAC = out
	r.mu.Unlock()
	return nil
}

// subjects are the identities the pods run as.
func (r *run) subjects() []access.Subject {
	seen := map[string]bool{}
	var out []access.Subject
	for _, p := range r.b.Pods {
		s := p.Subject()
		if !seen[s.User] {
			seen[s.User] = true
			out = append(out, s)
		}
	}
	return out
}

func managed(m metav1.ObjectMeta) bool { return m.Labels[ManagedByLabel] == ManagedByValue }

func strip(m *metav1.ObjectMeta) {
	m.ManagedFields = nil
	if _, ok := m.Annotations[lastApplied]; ok {
		m.Annotations = maps.Clone(m.Annotations) // the caller's map stays as it was
		delete(m.Annotations, lastApplied)
	}
}

// bindsAny reports whether a binding in namespace ("" for a
// ClusterRoleBinding) applies to one of who.
func bindsAny(subjects []rbacv1.Subject, namespace string, who []access.Subject) bool {
	return slices.ContainsFunc(who, func(w access.Subject) bool { return rbac.AppliesTo(w, subjects, namespace) })
}

// ManagedRBAC is the RBAC section for dpfdoctor's own Roles and
// RoleBindings held elsewhere (the guard's cache), stripped as the
// collector keeps them.
func ManagedRBAC(roles []rbacv1.Role, bindings []rbacv1.RoleBinding) RBAC {
	var out RBAC
	for _, o := range roles {
		strip(&o.ObjectMeta)
		out.Roles = append(out.Roles, o)
	}
	for _, o := range bindings {
		strip(&o.ObjectMeta)
		out.RoleBindings = append(out.RoleBindings, o)
	}
	return out
}

// NodesWithoutPod lists the bundle's Nodes (those labelled
// dpf.DPUNodeLabel) that have no DMS pod (by node, or by dpf.PodName) and
// no DPUNode (by name or status.kubeNodeRef), sorted.
func (b *Bundle) NodesWithoutPod() []string {
	has := b.claimedNodes()
	var out []string
	for _, n := range b.Nodes {
		if !has[n.Name] {
			out = append(out, n.Name)
		}
	}
	return uniqueSorted(out)
}

// NodesWithOnlyDPUNode returns the names of DPU Nodes that have a DPUNode
// but no DMS (or host agent) pod, sorted.
func (b *Bundle) NodesWithOnlyDPUNode() []string {
	pods := map[string]bool{}
	for _, p := range b.Pods {
		pods[p.Node] = true
		if n, ok := dpf.NodeFromPodName(p.Name); ok {
			pods[n] = true
		}
	}
	dpuNodes := map[string]bool{}
	for _, d := range b.DPUNodes {
		dpuNodes[d.Name] = true
		dpuNodes[d.Fields["status.kubeNodeRef"]] = true
	}
	var out []string
	for _, n := range b.Nodes {
		if dpuNodes[n.Name] && !pods[n.Name] {
			out = append(out, n.Name)
		}
	}
	return uniqueSorted(out)
}

// claimedNodes are the node names a DMS pod (by node, or by dpf.PodName) or
// a DPUNode (by name or status.kubeNodeRef) carries.
func (b *Bundle) claimedNodes() map[string]bool {
	has := map[string]bool{}
	for _, p := range b.Pods {
		has[p.Node] = true
		if n, ok := dpf.NodeFromPodName(p.Name); ok {
			has[n] = true
		}
	}
	for _, d := range b.DPUNodes {
		has[d.Name] = true
		has[d.Fields["status.kubeNodeRef"]] = true
	}
	return has
}

// ErrUnknownNode: a --node names nothing DPF knows.
var ErrUnknownNode = errors.New("names no DPU node, DMS pod or DPUNode")

// CheckNodes fails, wrapping ErrUnknownNode, when one of names is carried by
// no DPU node, DMS pod or DPUNode in the bundle: a mistyped --node would
// otherwise read as a namespace without DMS pods. With the Node list refused
// (a gap), a DPU node whose pod is gone cannot be told from a typo, so it
// accepts every name.
func (b *Bundle) CheckNodes(names []string) error {
	if len(names) == 0 || b.HasGap("nodes") {
		return nil
	}
	known := b.claimedNodes()
	for _, n := range b.Nodes {
		known[n.Name] = true
	}
	var unknown []string
	for _, n := range uniqueSorted(names) {
		if !known[n] {
			unknown = append(unknown, strconv.Quote(n))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	return fmt.Errorf("--node %s %w in %s (DPU nodes carry the label %s); list them: kubectl get nodes -l %s",
		strings.Join(unknown, ", "), ErrUnknownNode, b.Install.Namespace, dpf.DPUNodeLabel, dpf.DPUNodeLabel)
}

// ExpectedPod is the pod the operator will create on a DPU node without one
// (NodesWithoutPod), as far as access is concerned: one template makes
// every DMS pod, so a remaining pod's shape (image, arguments,
// ServiceAccount) under the node's name; with none left, the release's own
// (internal/dpf). A DPUDevice carrying spec.serialNumber was written by a
// v25.7-era dmsinit.sh (C–F, docs/versions.md): on a release whose own
// script is B, the hostdriver image is newer than the operator, and the pod
// will run that script. false on v25.1 (pods per DPU) or an unknown version.
func (b *Bundle) ExpectedPod(node string) (Pod, bool) {
	r, err := dpf.Lookup(b.Install.Version)
	if err != nil || r.PodPerDPU {
		return Pod{}, false
	}
	name := dpf.PodName(node)
	for _, p := range b.Pods {
		if _, ok := p.Work(); ok && !p.Deleting {
			p.Name, p.Node = name, node
			return p, true
		}
	}
	p := Pod{Name: name, Namespace: cmp.Or(b.Install.Namespace, dpf.DefaultNamespace), Node: node, Component: r.Component,
		ServiceAccount: r.ServiceAccount, Labels: map[string]string{dpf.VersionLabel: r.Version}}
	if r.Script == dpf.ScriptHostAgent {
		p.Containers = []Container{{Name: dpf.ContainerHostAgent}}
		return p, true
	}
	if r.Script == dpf.ScriptB && slices.ContainsFunc(b.DPUDevices, func(d Object) bool { return d.Fields["spec.serialNumber"] != "" }) {
		p.Labels[dpf.VersionLabel] = "v25.7.0" // the v25.7-era script (dpf.ScriptForImageTag)
	}
	p.InitContainers = []Container{{Name: dpf.ContainerDMSInit, Args: dpf.OperatorArgs(node, "", "")}}
	return p, true
}
