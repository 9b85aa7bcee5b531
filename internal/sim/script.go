package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
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
	// RshimOccupied: the host's rshim holds it.
	NoDPU, RshimOccupied bool
	// PCI and Serial of the host's DPU.
	PCI, Serial string
}

// ScriptResult is the container's log, exit code and termination message.
type ScriptResult struct {
	Lines    []string
	ExitCode int
	Message  string
}

// runScript runs the container through Options.Script.
func (k *kubelet) runScript(ctx context.Context, pod *corev1.Pod, scen Scenario, ctr corev1.Container) containerRun {
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
		PCI: PCIAddress, Serial: serialNumber(pod.Spec.NodeName),
	})
	if err != nil {
		run.lines, run.exitCode = []string{"sim: " + err.Error()}, 1
		return run
	}
	run.lines, run.exitCode, run.message = res.Lines, int32(res.ExitCode), res.Message
	return run
}

// placeholderNamespace is the namespace DPF's manifests are written for; the
// operator rewrites it to the DPFOperatorConfig's (docs/versions.md).
const placeholderNamespace = "dpf-provisioning"

// applyRBAC server-side applies the --rbac objects the way the operator
// applies its inventory: force ownership, its labels, the placeholder
// namespace (and a missing one) rewritten. It returns their inventory
// entries.
func (c *Cluster) applyRBAC(ctx context.Context, opts metav1.ApplyOptions) ([]string, error) {
	ns := func(n string) string {
		if n == "" || n == placeholderNamespace {
			return c.Namespace
		}
		return n
	}
	subjects := func(ss []rbacv1.Subject) {
		for i := range ss {
			if ss[i].Kind == rbacv1.ServiceAccountKind {
				ss[i].Namespace = ns(ss[i].Namespace)
			}
		}
	}
	var gknn []string
	apply := func(kind, namespace string, obj metav1.Object, send func([]byte) error) error {
		obj.SetResourceVersion("")
		obj.SetUID("")
		obj.SetManagedFields(nil)
		obj.SetCreationTimestamp(metav1.Time{})
		labels := obj.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		for k, v := range c.inventoryLabels() {
			labels[k] = v
		}
		obj.SetLabels(labels)
		o := obj.(runtime.Object)
		o.GetObjectKind().SetGroupVersionKind(rbacv1.SchemeGroupVersion.WithKind(kind))
		data, err := json.Marshal(o)
		if err != nil {
			return err
		}
		if err := send(data); err != nil {
			return fmt.Errorf("apply %s %s: %w", kind, obj.GetName(), err)
		}
		gknn = append(gknn, kind+"."+rbacv1.GroupName+"/"+obj.GetName()+"."+namespace)
		return nil
	}
	po := opts.ToPatchOptions()
	rb := c.kube.RbacV1()
	var err error
	for _, o := range c.opts.RBAC.ClusterRoles {
		err = errors.Join(err, apply("ClusterRole", "", &o, func(b []byte) error {
			_, err := rb.ClusterRoles().Patch(ctx, o.Name, types.ApplyPatchType, b, po)
			return err
		}))
	}
	for _, o := range c.opts.RBAC.ClusterRoleBindings {
		subjects(o.Subjects)
		err = errors.Join(err, apply("ClusterRoleBinding", "", &o, func(b []byte) error {
			_, err := rb.ClusterRoleBindings().Patch(ctx, o.Name, types.ApplyPatchType, b, po)
			return err
		}))
	}
	for _, o := range c.opts.RBAC.Roles {
		o.Namespace = ns(o.Namespace)
		err = errors.Join(err, apply("Role", o.Namespace, &o, func(b []byte) error {
			_, err := rb.Roles(o.Namespace).Patch(ctx, o.Name, types.ApplyPatchType, b, po)
			return err
		}))
	}
	for _, o := range c.opts.RBAC.RoleBindings {
		o.Namespace = ns(o.Namespace)
		subjects(o.Subjects)
		err = errors.Join(err, apply("RoleBinding", o.Namespace, &o, func(b []byte) error {
			_, err := rb.RoleBindings(o.Namespace).Patch(ctx, o.Name, types.ApplyPatchType, b, po)
			return err
		}))
	}
	return gknn, err
}
