package apply

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
)

// A dpfdoctor guard in repair mode puts dpfdoctor's grant back whenever it
// is deleted, a rollback's deletion included. Rollback therefore looks for
// one first and either refuses or pauses it (docs/guard.md, "Pausing").
const (
	// GuardLease is the Lease the guard's replicas compete for (its
	// default --leader-election-id).
	GuardLease = "dpfdoctor-guard"
	// GuardModeLabel on that Lease is the leader's --mode.
	GuardModeLabel = "dpfdoctor.dev/guard-mode"
	// GuardPausedAnnotation on the DPFOperatorConfig pauses the guard's
	// repairs while it is set; its value names who paused it and when.
	GuardPausedAnnotation = plan.AnnotationPrefix + "guard-paused"
	// ReasonGuardPaused is the Event by which the guard acknowledges a
	// pause; its note carries the annotation's value.
	ReasonGuardPaused = "DPFDoctorGuardPaused"
)

// ErrGuardRepairing is returned when a guard in repair mode would undo
// the change.
var ErrGuardRepairing = errors.New("a dpfdoctor guard in repair mode is running")

// Guard is what the cluster says about a running guard.
type Guard struct {
	// Repair is true when a guard that may repair runs.
	Repair bool
	// Found says how it was found (the Lease, its Deployments).
	Found []string
	// Unknown says what could not be checked.
	Unknown []string
}

// FindGuard looks for a running guard in namespace: a Lease GuardLease
// held and renewed within its duration (its GuardModeLabel says the mode;
// without it the guard counts as one that repairs), and Deployments with
// replicas whose container runs `guard --mode=repair`.
func (a *Applier) FindGuard(ctx context.Context, namespace string, now time.Time) (Guard, error) {
	var g Guard
	lease, err := a.Clients.Kube.CoordinationV1().Leases(namespace).Get(ctx, GuardLease, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case apierrors.IsForbidden(err):
		g.Unknown = append(g.Unknown, "the guard's Lease: "+err.Error())
	case err != nil:
		return g, fmt.Errorf("read Lease %s: %w", GuardLease, kube.Classify(err))
	default:
		s := lease.Spec
		if s.HolderIdentity != nil && *s.HolderIdentity != "" && s.RenewTime != nil && s.LeaseDurationSeconds != nil &&
			s.RenewTime.Add(time.Duration(*s.LeaseDurationSeconds)*time.Second).After(now) {
			mode := lease.Labels[GuardModeLabel]
			g.Repair = g.Repair || mode != "observe"
			g.Found = append(g.Found, fmt.Sprintf("Lease %s/%s held by %s (mode %s)", namespace, GuardLease, *s.HolderIdentity, cmp.Or(mode, "unknown")))
		}
	}
	deps, err := a.Clients.Kube.AppsV1().Deployments(namespace).List(ctx, metav1.ListOptions{})
	switch {
	case apierrors.IsForbidden(err):
		g.Unknown = append(g.Unknown, "Deployments: "+err.Error())
	case err != nil:
		return g, fmt.Errorf("list Deployments: %w", kube.Classify(err))
	default:
		for _, d := range deps.Items {
			if d.Spec.Replicas != nil && *d.Spec.Replicas == 0 {
				continue
			}
			for _, c := range d.Spec.Template.Spec.Containers {
				if args := append(slices.Clone(c.Command), c.Args...); slices.Contains(args, "guard") && repairArgs(args) {
					g.Repair = true
					g.Found = append(g.Found, fmt.Sprintf("Deployment %s/%s runs guard --mode=repair", namespace, d.Name))
				}
			}
		}
	}
	return g, nil
}

func repairArgs(args []string) bool {
	for i, a := range args {
		if a == "--mode=repair" || (a == "--mode" && i+1 < len(args) && args[i+1] == "repair") {
			return true
		}
	}
	return false
}

// PauseGuard sets GuardPausedAnnotation to value on every
// DPFOperatorConfig in namespace (value nil removes it, which resumes the
// guard) and returns their names. The guard reads the annotation from its
// cache, so a pause survives its restarts and leader changes.
func (a *Applier) PauseGuard(ctx context.Context, namespace string, value *string) ([]string, error) {
	g := dpf.MustGVR(dpf.GroupOperator, "DPFOperatorConfig")
	l, err := a.Clients.Dynamic.Resource(g).Namespace(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list DPFOperatorConfigs: %w", kube.Classify(err))
	}
	var names []string
	for _, c := range l.Items {
		ref := plan.ObjectRef{Group: dpf.GroupOperator, Kind: "DPFOperatorConfig", Namespace: namespace, Name: c.GetName()}
		if err := annotate(ctx, a.Clients.Dynamic, g, ref, GuardPausedAnnotation, value); err != nil {
			return names, fmt.Errorf("annotate %s: %w", ref, kube.Classify(err))
		}
		names = append(names, c.GetName())
	}
	return names, nil
}

// WaitGuardPaused polls, until timeout, for the guard's ReasonGuardPaused
// Event carrying value.
func (a *Applier) WaitGuardPaused(ctx context.Context, namespace, value string, timeout time.Duration) error {
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		evs, err := a.Clients.Kube.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: "reason=" + ReasonGuardPaused})
		if err != nil {
			return false, kube.Classify(err)
		}
		return slices.ContainsFunc(evs.Items, func(e corev1.Event) bool { return strings.Contains(e.Message, value) }), nil
	})
	if err != nil {
		return fmt.Errorf("wait for the guard's %s event: %w", ReasonGuardPaused, err)
	}
	return nil
}
