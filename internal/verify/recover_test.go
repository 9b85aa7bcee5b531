package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	fcache "k8s.io/client-go/tools/cache/testing"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
)

// The recovery's state machine, driven without a cluster: fake informer
// sources stand in for the API server, a fake clock for time, and
// fakeEffects for apply.Restarts (it plays the operator on a Node event).

const ns = "dpf-operator-system"

func dmsPod(node string, uid types.UID, ready bool) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: node + "-dms", Namespace: ns, UID: uid}, Spec: corev1.PodSpec{NodeName: node},
		Status: corev1.PodStatus{Phase: corev1.PodPending}}
	if ready {
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	}
	return p
}

type fakeEffects struct {
	pods *fcache.FakeControllerSource
	// recreateAt is the Node event after which the operator re-creates a
	// node's pod, Ready (0: never).
	recreateAt map[string]int

	// graceful leaves a deleted pod terminating until the test deletes
	// it; lost fails every delete before it reaches the server.
	graceful, lost bool

	mu      sync.Mutex
	deleted []string
	journal [][]string
	touches map[string]int
}

func (f *fakeEffects) DeletePod(_ context.Context, name string, uid types.UID) (bool, error) {
	if f.lost {
		return false, context.Canceled
	}
	f.mu.Lock()
	f.deleted = append(f.deleted, name)
	f.mu.Unlock()
	p := dmsPod(strings.TrimSuffix(name, "-dms"), uid, false)
	if f.graceful {
		p.DeletionTimestamp = &metav1.Time{Time: time.Now()}
		f.pods.Modify(p)
		return false, nil
	}
	f.pods.Delete(p)
	return false, nil
}

func (f *fakeEffects) JournalNodes(_ context.Context, nodes []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.journal = append(f.journal, slices.Sorted(slices.Values(nodes)))
	return nil
}

func (f *fakeEffects) TouchNode(_ context.Context, node string, n int) error {
	f.mu.Lock()
	f.touches[node] = n
	f.mu.Unlock()
	if f.recreateAt[node] == n {
		f.pods.Add(dmsPod(node, types.UID(fmt.Sprintf("%s-new", node)), true))
	}
	return nil
}

func (f *fakeEffects) snapshot() (deleted []string, journal [][]string, touches map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	touches = map[string]int{}
	for k, v := range f.touches {
		touches[k] = v
	}
	return slices.Sorted(slices.Values(f.deleted)), append([][]string(nil), f.journal...), touches
}

type harness struct {
	r        *Recovery
	clock    *clocktesting.FakeClock
	pods     *fcache.FakeControllerSource
	dpuNodes *fcache.FakeControllerSource
	fx       *fakeEffects
}

