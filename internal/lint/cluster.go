package lint

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// FromCluster is the only part of lint that talks to a cluster: it lists
// the RBAC that applies in namespace (its Roles and RoleBindings, every
// ClusterRole and ClusterRoleBinding) and the command line of the dms-init
// container of the first pod (by name) matching podLabelSelector there.
// argv is nil when no such pod or container exists. Errors are the client's,
// wrapped; the caller maps them to exit codes.
func FromCluster(ctx context.Context, c kubernetes.Interface, namespace, podLabelSelector string) (*rbac.Set, []string, error) {
	set := &rbac.Set{}
	roles, err := c.RbacV1().Roles(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("list Roles in %s: %w", namespace, err)
	}
	set.Roles = roles.Items
	rbs, err := c.RbacV1().RoleBindings(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("list RoleBindings in %s: %w", namespace, err)
	}
	set.RoleBindings = rbs.Items
	crs, err := c.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("list ClusterRoles: %w", err)
	}
	set.ClusterRoles = crs.Items
	crbs, err := c.RbacV1().ClusterRoleBindings().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("list ClusterRoleBindings: %w", err)
	}
	set.ClusterRoleBindings = crbs.Items

	pods, err := c.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: podLabelSelector})
	if err != nil {
		return nil, nil, fmt.Errorf("list pods %q in %s: %w", podLabelSelector, namespace, err)
	}
	items := pods.Items
	sort.Slice(items, func(i, j int) bool { return items[i].Name < items[j].Name })
	for _, p := range items {
		if argv, ok := containerArgv(p.Spec, dpf.ContainerDMSInit); ok {
			return set, argv, nil
		}
	}
	return set, nil, nil
}

func containerArgv(spec corev1.PodSpec, name string) ([]string, bool) {
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		if c.Name == name {
			return slices.Concat(c.Command, c.Args), true
		}
	}
	return nil, false
}
