package apply

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
)

// Restarts makes a fix's restarts, which verify.Recovery decides on from
// its watches: pod deletes, each with the pod's UID as a precondition, and
// the Node annotations (plan.RestartedAtAnnotation) that bring DPF v25.4.0
// pods back, each journalled in the backup before it is set.
type Restarts struct {
	Clients *kube.Clients
	Backup  *Backup

	mu sync.Mutex
	// value is the Node annotation's value for this run, set once the
	// Nodes are journalled.
	value string
}

// NewRestarts makes the restarts of b's plan, journalled in b.
func NewRestarts(cl *kube.Clients, b *Backup) *Restarts { return &Restarts{Clients: cl, Backup: b} }

// DeletePod deletes a DMS pod if its UID is still uid (any pod when uid is
// empty). gone is true when there was nothing to delete: the pod is gone
// already or was replaced.
func (r *Restarts) DeletePod(ctx context.Context, name string, uid types.UID) (gone bool, err error) {
	opts := metav1.DeleteOptions{}
	if uid != "" {
		opts.Preconditions = &metav1.Preconditions{UID: &uid}
	}
	err = r.Clients.Kube.CoreV1().Pods(r.Backup.plan.Namespace).Delete(ctx, name, opts)
	switch {
	case err == nil:
		return false, nil
	case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		return true, nil
	}
	return false, fmt.Errorf("delete pod %s: %w", name, kube.Classify(err))
}

// JournalNodes journals, in one write, the annotation for every Node that
// may get one, with each Node's previous value, before any is set. Later
// calls change nothing.
func (r *Restarts) JournalNodes(ctx context.Context, nodes []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.value != "" || len(nodes) == 0 {
		return nil
	}
	list, err := r.Clients.Metadata.Resource(dpf.MustGVR("", "Node")).List(ctx, metav1.ListOptions{LabelSelector: dpf.DPUNodeLabel})
	if err != nil {
		return fmt.Errorf("list Nodes: %w", kube.Classify(err))
	}
	prev := map[string]*string{}
	for _, n := range list.Items {
		if v, ok := n.Annotations[plan.RestartedAtAnnotation]; ok {
			prev[n.Name] = &v
		}
	}
	value := r.Backup.now().UTC().Format(time.RFC3339Nano)
	changes := make([]plan.AnnotationChange, 0, len(nodes))
	for _, n := range slices.Sorted(slices.Values(nodes)) {
		changes = append(changes, plan.AnnotationChange{Ref: nodeRef(n), Key: plan.RestartedAtAnnotation, Value: value, Previous: prev[n]})
	}
	if err := r.Backup.record(changes...); err != nil {
		return err
	}
	r.value = value
	return nil
}

// TouchNode sets the annotation on a Node for the nth time: an event for
// the operator's NodeReconciler. A later event needs a new value to be an
// event at all, and is journalled first. A Node that is gone is no error.
func (r *Restarts) TouchNode(ctx context.Context, node string, n int) error {
	r.mu.Lock()
	value := r.value
	r.mu.Unlock()
	if value == "" {
		return errors.New("restart: the Node annotations were not journalled")
	}
	if n > 1 {
		value = fmt.Sprintf("%s-%d", value, n)
		if err := r.Backup.record(plan.AnnotationChange{Ref: nodeRef(node), Key: plan.RestartedAtAnnotation, Value: value}); err != nil {
			return err
		}
	}
	err := annotate(ctx, r.Clients.Dynamic, dpf.MustGVR("", "Node"), nodeRef(node), plan.RestartedAtAnnotation, &value)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("annotate Node %s: %w", node, kube.Classify(err))
	}
	return nil
}

func nodeRef(name string) plan.ObjectRef { return plan.ObjectRef{Kind: "Node", Name: name} }
