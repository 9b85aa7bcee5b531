package guard

import (
	"maps"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
)

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
	for i := range s.pods {
		p := s.pods[i]
		present[p.UID] = true
		if !dpf.PodReady(p) {
			continue
		}
		if at, ok := t.firstFail[p.UID]; ok {
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
// a run that predates the change against the RBAC that follows it.
func (t *tracker) split(fails []failingPod, rbacState string, now time.Time) (fresh, waiting []failingPod) {
	switch {
	case t.rbacState == nil:
		t.rbacState = &rbacState
	case *t.rbacState != rbacState:
		t.rbacState, t.changedAt = &rbacState, now
	}
	for _, f := range fails {
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

// class is the class last reported for a pod.
func (t *tracker) class(uid types.UID) string {
	c, _, _ := strings.Cut(t.reported[uid], "|")
	return c
}

// failing notes when each failing pod was first seen failing.
func (t *tracker) failing(fails []failingPod, now time.Time) {
	for _, f := range fails {
		if _, ok := t.firstFail[f.obj.UID]; !ok {
			t.firstFail[f.obj.UID] = now
		}
	}
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
