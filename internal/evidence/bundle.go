// Package evidence collects what dpfdoctor needs to diagnose DPF's DMS and
// host-agent pods into one redacted, serialisable Bundle: pods, events, DPF
// and cert-manager objects, Nodes, Secret names (metadata only, never data),
// RBAC objects, SubjectAccessReview answers and dms-init logs. It is the only
// stage of diagnose that talks to the cluster; diagnose itself is pure over a
// Bundle, so a saved Bundle can be diagnosed offline.
package evidence

import (
	"slices"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
	rbacv1 "k8s.io/api/rbac/v1"
)

// SchemaVersion identifies the Bundle's JSON layout.
const SchemaVersion = "dpfdoctor.dev/evidence/v1alpha1"

// Bundle is everything collected for one diagnosis. It never holds Secret
// data: Secrets appear as names and metadata only, managedFields and
// last-applied annotations are stripped, and environment values other than
// the API server address are masked.
type Bundle struct {
	SchemaVersion string `json:"schemaVersion"`
	// CollectedAt is when collection started (RFC 3339); informational only.
	CollectedAt string `json:"collectedAt,omitempty"`
	// CollectedBy is the dpfdoctor build that collected it (dpfdoctor
	// version); informational only, like CollectedAt.
	CollectedBy string `json:"collectedBy,omitempty"`
	// Install describes the DPF installation.
	Install Install `json:"install"`
	// NodeFilter is the --node filter the collection used, if any.
	NodeFilter []string `json:"nodeFilter,omitempty"`

	Pods         []Pod        `json:"pods"`
	Events       []Event      `json:"events,omitempty"`
	DPUNodes     []Object     `json:"dpuNodes,omitempty"`
	DPUDevices   []Object     `json:"dpuDevices,omitempty"`
	Certificates []Object     `json:"certificates,omitempty"`
	Issuers      []Object     `json:"issuers,omitempty"`
	Nodes        []Node       `json:"nodes,omitempty"`
	Secrets      []SecretMeta `json:"secrets,omitempty"`
	// SecretsListed is false when Secret metadata could not be listed, so
	// an absent name means "unknown", not "absent".
	SecretsListed bool `json:"secretsListed"`
	RBAC          RBAC `json:"rbac"`
	// Access holds one SubjectAccessReview answer per distinct call pattern
	// the pods' dmsinit.sh needs.
	Access []AccessCheck `json:"access,omitempty"`
	// Logs holds dms-init (or host agent) logs of failing pods.
	Logs []Log `json:"logs,omitempty"`
	// LogGroups groups failing pods by failure signature and says whose
	// logs were read (see Options.LogBudget and MaxLogs).
	LogGroups []LogGroup `json:"logGroups,omitempty"`
	// Gaps lists what could not be seen, and why.
	Gaps []Gap `json:"gaps,omitempty"`
	// Requests is the number of API requests the collection made.
	Requests int64 `json:"requests"`
}

// Install is what dpfdoctor found out about the DPF installation.
type Install struct {
	Namespace string `json:"namespace"`
	// OperatorConfig is the DPFOperatorConfig's name.
	OperatorConfig string `json:"operatorConfig"`
	// Paused is spec.overrides.paused.
	Paused bool `json:"paused"`
	// APIServerVIP and APIServerPort are spec.overrides.kubernetesAPIServerVIP
	// and kubernetesAPIServerPort: what DMS pods get as KUBERNETES_SERVICE_*.
	APIServerVIP  string `json:"apiServerVIP,omitempty"`
	APIServerPort int64  `json:"apiServerPort,omitempty"`
	// Conditions of the DPFOperatorConfig.
	Conditions []Condition `json:"conditions,omitempty"`
	// Version is the cluster's DPF version and VersionSource where it came
	// from (see the VersionFrom constants).
	Version       string `json:"version,omitempty"`
	VersionSource string `json:"versionSource,omitempty"`
	// OperatorImage is the operator Deployment's image, when found.
	OperatorImage string `json:"operatorImage,omitempty"`
	// DPUDeviceCRD is true when the DPUDevice CRD was seen, and
	// DPUDeviceStatusSubresource when it has a status subresource (v25.7+).
	DPUDeviceCRD               bool `json:"dpuDeviceCRD"`
	DPUDeviceStatusSubresource bool `json:"dpuDeviceStatusSubresource"`
}

// Where Install.Version came from.
const (
	VersionFromOperatorImage = "operator-image"
	VersionFromLabel         = "version-label"
	VersionFromCRDShape      = "crd-shape"
	// VersionFromPods: the version most DMS pods run, from their
	// dpf-version label, else their image tag (see PodsVersion).
	VersionFromPods = "dms-pods"
)

// Condition is a status condition of any object.
type Condition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// Object is a DPF or cert-manager object reduced to what diagnosis reads.
type Object struct {
	Kind   string            `json:"kind"`
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	// Fields holds selected fields by path, e.g. "spec.secretName".
	Fields     map[string]string `json:"fields,omitempty"`
	Conditions []Condition       `json:"conditions,omitempty"`
}

