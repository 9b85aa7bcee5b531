package guard

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
)

// snapshot is one reconcile's view of the cluster, read from the informer
// cache without copying: nothing in it may be modified.
type snapshot struct {
	now    time.Time
	config *unstructured.Unstructured // nil when DPF is not installed
	pods   []*corev1.Pod              // sorted by name
	rbac   managedRBAC
}

// managedRBAC are the Roles and RoleBindings labelled managed-by=dpfdoctor
// in the DPF namespace. The guard holds no cluster-scoped write, so it
// neither reads nor writes dpfdoctor's ClusterRoles.
type managedRBAC struct {
	roles        []rbacv1.Role
	roleBindings []rbacv1.RoleBinding
}

// read lists everything from the cache: no API request.
func (r *reconciler) read(ctx context.Context) (*snapshot, error) {
	ns := r.opts.Namespace
	nocopy := client.UnsafeDisableDeepCopy
	s := &snapshot{now: time.Now()}

	configs := newOperatorConfigList()
	if err := r.cache.List(ctx, configs, client.InNamespace(ns), nocopy); err != nil {
		return nil, fmt.Errorf("read DPFOperatorConfigs from the cache: %w", err)
	}
	s.config = evidence.PickConfig(configs.Items)

	if !r.pods.synced() {
		return nil, errNotSynced
	}
	s.pods = r.pods.list()

	var (
		roles rbacv1.RoleList
		rbs   rbacv1.RoleBindingList
	)
	for _, l := range []client.ObjectList{&roles, &rbs} {
		if err := r.cache.List(ctx, l, client.InNamespace(ns), nocopy); err != nil {
			return nil, fmt.Errorf("read dpfdoctor's RBAC objects from the cache: %w", err)
		}
	}
	s.rbac = managedRBAC{roles: roles.Items, roleBindings: rbs.Items}
	return s, nil
}

// errNotSynced: the pod index has not seen the initial list yet.
var errNotSynced = errors.New("the pod index has not synced yet")

// nodes returns the cached DPU Nodes by name (a copy each, few: only
// failing pods' nodes are asked for).
func (r *reconciler) nodes(ctx context.Context, names map[string]bool) ([]corev1.Node, error) {
	var out []corev1.Node
	for name := range names {
		var n corev1.Node
		err := r.cache.Get(ctx, client.ObjectKey{Name: name}, &n)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, fmt.Errorf("read node %s from the cache: %w", name, err)
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// crashReasons are waiting reasons that mean a container failed to run.
var crashReasons = map[string]bool{
	"CrashLoopBackOff": true, "ErrImagePull": true, "ImagePullBackOff": true, "InvalidImageName": true,
	"CreateContainerConfigError": true, "CreateContainerError": true, "RunContainerError": true,
}

// crashed reports whether any container of the pod has failed: restarted,
// exited non-zero, or waits for a reason that is a failure.
func crashed(p *corev1.Pod) bool {
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, c := range list {
			switch {
			case c.RestartCount > 0:
				return true
			case c.State.Terminated != nil && c.State.Terminated.ExitCode != 0:
				return true
			case c.State.Waiting != nil && crashReasons[c.State.Waiting.Reason]:
				return true
			}
		}
	}
	return p.Status.Phase == corev1.PodFailed
}

// failing reports whether a pod counts as failing: not Ready and either
// crashed or older than grace. A pod still within its grace period returns
// when that ends, so the reconcile can come back then.
func failing(p *corev1.Pod, now time.Time, grace time.Duration) (bool, time.Time) {
	if p.DeletionTimestamp != nil || dpf.PodReady(p) {
		return false, time.Time{}
	}
	if crashed(p) {
		return true, time.Time{}
	}
	until := p.CreationTimestamp.Add(grace)
	if !now.Before(until) {
		return true, time.Time{}
	}
	return false, until
}
