package lint

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestFromCluster(t *testing.T) {
	pod := func(name, ns string, labels map[string]string, args ...string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
			Spec: corev1.PodSpec{InitContainers: []corev1.Container{{Name: "dms-init", Command: []string{"/opt/dpf/dmsinit.sh"}, Args: args}}}}
	}
	dms := map[string]string{"provisioning.dpu.nvidia.com/component": "dms"}
	objs := []runtime.Object{
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "dpf-provisioning-dms-role"}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "dpf-provisioning-dms-rolebinding"}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: dmsNS}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere", Namespace: "other"}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "rb", Namespace: dmsNS}},
		pod("worker-2-dms", dmsNS, dms, "--kube-node-ref", "worker-2"),
		pod("worker-1-dms", dmsNS, dms, "--kube-node-ref", "worker-1"),
		pod("unlabelled", dmsNS, nil, "--kube-node-ref", "x"),
	}
	c := fake.NewSimpleClientset(objs...)
	set, argv, err := FromCluster(context.Background(), c, dmsNS, "provisioning.dpu.nvidia.com/component=dms")
	if err != nil {
		t.Fatal(err)
	}
	if len(set.ClusterRoles) != 1 || len(set.ClusterRoleBindings) != 1 || len(set.Roles) != 1 || len(set.RoleBindings) != 1 {
		t.Errorf("set = %d/%d/%d/%d objects, want 1 of each (Roles of the namespace only)",
			len(set.ClusterRoles), len(set.ClusterRoleBindings), len(set.Roles), len(set.RoleBindings))
	}
	if got := strings.Join(argv, " "); got != "/opt/dpf/dmsinit.sh --kube-node-ref worker-1" {
		t.Errorf("argv = %q, want the first pod by name", got)
	}

	_, argv, err = FromCluster(context.Background(), c, "empty", "x=y")
	if err != nil || argv != nil {
		t.Errorf("no pods: argv = %q, err = %v", argv, err)
	}

	denied := fake.NewSimpleClientset()
	denied.PrependReactor("list", "clusterroles", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "rbac.authorization.k8s.io", Resource: "clusterroles"}, "", errors.New("no"))
	})
	if _, _, err := FromCluster(context.Background(), denied, dmsNS, ""); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "list ClusterRoles") {
		t.Errorf("err = %v, want a wrapped Forbidden", err)
	}
}