// Condition returns the condition of type t.
func (o Object) Condition(t string) (Condition, bool) {
	return first(o.Conditions, func(c Condition) bool { return c.Type == t })
}

// Ready reports whether the object's Ready condition is True.
func (o Object) Ready() bool {
	c, ok := o.Condition("Ready")
	return ok && c.Status == "True"
}

// NotReady returns the object's Ready condition when it is set and not
// True. An object without one (its controller has not reported yet) is
// neither Ready nor NotReady.
func (o Object) NotReady() (Condition, bool) {
	c, ok := o.Condition("Ready")
	return c, ok && c.Status != "True"
}

// Node is a Kubernetes Node carrying a DPU.
type Node struct {
	Name       string            `json:"name"`
	Labels     map[string]string `json:"labels,omitempty"`
	InternalIP string            `json:"internalIP,omitempty"`
}

// SecretMeta is a Secret's metadata: never its data, type or annotations.
type SecretMeta struct {
	Name    string            `json:"name"`
	Labels  map[string]string `json:"labels,omitempty"`
	Created string            `json:"created,omitempty"`
}

// Event is a Kubernetes Event about a pod or a DPF/cert-manager object.
type Event struct {
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	Type     string `json:"type"`
	Reason   string `json:"reason"`
	Message  string `json:"message"`
	Count    int32  `json:"count,omitempty"`
	LastSeen string `json:"lastSeen,omitempty"`
}

// RBAC holds the RBAC objects relevant to the pods' ServiceAccounts: those
// binding them, the roles those bindings reference, and every object
// labelled app.kubernetes.io/managed-by=dpfdoctor. managedFields and the
// last-applied annotation are stripped.
type RBAC struct {
	ClusterRoles        []rbacv1.ClusterRole        `json:"clusterRoles,omitempty"`
	ClusterRoleBindings []rbacv1.ClusterRoleBinding `json:"clusterRoleBindings,omitempty"`
	Roles               []rbacv1.Role               `json:"roles,omitempty"`
	RoleBindings        []rbacv1.RoleBinding        `json:"roleBindings,omitempty"`
}

// Set is the section as the one RBAC evaluator's input; it shares the
// section's slices.
func (rb RBAC) Set() *rbac.Set {
	return &rbac.Set{Roles: rb.Roles, ClusterRoles: rb.ClusterRoles, RoleBindings: rb.RoleBindings, ClusterRoleBindings: rb.ClusterRoleBindings}
}

// ManagedByLabel marks RBAC objects dpfdoctor created.
const (
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "dpfdoctor"
)