// start runs a recovery of one pod per node, each Failing, with actions.
func start(t *testing.T, actions []plan.PodAction, dpuNodes []string, recreateAt map[string]int) *harness {
	t.Helper()
	h := &harness{clock: clocktesting.NewFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)),
		pods: fcache.NewFakeControllerSource(), dpuNodes: fcache.NewFakeControllerSource()}
	for _, a := range actions {
		if a.Action != plan.ActionRecreate { // a pod to re-create is gone
			h.pods.Add(dmsPod(a.Node, types.UID(a.Node+"-old"), false))
		}
	}
	for _, n := range dpuNodes {
		h.dpuNodes.Add(&metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: n, Namespace: ns}})
	}
	h.fx = &fakeEffects{pods: h.pods, recreateAt: recreateAt, touches: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	r, err := startRecovery(ctx, cancel, h.pods, h.dpuNodes, RecoverOptions{Namespace: ns, Actions: actions, Effects: h.fx,
		Timeout: time.Minute, Retouch: 5 * time.Second, Clock: h.clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	h.r = r
	return h
}

// run runs the recovery while stepping the clock a second at a time.
func (h *harness) run(t *testing.T) RecoverResult {
	t.Helper()
	type out struct {
		res RecoverResult
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := h.r.Run(context.Background())
		done <- out{res, err}
	}()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		select {
		case o := <-done:
			if o.err != nil {
				t.Fatal(o.err)
			}
			return o.res
		case <-time.After(10 * time.Millisecond):
			h.clock.Step(time.Second)
		}
	}
	t.Fatal("the recovery did not end")
	return RecoverResult{}
}

func touch(node string) plan.PodAction {
	return plan.PodAction{Pod: node + "-dms", Node: node, Action: plan.ActionDelete, TouchNode: true}
}

// v25.4.0: Quiesce deletes before the grant; Run journals the Node
// annotations once and then sends a Node event per deleted pod, and another
// once the operator has gone quiet without re-creating a pod.
func TestRecoveryNodeEvents(t *testing.T) {
	h := start(t, []plan.PodAction{touch("w1"), touch("w2")}, nil, map[string]int{"w1": 1, "w2": 2})
	if err := h.r.Quiesce(context.Background()); err != nil {
		t.Fatal(err)
	}
	deleted, journal, touches := h.fx.snapshot()
	if !slices.Equal(deleted, []string{"w1-dms", "w2-dms"}) || len(journal) != 0 || len(touches) != 0 {
		t.Fatalf("after Quiesce: deleted %v, journal %v, touches %v", deleted, journal, touches)
	}
	res := h.run(t)
	if res.Ready != 2 || res.TimedOut {
		t.Fatalf("result %+v", res)
	}
	want := map[string]int{"w1-dms": 1, "w2-dms": 2}
	for _, p := range res.Pods {
		if p.NodeEvents != want[p.Pod] || !p.Ready || p.Note != "" {
			t.Errorf("%s: %+v, want %d Node events", p.Pod, p, want[p.Pod])
		}
	}
	_, journal, _ = h.fx.snapshot()
	if len(journal) != 1 || !slices.Equal(journal[0], []string{"w1", "w2"}) {
		t.Errorf("journal %v, want one entry for both Nodes", journal)
	}
}

// A DPU node without its pod (v25.4.0): nothing is deleted; the pod is
// tracked by name with no old UID, its Node gets the event (again once the
// operator goes quiet), and the new pod counts when Ready.
func TestRecoveryRecreatesMissingPods(t *testing.T) {
	recreate := func(node string) plan.PodAction {
		return plan.PodAction{Pod: node + "-dms", Node: node, Action: plan.ActionRecreate, TouchNode: true}
	}
	h := start(t, []plan.PodAction{recreate("w1"), recreate("w2")}, nil, map[string]int{"w1": 1, "w2": 2})
	if err := h.r.Quiesce(context.Background()); err != nil {
		t.Fatal(err)
	}
	res := h.run(t)
	if res.Ready != 2 || res.TimedOut {
		t.Fatalf("result %+v", res)
	}
	want := map[string]int{"w1-dms": 1, "w2-dms": 2}
	for _, p := range res.Pods {
		if p.Action != plan.ActionRecreate || p.NodeEvents != want[p.Pod] || !p.Ready || p.StartedAt == "" {
			t.Errorf("%s: %+v, want %d Node events", p.Pod, p, want[p.Pod])
		}
	}
	deleted, journal, _ := h.fx.snapshot()
	if len(deleted) != 0 || len(journal) != 1 || !slices.Equal(journal[0], []string{"w1", "w2"}) {
		t.Errorf("deleted %v, journal %v", deleted, journal)
	}
}

// On v25.4.0 a pod is not deleted when its DPUNode exists, or when its
// dms-init is running (it may get through): v25.4.0 would never re-create
// it. It is waited for, and recovers on the kubelet's retry.
func TestRecoveryKeepsPodThatCouldGetThrough(t *testing.T) {
	running := dmsPod("w1", "w1-old", false)
	running.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: dpf.ContainerDMSInit,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
	for _, tc := range []struct {
		name     string
		dpuNodes []string
		w1       *corev1.Pod // w1's pod as the watch sees it before Quiesce
		note     string
	}{
		{"DPUNode exists", []string{"w1"}, nil, "DPUNode w1 exists"},
		{"dms-init running", nil, running, "dms-init was running"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, []plan.PodAction{touch("w1"), touch("w2")}, tc.dpuNodes, map[string]int{"w2": 1})
			if tc.w1 != nil {
				h.pods.Modify(tc.w1)
				h.waitSeen(t, "w1-dms", func(p *corev1.Pod) bool { return len(p.Status.InitContainerStatuses) > 0 })
			}
			if err := h.r.Quiesce(context.Background()); err != nil {
				t.Fatal(err)
			}
			if deleted, _, _ := h.fx.snapshot(); !slices.Equal(deleted, []string{"w2-dms"}) {
				t.Fatalf("deleted %v, want only w2-dms", deleted)
			}
			h.pods.Modify(dmsPod("w1", "w1-old", true))
			res := h.run(t)
			if res.Ready != 2 {
				t.Fatalf("result %+v", res)
			}
			if p := res.Pods[0]; p.Action != plan.ActionWait || p.NodeEvents != 0 || !strings.Contains(p.Note, tc.note) {
				t.Errorf("w1: %+v", p)
			}
			if _, journal, _ := h.fx.snapshot(); len(journal) != 1 || !slices.Equal(journal[0], []string{"w2"}) {
				t.Errorf("journal %v, want w2 only", journal)
			}
		})
	}
}

