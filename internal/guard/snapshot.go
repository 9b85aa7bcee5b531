package guard

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
)

// snapshot is one reconcile's view of the cluster, read from the informer
// cache without copying: nothing in it may be modified.
type snapshot struct {
	now    time.Time
	config *unstructured.Unstructured // nil when DPF is not installed
	pods   []*corev1.Pod              // sorted by name
	// rbac holds the Roles and RoleBindings labelled managed-by=dpfdoctor
	// in the DPF namespace, as cached. The guard holds no cluster-scoped
	// write, so it neither reads nor writes dpfdoctor's ClusterRoles.
	rbac evidence.RBAC
}

// read lists everything from the cache: no API request.
func (r *reconciler) read(ctx context.Context) (*snapshot, error) {
	ns := r.opts.Namespace
	nocopy := client.UnsafeDisableDeepCopy
	s := &snapshot{now: time.Now()}

	configs := &unstructured.UnstructuredList{}
	configs.SetGroupVersionKind(operatorConfigGVK.GroupVersion().WithKind(operatorConfigGVK.Kind + "List"))
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
	s.rbac = evidence.RBAC{Roles: roles.Items, RoleBindings: rbs.Items}
	return s, nil
}

var errNotSynced = errors.New("the pod index has not synced yet")

// nodes returns the cached DPU Nodes of the given names, as evidence (a
// copy each, few: only failing pods' nodes are asked for).
func (r *reconciler) nodes(ctx context.Context, names []string) ([]evidence.Node, error) {
	var out []evidence.Node
	for _, name := range names {
		var n corev1.Node
		err := r.cache.Get(ctx, client.ObjectKey{Name: name}, &n)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, fmt.Errorf("read node %s from the cache: %w", name, err)
		}
		out = append(out, evidence.NodeFrom(&n))
	}
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
			if c.RestartCount > 0 || (c.State.Terminated != nil && c.State.Terminated.ExitCode != 0) ||
				(c.State.Waiting != nil && crashReasons[c.State.Waiting.Reason]) {
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
	until := p.CreationTimestamp.Add(grace)
	if crashed(p) || !now.Before(until) {
		return true, time.Time{}
	}
	return false, until
}

// perDPUPoll is how often the guard looks for v25.1's per-DPU DMS pods.
// They carry no label, so the label-selected cache never sees them.
const perDPUPoll = time.Minute

// addPerDPUPods adds v25.1's per-DPU DMS pods to s, found as the evidence
// collector finds them: one LIST of the namespace's pods (served from the
// API server's watch cache), kept when dpf.IsPerDPUPod, and trimmed as the
// cache trims. It lists only when the installed release creates pods per
// DPU, or when no release is known and the cache holds no labelled pod,
// and reports whether it did: the caller then looks again in perDPUPoll.
func (r *reconciler) addPerDPUPods(ctx context.Context, s *snapshot) (bool, error) {
	if s.config == nil {
		return false, nil
	}
	rel, err := dpf.Lookup(evidence.InstallFrom(r.opts.Namespace, s.config, s.pods).Version)
	if (err != nil && len(s.pods) > 0) || (err == nil && !rel.PodPerDPU) {
		return false, nil
	}
	list, err := r.clients.Kube.CoreV1().Pods(r.opts.Namespace).List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return false, fmt.Errorf("list per-DPU DMS pods: %w", kube.Classify(err))
	}
	for i := range list.Items {
		if dpf.IsPerDPUPod(&list.Items[i]) {
			p, _ := trimPod(&list.Items[i])
			s.pods = append(s.pods, p.(*corev1.Pod))
		}
	}
	sort.Slice(s.pods, func(i, j int) bool { return s.pods[i].Name < s.pods[j].Name })
	return true, nil
}

// tracker remembers, per pod, when the guard first saw it fail and what it
// last told about it, so that events are recorded once per new diagnosis
// and time to Ready is measured.
type tracker struct {
	firstFail map[types.UID]time.Time
	reported  map[types.UID]string // "<class>|<code>"
	// changedAt is when the guard saw dpfdoctor's RBAC change (its own
	// repair, or someone else's change); rbacState is that state.
	changedAt time.Time
	rbacState *string
}

func newTracker() *tracker {
	return &tracker{firstFail: map[types.UID]time.Time{}, reported: map[types.UID]string{}}
}

// recovery is a pod that became Ready after the guard saw it fail.
type recovery struct {
	pod   *corev1.Pod
	after time.Duration
}

// update forgets pods that are gone and returns those that recovered.
func (t *tracker) update(s *snapshot) []recovery {
	present := make(map[types.UID]bool, len(s.pods))
	var out []recovery
	for _, p := range s.pods {
		present[p.UID] = true
		if at, ok := t.firstFail[p.UID]; ok && dpf.PodReady(p) {
			out = append(out, recovery{pod: p, after: s.now.Sub(at)})
			delete(t.firstFail, p.UID)
			delete(t.reported, p.UID)
		}
	}
	maps.DeleteFunc(t.firstFail, func(uid types.UID, _ time.Time) bool { return !present[uid] })
	maps.DeleteFunc(t.reported, func(uid types.UID, _ string) bool { return !present[uid] })
	return out
}

// split separates the failing pods to diagnose from those awaiting their
// retry after a change of dpfdoctor's RBAC (such as the guard's own repair):
// a pod already diagnosed whose last run started before the change keeps
// its diagnosis until it runs again, instead of being judged on the logs of
// a run that predates the change against the RBAC that follows it. It
// notes when each pod was first seen failing.
func (t *tracker) split(fails []failingPod, rbacState string, now time.Time) (fresh, waiting []failingPod) {
	switch {
	case t.rbacState == nil:
		t.rbacState = &rbacState
	case *t.rbacState != rbacState:
		t.rbacState, t.changedAt = &rbacState, now
	}
	for _, f := range fails {
		if _, ok := t.firstFail[f.obj.UID]; !ok {
			t.firstFail[f.obj.UID] = now
		}
		// Container start times have a resolution of one second: a run
		// that started in the second of the change counts as before it.
		if !t.changedAt.IsZero() && t.reported[f.obj.UID] != "" && !lastRunStart(f.obj).After(t.changedAt) {
			waiting = append(waiting, f)
			continue
		}
		fresh = append(fresh, f)
	}
	return fresh, waiting
}

// lastRunStart is when the pod's latest container run started.
func lastRunStart(p *corev1.Pod) time.Time {
	var last time.Time
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, c := range list {
			for _, st := range []corev1.ContainerState{c.State, c.LastTerminationState} {
				var at time.Time
				switch {
				case st.Terminated != nil:
					at = st.Terminated.StartedAt.Time
				case st.Running != nil:
					at = st.Running.StartedAt.Time
				}
				if at.After(last) {
					last = at
				}
			}
		}
	}
	return last
}

func (t *tracker) class(uid types.UID) string {
	c, _, _ := strings.Cut(t.reported[uid], "|")
	return c
}

// report returns true when what is to be said about the pod differs from
// what was said last, and remembers it.
func (t *tracker) report(uid types.UID, what string) bool {
	if t.reported[uid] == what {
		return false
	}
	t.reported[uid] = what
	return true
}