// AccessCheck is one SubjectAccessReview: whether Subject may make Request,
// which stands for every node's concrete name of NamePattern.
type AccessCheck struct {
	Subject access.Subject `json:"subject"`
	// Request is the SubjectAccessReview as sent: for a per-node name
	// pattern, one representative node's concrete name.
	Request access.Request `json:"request"`
	// NamePattern is the call's name pattern ("{node}-server-secret"); empty
	// when the call names no object or a name dpfdoctor cannot know.
	NamePattern string `json:"namePattern,omitempty"`
	Allowed     bool   `json:"allowed"`
	// Method says how the answer was found: MethodRBACObjects when a rule
	// bound to the subject in the listed RBAC objects allows it (no review
	// is sent then), MethodNotReached when the script cannot get that far
	// (kubectl's read of the same object is denied: not asked, counted as
	// needed), else MethodReview.
	Method string `json:"method,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Error is set when the review itself failed; Allowed is then false
	// and means "unknown".
	Error string `json:"error,omitempty"`
	// Pods lists the pods whose call table needs this request.
	Pods []string `json:"pods,omitempty"`
	// NodeOverrides lists nodes whose answer differs from the review's
	// because a listed Role or ClusterRole grants (resourceNames) just their
	// concrete name.
	NodeOverrides []NodeOverride `json:"nodeOverrides,omitempty"`
}

// AccessCheck methods.
const (
	MethodReview      = "SubjectAccessReview"
	MethodRBACObjects = "RBACObjects"
	MethodNotReached  = "NotReached"
)

// NodeOverride is a per-node answer derived from listed RBAC objects.
type NodeOverride struct {
	Node    string `json:"node"`
	Name    string `json:"name"`
	Allowed bool   `json:"allowed"`
	Source  string `json:"source"`
}

// Known reports whether the review returned an answer.
func (c AccessCheck) Known() bool { return c.Error == "" }

// AllowedFor reports whether the subject may make the request for node.
func (c AccessCheck) AllowedFor(node string) bool {
	if o, ok := first(c.NodeOverrides, func(o NodeOverride) bool { return o.Node == node }); ok {
		return o.Allowed
	}
	return c.Allowed
}

// Log instances.
const (
	InstanceCurrent  = "current"
	InstancePrevious = "previous"
)

// Log is one container log of one pod.
type Log struct {
	Pod       string `json:"pod"`
	Container string `json:"container"`
	// Instance is InstanceCurrent or InstancePrevious.
	Instance string `json:"instance"`
	Text     string `json:"text,omitempty"`
	// Truncated is true when only the tail was fetched.
	Truncated bool `json:"truncated,omitempty"`
	// Error is set when the log could not be read.
	Error string `json:"error,omitempty"`
}

// LogGroup is a set of failing pods sharing a failure signature.
type LogGroup struct {
	ID        string   `json:"id"`
	Signature string   `json:"signature"`
	Container string   `json:"container"`
	Pods      []string `json:"pods"`
	// Fetched lists the pods whose logs were read.
	Fetched []string `json:"fetched,omitempty"`
	// Unread says why the logs of the group's other pods (those whose
	// container ran) were not read: one of the Unread constants.
	Unread string `json:"unread,omitempty"`
}

// Why a LogGroup's pods were not all read.
const (
	// UnreadSampled: more failing pods than Options.LogBudget, and the
	// sampled pods' logs of this signature agree (same dpf.LogVerdict).
	UnreadSampled = "sampled"
	// UnreadMaxLogs: Options.MaxLogs (--max-logs) pods were read in total.
	UnreadMaxLogs = "max-logs"
	// UnreadForbidden: pods/log is forbidden for the user.
	UnreadForbidden = "forbidden"
	// UnreadDisabled: no logs were asked for (--max-logs 0).
	UnreadDisabled = "disabled"
)

// Gap is something dpfdoctor could not see.
type Gap struct {
	// What names the missing evidence, e.g. "pods/log" or "secrets".
	What string `json:"what"`
	// Request is the permission that was refused, when one was.
	Request *access.Request `json:"request,omitempty"`
	Reason  string          `json:"reason"`
	// Impact says what the diagnosis does without it.
	Impact string `json:"impact,omitempty"`
}

// Pod returns the named pod.
func (b *Bundle) Pod(name string) (Pod, bool) {
	return first(b.Pods, func(p Pod) bool { return p.Name == name })
}

// Group returns the log group a pod belongs to.
func (b *Bundle) Group(pod string) (LogGroup, bool) {
	return first(b.LogGroups, func(g LogGroup) bool { return slices.Contains(g.Pods, pod) })
}

// Certificate returns the named cert-manager Certificate.
func (b *Bundle) Certificate(name string) (Object, bool) { return findObject(b.Certificates, name) }

// Issuer returns the named cert-manager Issuer.
func (b *Bundle) Issuer(name string) (Object, bool) { return findObject(b.Issuers, name) }

// DPUNode returns the named DPUNode.
func (b *Bundle) DPUNode(name string) (Object, bool) { return findObject(b.DPUNodes, name) }

func findObject(os []Object, name string) (Object, bool) {
	return first(os, func(o Object) bool { return o.Name == name })
}

// first returns the first element of xs that match accepts.
func first[T any](xs []T, match func(T) bool) (T, bool) {
	if i := slices.IndexFunc(xs, match); i >= 0 {
		return xs[i], true
	}
	var zero T
	return zero, false
}

// HasGap reports whether the evidence named what (e.g. "pods/log") is
// missing.
func (b *Bundle) HasGap(what string) bool {
	return slices.ContainsFunc(b.Gaps, func(g Gap) bool { return g.What == what })
}

// Subject is the identity the pod's kubectl calls run as.
func (p Pod) Subject() access.Subject {
	return access.ServiceAccount(p.Namespace, p.ServiceAccountName())
}

// CheckKey identifies one access pattern: who asks, and the call with its
// name pattern rather than a concrete name.
func CheckKey(subjectUser string, c dpf.Call, namespace string) string {
	return checkKey(subjectUser, c.Request(namespace, ""), namePattern(c))
}

// Key is the check's CheckKey.
func (c AccessCheck) Key() string { return checkKey(c.Subject.User, c.Request, c.NamePattern) }

func checkKey(user string, r access.Request, pattern string) string {
	return strings.Join([]string{user, r.Verb, r.Group, r.Resource, r.Subresource, r.Namespace, pattern}, "|")
}

// namePattern is the name pattern dpfdoctor can resolve per node: patterns
// naming only the node; "" for calls without a name or with parts
// ({pci}, {serial}) only the host knows.
func namePattern(c dpf.Call) string {
	if c.Name == "" || strings.Contains(strings.ReplaceAll(c.Name, dpf.PatternNode, ""), "{") {
		return ""
	}
	return c.Name
}

// Check returns the access check that answers a pod's call.
func (b *Bundle) Check(p Pod, c dpf.Call) (AccessCheck, bool) {
	k := CheckKey(p.Subject().User, c, p.ScriptNamespace())
	return first(b.Access, func(a AccessCheck) bool { return a.Key() == k })
}