// waitSeen waits until the recovery's pod informer has seen ok(pod).
func (h *harness) waitSeen(t *testing.T, name string, ok func(*corev1.Pod) bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if obj, found, _ := h.r.podStore.GetByKey(ns + "/" + name); found && ok(obj.(*corev1.Pod)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the informer did not see the update of %s", name)
		}
	}
}

// v25.7: pods are deleted in Run, with no Node event; a pod that recovered
// on its own before its turn is left alone; the wait ends at the timeout.
func TestRecoveryDeleteAndTimeout(t *testing.T) {
	del := func(node string) plan.PodAction {
		return plan.PodAction{Pod: node + "-dms", Node: node, Action: plan.ActionDelete}
	}
	h := start(t, []plan.PodAction{del("w1"), del("w2")}, nil, nil)
	h.pods.Modify(dmsPod("w1", "w1-old", true))
	// Run's safety check reads the watch cache.
	h.waitSeen(t, "w1-dms", func(p *corev1.Pod) bool { return len(p.Status.Conditions) > 0 })
	res := h.run(t)
	if !res.TimedOut || res.Ready != 1 || res.Seconds < 60 {
		t.Fatalf("result %+v", res)
	}
	if deleted, journal, touches := h.fx.snapshot(); !slices.Equal(deleted, []string{"w2-dms"}) || len(journal) != 0 || len(touches) != 0 {
		t.Errorf("deleted %v, journal %v, touches %v", deleted, journal, touches)
	}
	if p := res.Pods[0]; p.Action != plan.ActionWait || !strings.Contains(p.Note, "recovered on its own") {
		t.Errorf("w1: %+v", p)
	}
	if p := res.Pods[1]; p.Ready || p.State != "Deleted" {
		t.Errorf("w2: %+v", p)
	}
}

