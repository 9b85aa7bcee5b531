// Package plan turns diagnose's findings into a fix plan: the RBAC objects
// to server-side apply (least privilege, in the DPF namespace, never an
// object of the operator's inventory), the access reviews that must be
// allowed afterwards and those that must stay denied, the findings it will
// not touch with their next step, and what to do with each affected pod.
// It is pure: no client, no clock, no environment.
package plan

import (
	"fmt"
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
)

// SchemaVersion identifies the Plan's JSON/YAML layout.
const SchemaVersion = "dpfdoctor.dev/plan/v1alpha1"

// Names, labels and annotations dpfdoctor puts on what it writes.
const (
	FieldManager = "dpfdoctor" // the server-side apply field manager of every write
	// NamePrefix starts the name of every object dpfdoctor creates.
	NamePrefix = "dpfdoctor-"
	// ManagedByLabel=ManagedByValue marks every object dpfdoctor creates.
	ManagedByLabel    = "app.kubernetes.io/managed-by"
	ManagedByValue    = "dpfdoctor"
	AnswersAnnotation = "dpfdoctor.dev/answers" // lists the finding codes an object answers
	ReasonAnnotation  = "dpfdoctor.dev/reason"  // says in words why the object exists
	// RestartedAtAnnotation on a Node is the harmless change that makes the
	// v25.4.0 NodeReconciler re-create a deleted DMS pod.
	RestartedAtAnnotation = "dpfdoctor.dev/restarted-at"
	// ReconcileRequestedAnnotation on the DPFOperatorConfig makes the
	// operator reconcile its inventory now instead of at its next resync.
	ReconcileRequestedAnnotation = "dpfdoctor.dev/reconcile-requested-at"
	// AnnotationPrefix starts every annotation dpfdoctor sets on objects it
	// does not own; rollback only ever removes annotations with it.
	AnnotationPrefix = "dpfdoctor.dev/"
)

// Scopes of a secrets grant.
const (
	// ScopeNames grants get on each affected node's Secret by name.
	ScopeNames = "names"
	// ScopeNamespace grants get on every Secret in the DPF namespace.
	ScopeNamespace = "namespace"
)

// Plan is what `dpfdoctor fix` will do. Its JSON form is versioned by
// SchemaVersion.
type Plan struct {
	SchemaVersion  string `json:"schemaVersion"`
	ID             string `json:"id"`                       // a hash of the facts the plan rests on and of its changes
	Namespace      string `json:"namespace"`                // the DPF namespace every namespaced change lives in
	ServiceAccount string `json:"serviceAccount"`           // the DMS pods' ServiceAccount the changes bind
	Version        string `json:"version,omitempty"`        // the cluster's DPF version; it decides restart semantics
	OperatorConfig string `json:"operatorConfig,omitempty"` // the DPFOperatorConfig's name
	// OperatorClusterRole is the operator's DMS ClusterRole, which
	// verification checks is left untouched.
	OperatorClusterRole string              `json:"operatorClusterRole,omitempty"`
	OperatorRules       []rbacv1.PolicyRule `json:"operatorRules,omitempty"` // that ClusterRole's rules as the release ships them
	Scope               string              `json:"scope"`                   // ScopeNames or ScopeNamespace
	Addresses           []Addressed         `json:"addresses,omitempty"`     // lists the fixable findings the changes answer
	Changes             []Change            `json:"changes,omitempty"`       // the objects to server-side apply, roles before bindings
	// Expect are the reviews, as the ServiceAccount, that must be allowed
	// once the changes are applied.
	Expect []access.Request `json:"expect,omitempty"`
	// MustStayDenied are reviews that must stay denied: the proof that the
	// grant is no wider than needed.
	MustStayDenied []access.Request `json:"mustStayDenied,omitempty"`
	Skipped        []Skipped        `json:"skipped,omitempty"` // the findings RBAC cannot fix; fix leaves them alone
	// RestartMode is RestartDelete or RestartNone, as chosen (with
	// RestartWhy) from fix --restart.
	RestartMode string `json:"restartMode,omitempty"`
	RestartWhy  string `json:"restartWhy,omitempty"`
	// Restart says, per affected pod, how it gets back to running.
	Restart []PodAction `json:"restart,omitempty"`
}

