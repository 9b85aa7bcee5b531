package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"reflect"
	"strings"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
)

// ScriptRunner runs a real dmsinit.sh as a pod's dms-init or
// rshim-preflight container (internal/sandbox) instead of the sim's replay.
type ScriptRunner interface {
	RunScript(ctx context.Context, run ScriptRun) (ScriptResult, error)
}

// ScriptRun is one container run on one simulated host.
type ScriptRun struct {
	Node     string
	Scenario Scenario
	// Container is the pod's container; Argv its command and args.
	Container string
	Argv      []string
	// Env is the container's KUBERNETES_SERVICE_HOST/PORT: the VIP the
	// operator sets, or a closed loopback port for apiserver-unreachable.
	Env []string
	// Token is a TokenRequest token of the pod's ServiceAccount; CA the
	// API server's CA; Namespace the pod's.
	Token, Namespace string
	CA               []byte
	// APIServer is the API server's host:port on the loopback.
	APIServer string
	// NoDPU: the host has no BlueField (no-dpu-found, dms-init only);
	// RshimOccupied: the host's rshim holds the first.
	NoDPU, RshimOccupied bool
	// DPUs are the host's BlueField devices.
	DPUs []DPU
}

// BlueField PCI device IDs (vendor 0x15b3), as dmsinit.sh's discover_dpu
// looks for them.
const (
	DeviceBlueField3 = "0xa2dc"
	DeviceBlueField2 = "0xa2d6"
)

// DPU is one BlueField device of a simulated host.
type DPU struct {
	PCI      string // function 0, e.g. 0000:3b:00.0
	DeviceID string // DeviceBlueField3 or DeviceBlueField2
	Serial   string // the VPD serial number lspci -vv prints
	PF0      string // netdev of function 0, e.g. ens1f0np0
}

// hostDPUs are a node's devices, one per Options.HostDPUs entry: the
// first at PCIAddress with the node's serial number (the replay's DPU),
// the others on buses 0x4b, 0x5b, ….
func (c *Cluster) hostDPUs(node string) []DPU {
	ids := c.opts.HostDPUs
	if len(ids) == 0 {
		ids = []string{DeviceBlueField3}
	}
	out := make([]DPU, len(ids))
	for i, id := range ids {
		out[i] = DPU{PCI: fmt.Sprintf("0000:%02x:00.0", 0x3b+0x10*i), DeviceID: id, Serial: serialNumber(node), PF0: fmt.Sprintf("ens%df0np0", i+1)}
		if i > 0 {
			out[i].Serial = serialNumber(fmt.Sprintf("%s/%d", node, i))
		}
	}
	return out
}

// ScriptResult is the container's log, exit code and termination message.
// EmptyCerts: it left an empty certificate file, which the dms container
// then fails on (hypothetical-empty-certificate-files).
type ScriptResult struct {
	Lines      []string
	ExitCode   int
	Message    string
	EmptyCerts bool
}

// runScript runs the container through Options.Script.
func (k *kubelet) runScript(ctx context.Context, pod *corev1.Pod, scen Scenario, ctr corev1.Container, st *podState) containerRun {
	run := containerRun{}
	sa := pod.Spec.ServiceAccountName
	token, err := k.saToken(ctx, sa)
	if err != nil {
		run.lines, run.exitCode = []string{"sim: " + err.Error()}, 1
		return run
	}
	host, port, _ := net.SplitHostPort(k.apiAddress(pod, scen))
	res, err := k.c.opts.Script.RunScript(ctx, ScriptRun{
		Node: pod.Spec.NodeName, Scenario: scen, Container: ctr.Name, Argv: append(append([]string{}, ctr.Command...), ctr.Args...),
		Env:   []string{"KUBERNETES_SERVICE_HOST=" + host, "KUBERNETES_SERVICE_PORT=" + port},
		Token: token, Namespace: pod.Namespace, CA: k.c.Config.CAData, APIServer: net.JoinHostPort(k.c.apiHost, fmt.Sprint(k.c.apiPort)),
		// As the replay does, rshim-preflight finds the DPU on a
		// no-dpu-found host, so the failure shows in dms-init's log.
		NoDPU: scen == NoDPUFound && ctr.Name == dpf.ContainerDMSInit, RshimOccupied: scen == RshimOccupied,
		DPUs: k.c.hostDPUs(pod.Spec.NodeName),
	})
	if err != nil {
		run.lines, run.exitCode = []string{"sim: " + err.Error()}, 1
		return run
	}
	run.lines, run.exitCode, run.message = res.Lines, int32(res.ExitCode), res.Message
	if ctr.Name == dpf.ContainerDMSInit {
		st.emptyCerts = res.EmptyCerts
	}
	return run
}

// applyRBAC server-side applies the --rbac objects the way the operator
// applies its inventory: force ownership, its labels, the placeholder
// namespace (and a missing one) rewritten. It returns their inventory
// entries.
func (c *Cluster) applyRBAC(ctx context.Context, opts metav1.ApplyOptions) ([]string, error) {
	set := &rbac.Set{}
	set.Merge(c.opts.RBAC)
	set.SetDefaultNamespace(c.Namespace)
	set.RewriteNamespace(dpf.PlaceholderNamespace, c.Namespace)
	type object interface {
		metav1.Object
		runtime.Object
	}
	var objs []object
	for i := range set.ClusterRoles {
		objs = append(objs, &set.ClusterRoles[i])
	}
	for i := range set.Roles {
		objs = append(objs, &set.Roles[i])
	}
	for i := range set.ClusterRoleBindings {
		objs = append(objs, &set.ClusterRoleBindings[i])
	}
	for i := range set.RoleBindings {
		objs = append(objs, &set.RoleBindings[i])
	}
	var gknn []string
	for _, o := range objs {
		kind := reflect.TypeOf(o).Elem().Name() // Role, ClusterRole, RoleBinding, ClusterRoleBinding
		o.SetResourceVersion("")
		o.SetUID("")
		o.SetManagedFields(nil)
		o.SetCreationTimestamp(metav1.Time{})
		o.SetLabels(labels.Merge(o.GetLabels(), c.inventoryLabels()))
		o.GetObjectKind().SetGroupVersionKind(rbacv1.SchemeGroupVersion.WithKind(kind))
		data, err := json.Marshal(o)
		if err != nil {
			return nil, err
		}
		gvr := rbacv1.SchemeGroupVersion.WithResource(strings.ToLower(kind) + "s")
		if _, err := c.dyn.Resource(gvr).Namespace(o.GetNamespace()).Patch(ctx, o.GetName(), types.ApplyPatchType, data, opts.ToPatchOptions()); err != nil {
			return nil, fmt.Errorf("apply %s %s: %w", kind, o.GetName(), err)
		}
		gknn = append(gknn, kind+"."+rbacv1.GroupName+"/"+o.GetName()+"."+o.GetNamespace())
	}
	return gknn, nil
}

// ServiceAccountToken returns a TokenRequest token of a ServiceAccount,
// creating it (and its namespace) when the release has none of that name.
func (c *Cluster) ServiceAccountToken(ctx context.Context, ns, name string) (string, error) {
	if _, err := c.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	if _, err := c.kube.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	tr, err := c.kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for ServiceAccount %s/%s: %w", ns, name, err)
	}
	return tr.Status.Token, nil
}