// A fix interrupted while its deletes are in flight: Release waits until
// the terminating pods are gone before their Node events, since an event
// while a pod still exists finds it present and the pod is then lost. A
// delete that never reached the server is not waited for.
func TestRecoveryReleaseWaitsForTerminatingPods(t *testing.T) {
	h := start(t, []plan.PodAction{touch("w1"), touch("w2")}, nil, nil)
	h.fx.graceful = true
	ctx, cancel := context.WithCancel(context.Background())
	quiesced := make(chan error, 1)
	go func() { quiesced <- h.r.Quiesce(ctx) }()
	for _, pod := range []string{"w1-dms", "w2-dms"} {
		h.waitSeen(t, pod, func(p *corev1.Pod) bool { return p.DeletionTimestamp != nil })
	}
	cancel() // Ctrl-C
	if err := <-quiesced; !errors.Is(err, context.Canceled) {
		t.Fatalf("Quiesce: %v", err)
	}
	if !h.r.NeedsRelease() {
		t.Fatal("NeedsRelease is false with two deleted pods and no Node event")
	}
	released := make(chan error, 1)
	go func() { released <- h.r.Release(context.Background()) }()
	select {
	case err := <-released:
		t.Fatalf("Release returned while the pods were terminating: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if _, _, touches := h.fx.snapshot(); len(touches) != 0 {
		t.Fatalf("Node events while the pods still exist: %v", touches)
	}
	h.pods.Delete(dmsPod("w1", "w1-old", false))
	h.pods.Delete(dmsPod("w2", "w2-old", false))
	select {
	case err := <-released:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Release did not return once the pods were gone")
	}
	if _, _, touches := h.fx.snapshot(); touches["w1"] != 1 || touches["w2"] != 1 {
		t.Fatalf("touches %v, want one Node event each", touches)
	}

	// A pod that is still terminating after a minute gets no Node event,
	// and Release says so.
	stuck := start(t, []plan.PodAction{touch("w4")}, nil, nil)
	stuck.fx.graceful = true
	sctx, scancel := context.WithCancel(context.Background())
	go func() { quiesced <- stuck.r.Quiesce(sctx) }()
	stuck.waitSeen(t, "w4-dms", func(p *corev1.Pod) bool { return p.DeletionTimestamp != nil })
	scancel()
	if err := <-quiesced; !errors.Is(err, context.Canceled) {
		t.Fatalf("Quiesce: %v", err)
	}
	if err := stuck.releaseStepping(t); err == nil || !strings.Contains(err.Error(), "w4-dms") {
		t.Fatalf("Release with a pod stuck terminating: %v", err)
	}
	if _, _, touches := stuck.fx.snapshot(); len(touches) != 0 {
		t.Fatalf("Node events for a pod still terminating: %v", touches)
	}

	lost := start(t, []plan.PodAction{touch("w3")}, nil, nil)
	lost.fx.lost = true
	if err := lost.r.Quiesce(context.Background()); err == nil {
		t.Fatal("Quiesce with a failed delete: no error")
	}
	if err := lost.releaseStepping(t); err != nil {
		t.Fatalf("Release after a lost delete: %v", err)
	}
	if _, _, touches := lost.fx.snapshot(); len(touches) != 0 {
		t.Fatalf("Node events after a lost delete: %v", touches)
	}
}

// releaseStepping runs Release while stepping the fake clock a second at a
// time, and returns its result.
func (h *harness) releaseStepping(t *testing.T) error {
	t.Helper()
	released := make(chan error, 1)
	go func() { released <- h.r.Release(context.Background()) }()
	for i := 0; i < 2000; i++ {
		select {
		case err := <-released:
			return err
		case <-time.After(10 * time.Millisecond):
			h.clock.Step(time.Second)
		}
	}
	t.Fatal("Release did not return")
	return nil
}

// Release sends the Node events for the pods Quiesce deleted when the fix
// fails before Run, and nothing once Run has started.
func TestRecoveryRelease(t *testing.T) {
	h := start(t, []plan.PodAction{touch("w1"), touch("w2")}, nil, nil)
	if err := h.r.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, journal, touches := h.fx.snapshot(); len(journal)+len(touches) != 0 {
		t.Fatalf("Release before Quiesce wrote: journal %v, touches %v", journal, touches)
	}
	if err := h.r.Quiesce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := h.r.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, journal, touches := h.fx.snapshot()
	if len(journal) != 1 || touches["w1"] != 1 || touches["w2"] != 1 {
		t.Fatalf("journal %v, touches %v", journal, touches)
	}
}