// Addressed is a fixable finding the plan answers.
type Addressed struct {
	Code    string           `json:"code"`
	Class   string           `json:"class"`
	Summary string           `json:"summary"`
	Pods    []string         `json:"pods,omitempty"`
	Missing []access.Request `json:"missing,omitempty"`
}

// Skipped is a finding fix will not touch, with the step that would.
type Skipped struct {
	Code     string   `json:"code"`
	Class    string   `json:"class"`
	Summary  string   `json:"summary"`
	Pods     []string `json:"pods,omitempty"`
	NextStep string   `json:"nextStep"`
}

// Change is one object to server-side apply.
type Change struct {
	Object  *unstructured.Unstructured `json:"object"`
	Answers []string                   `json:"answers,omitempty"` // lists the finding codes the object answers
}

// Ref identifies the change's object.
func (c Change) Ref() ObjectRef { return RefOf(c.Object) }

// ObjectRef names one object.
type ObjectRef struct {
	Group     string `json:"group"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// RefOf returns the reference of an object.
func RefOf(u *unstructured.Unstructured) ObjectRef {
	if u == nil {
		return ObjectRef{}
	}
	gvk := u.GroupVersionKind()
	return ObjectRef{Group: gvk.Group, Kind: gvk.Kind, Namespace: u.GetNamespace(), Name: u.GetName()}
}

// String renders "Role dpf-operator-system/dpfdoctor-dms-secrets".
func (r ObjectRef) String() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return fmt.Sprintf("%s %s/%s", r.Kind, r.Namespace, r.Name)
}

// Restart actions.
const (
	// ActionDelete deletes the pod; the operator re-creates it and the new
	// pod starts without the crash-loop back-off.
	ActionDelete = "delete"
	// ActionWait leaves the pod alone: deleting it would lose it. It
	// recovers at the kubelet's next back-off retry.
	ActionWait = "wait"
	// ActionRecreate is for a pod that is gone (diagnose's PodMissing):
	// nothing to delete; with TouchNode the Node event makes the operator
	// re-create it (v25.4.0).
	ActionRecreate = "recreate"
)

// PodAction is how one affected pod gets back to running.
type PodAction struct {
	Pod    string `json:"pod"`
	Node   string `json:"node"`
	Action string `json:"action"` // ActionDelete, ActionWait or ActionRecreate
	// TouchNode is true when the Node must see an event (an annotation)
	// after the delete for the operator to re-create the pod (v25.4.0).
	TouchNode bool   `json:"touchNode,omitempty"`
	Reason    string `json:"reason"`
}

// Empty reports whether the plan changes nothing and restarts nothing.
func (p *Plan) Empty() bool { return p == nil || (len(p.Changes) == 0 && len(p.Restart) == 0) }

// RBACYAML renders the plan's objects as one multi-document YAML stream,
// ready to commit to a GitOps repository instead of applying.
func (p *Plan) RBACYAML() ([]byte, error) {
	objs := make([]client.Object, len(p.Changes))
	for i, c := range p.Changes {
		objs[i] = c.Object
	}
	return rbac.ToYAML(objs)
}

// Subject is who the plan grants to, as the API server sees it.
func (p *Plan) Subject() access.Subject { return access.ServiceAccount(p.Namespace, p.ServiceAccount) }

// RBACKinds are the only kinds a plan may contain, in apply order.
var RBACKinds = []string{"ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding"}

// KindOrder is a kind's place in RBACKinds (roles before bindings), or
// len(RBACKinds) for any other kind.
func KindOrder(kind string) int {
	if i := slices.Index(RBACKinds, kind); i >= 0 {
		return i
	}
	return len(RBACKinds)
}

// AnnotationChange is one annotation dpfdoctor sets on an object it does
// not own (a Node, the DPFOperatorConfig), with the value it had before.
type AnnotationChange struct {
	Ref      ObjectRef `json:"ref"`
	Key      string    `json:"key"`
	Value    string    `json:"value"`
	Previous *string   `json:"previous,omitempty"` // the value before, nil when the key was absent
}
