package verify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/fanout"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
)

// RecoverOptions configure a Recovery.
type RecoverOptions struct {
	Namespace string
	Actions   []plan.PodAction
	Timeout   time.Duration // bounds the wait for every pod to be Ready (default 10 min)
	Progress  io.Writer     // receives a live progress line (TTY) or plain lines
	TTY       bool
	// Effects makes the deletes and Node events the recovery decides on
	// (apply.Restarts); required when an action deletes a pod.
	Effects Effects
	// Retouch is how long to wait for the operator to re-create a pod after
	// a Node event before sending another (default 5 s).
	Retouch time.Duration
	Clock   clock.WithTicker // the clock (default the real one)
}

// Effects are the writes a recovery decides on. verify writes nothing
// itself: apply.Restarts makes them and journals the Node annotations in
// the fix's backup.
type Effects interface {
	// DeletePod deletes the pod if its UID is still uid; gone is true when
	// there was nothing to delete.
	DeletePod(ctx context.Context, name string, uid types.UID) (gone bool, err error)
	// JournalNodes journals the Node annotation for every Node that may
	// get one, before any is set.
	JournalNodes(ctx context.Context, nodes []string) error
	// TouchNode sets the Node annotation for the nth time.
	TouchNode(ctx context.Context, node string, n int) error
}

// PodOutcome is one pod's recovery, measured.
type PodOutcome struct {
	Pod    string `json:"pod"`
	Node   string `json:"node"`
	Action string `json:"action"`
	Ready  bool   `json:"ready"`
	State  string `json:"state"` // the last state seen, as kubectl shows it
	// StartedAt is when the pod could start again: the delete, the Node
	// event that brings it back (v25.4.0), or the start of the wait.
	// ReadyAt is when it was first seen Ready.
	StartedAt      string  `json:"startedAt,omitempty"`
	ReadyAt        string  `json:"readyAt,omitempty"`
	SecondsToReady float64 `json:"secondsToReady,omitempty"` // ReadyAt - StartedAt
	NodeEvents     int     `json:"nodeEvents,omitempty"`     // how many Node annotations it took (v25.4.0)
	Note           string  `json:"note,omitempty"`           // says why the action differs from the plan's, if it does
}

// RecoverResult is the recovery of every affected pod.
type RecoverResult struct {
	Pods     []PodOutcome `json:"pods"`
	Ready    int          `json:"ready"`
	Total    int          `json:"total"`
	TimedOut bool         `json:"timedOut"`
	Seconds  float64      `json:"seconds"`
}

// tracked is one pod being brought back.
type tracked struct {
	action    plan.PodAction
	oldUID    types.UID
	started   time.Time
	deleting  bool // a delete was sent
	deleted   bool // the delete was seen
	touchedAt time.Time
	touches   int
	readyAt   time.Time
	state     string
	// note says why the action changed from the plan's.
	note string
}

// Recovery brings the affected pods back. It watches the pods (an
// informer: one LIST, then a WATCH) and, when a Node must see an event,
// the DPUNodes, so no step polls.
//
// For DPF v25.4.0 (actions with TouchNode) the order matters: a pod deleted
// after the grant can race the kubelet's own retry, whose dms-init then
// creates the DPUNode, and v25.4.0 never re-creates a pod whose DPUNode
// exists. So Quiesce deletes those pods before the grant, when no dms-init
// run can get that far, and Run sends the Node event after it.
//
// The Recovery decides what to write and when; o.Effects writes.
type Recovery struct {
	o       RecoverOptions
	clock   clock.WithTicker
	mu      sync.Mutex
	pods    map[string]*tracked
	changed chan struct{}
	touch   chan string
	closed  bool
	// journalled is true once the Node annotations are journalled.
	journalled bool
	podStore   cache.Store
	dpuNodes   cache.Store
	// lastFresh is when a replacement pod was last seen: while the operator
	// keeps creating pods it is working through its queue, not missing
	// events.
	lastFresh time.Time
	// firstRestart and lastRestart are when the first and the last delete
	// or Node event were sent.
	firstRestart, lastRestart time.Time
	cancel                    context.CancelFunc
	wg                        sync.WaitGroup
}

// StartRecovery starts the watches. Stop it when done.
func StartRecovery(ctx context.Context, cl *kube.Clients, o RecoverOptions) (*Recovery, error) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	podsLW := cache.NewFilteredListWatchFromClient(cl.Kube.CoreV1().RESTClient(), "pods", o.Namespace,
		func(lo *metav1.ListOptions) { lo.LabelSelector = dpf.ComponentLabel })
	dn := cl.Metadata.Resource(dpf.MustGVR(dpf.GroupProvisioning, "DPUNode")).Namespace(o.Namespace)
	dpuNodesLW := &cache.ListWatch{
		ListWithContextFunc:  func(ctx context.Context, lo metav1.ListOptions) (runtime.Object, error) { return dn.List(ctx, lo) },
		WatchFuncWithContext: func(ctx context.Context, lo metav1.ListOptions) (watch.Interface, error) { return dn.Watch(ctx, lo) },
	}
	return startRecovery(ctx, cancel, podsLW, dpuNodesLW, o)
}

// startRecovery runs the recovery over the DMS pods and DPUNodes that the
// two sources list and watch; ctx ends with cancel.
func startRecovery(ctx context.Context, cancel context.CancelFunc, podsLW, dpuNodesLW cache.ListerWatcher, o RecoverOptions) (*Recovery, error) {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.Retouch <= 0 {
		o.Retouch = 5 * time.Second
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	r := &Recovery{o: o, clock: o.Clock, cancel: cancel, pods: map[string]*tracked{}, changed: make(chan struct{}, 1), touch: make(chan string, 4*len(o.Actions)+1)}
	for _, a := range o.Actions {
		t := &tracked{action: a, state: "unknown"}
		if a.Action == plan.ActionRecreate {
			// The pod is gone: tracked by name, as if deleted, with no old UID.
			t.deleted, t.state = true, "Deleted"
		}
		r.pods[a.Pod] = t
	}
	if len(r.pods) == 0 {
		return r, nil
	}
	// Old UIDs come from a first LIST, before any handler runs, so every
	// delete event can be matched.
	initial, err := cache.ToListerWatcherWithContext(podsLW).ListWithContext(ctx, metav1.ListOptions{})
	var items []runtime.Object
	if err == nil {
		items, err = meta.ExtractList(initial)
	}
	if err != nil {
		r.Stop()
		return nil, fmt.Errorf("list DMS pods: %w", kube.Classify(err))
	}
	for _, obj := range items {
		p, ok := obj.(*corev1.Pod)
		if !ok || r.pods[p.Name] == nil {
			continue
		}
		t := r.pods[p.Name]
		if t.action.Action == plan.ActionRecreate {
			t.action.Action, t.action.TouchNode, t.deleted = plan.ActionWait, false, false
			t.note = "the operator re-created the pod before dpfdoctor sent the Node event"
		}
		t.oldUID, t.state = p.UID, dpf.PodState(p)
	}
	inf := cache.NewSharedIndexInformer(podsLW, &corev1.Pod{}, 0, cache.Indexers{})
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { r.seen(obj, false) },
		UpdateFunc: func(_, obj any) { r.seen(obj, false) },
		DeleteFunc: func(obj any) { r.seen(obj, true) },
	}); err != nil {
		r.Stop()
		return nil, err
	}
	r.podStore = inf.GetStore()
	synced := []cache.InformerSynced{inf.HasSynced}
	r.wg.Go(func() { inf.Run(ctx.Done()) })
	if slices.ContainsFunc(slices.Collect(maps.Values(r.pods)), func(t *tracked) bool { return t.action.TouchNode }) {
		dn := cache.NewSharedIndexInformer(dpuNodesLW, &metav1.PartialObjectMetadata{}, 0, cache.Indexers{})
		r.dpuNodes = dn.GetStore()
		synced = append(synced, dn.HasSynced)
		r.wg.Go(func() { dn.Run(ctx.Done()) })
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		r.Stop()
		return nil, fmt.Errorf("watch DMS pods and DPUNodes: %w", kube.Classify(ctx.Err()))
	}
	for range fanout.Limit {
		r.wg.Go(func() {
			for pod := range r.touch {
				if err := r.touchNode(ctx, pod); err != nil && ctx.Err() == nil {
					r.mu.Lock()
					if t := r.pods[pod]; t != nil && t.note == "" {
						t.note = err.Error()
					}
					r.mu.Unlock()
				}
			}
		})
	}
	return r, nil
}

// Pods returns the DMS-labelled pods as the watch holds them now; nil when
// it watches none.
func (r *Recovery) Pods() []*corev1.Pod {
	if r.podStore == nil {
		return nil
	}
	var out []*corev1.Pod
	for _, obj := range r.podStore.List() {
		if p, ok := obj.(*corev1.Pod); ok {
			out = append(out, p)
		}
	}
	return out
}

// Stop ends the watches and workers.
func (r *Recovery) Stop() {
	r.cancel()
	r.closeTouch()
	r.wg.Wait()
}

// Quiesce deletes, before the grant, the pods that need a Node event to
// come back (v25.4.0), and waits until the deletes are seen. A pod that is
// already Ready, or whose DPUNode exists, is left to wait instead.
func (r *Recovery) Quiesce(ctx context.Context) error {
	var todo []*tracked
	r.mu.Lock()
	for _, t := range r.pods {
		if t.action.Action == plan.ActionDelete && t.action.TouchNode {
			todo = append(todo, t)
		}
	}
	r.mu.Unlock()
	if err := r.deleteAll(ctx, todo); err != nil {
		return err
	}
	deadline := r.clock.NewTimer(time.Minute)
	defer deadline.Stop()
	for {
		pending := 0
		r.mu.Lock()
		for _, t := range todo {
			if t.deleting && !t.deleted {
				pending++
			}
		}
		r.mu.Unlock()
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C():
			return fmt.Errorf("%d deleted DMS pods are still terminating after a minute", pending)
		case <-r.changed:
		}
	}
}

// Release sends the Node events for pods Quiesce deleted that have had
// none and are gone, without waiting for the pods: used when the fix failed
// before Run sent them all (Run's context was cancelled, Ctrl-C among
// others), so the operator re-creates the pods as they were. A delete that
// was sent but is not yet seen done (the pod is terminating) is waited for,
// up to a minute, since a Node event while the pod still exists finds it
// present and is the last one the operator gets. It does nothing when
// Quiesce deleted nothing.
func (r *Recovery) Release(ctx context.Context) error {
	deadline := r.clock.NewTimer(time.Minute)
	defer deadline.Stop()
	for waiting := true; waiting; {
		r.mu.Lock()
		quiesced, pending := false, 0
		for _, t := range r.pods {
			quiesced = quiesced || t.deleting
			if r.deleteInFlight(t) {
				pending++
			}
		}
		r.mu.Unlock()
		if !quiesced {
			return nil
		}
		if pending == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C():
			waiting = false
		case <-r.changed:
		case <-r.clock.After(time.Second): // deleteInFlight ages
		}
	}
	r.mu.Lock()
	var pods, stuck []string
	for name, t := range r.pods {
		switch {
		case t.action.TouchNode && t.deleted && t.touches == 0 && t.state == "Deleted":
			pods = append(pods, name)
		case r.deleteInFlight(t):
			stuck = append(stuck, name)
		}
	}
	r.mu.Unlock()
	if err := r.journalAndTouch(ctx, false); err != nil {
		return err
	}
	sort.Strings(pods)
	var errs []error
	for _, pod := range pods {
		if err := r.touchNode(ctx, pod); err != nil {
			errs = append(errs, err)
		}
	}
	if len(stuck) > 0 {
		sort.Strings(stuck)
		errs = append(errs, fmt.Errorf("no Node event was sent for %v: still terminating after a minute", stuck))
	}
	return errors.Join(errs...)
}

// NeedsRelease reports whether a pod Quiesce deleted still waits for its
// Node event.
func (r *Recovery) NeedsRelease() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range r.pods {
		if t.deleting && t.action.TouchNode && t.touches == 0 {
			return true
		}
	}
	return false
}

// deleteInFlight reports whether a pod that needs a Node event was sent a
// delete that is not yet seen done: it is terminating, or the delete went
// out moments ago. Call with r.mu held.
func (r *Recovery) deleteInFlight(t *tracked) bool {
	return t.action.TouchNode && t.deleting && !t.deleted && t.touches == 0 &&
		(t.state == "Terminating" || r.clock.Since(t.started) < 5*time.Second)
}

// Run sends the Node events for the pods Quiesce deleted, deletes the pods
// whose action is a delete and that are still to be deleted, and watches
// until every pod is Ready or the timeout passes. Deletes carry the pod's
// UID as a precondition, so a pod the operator already re-created is never
// deleted; just before each, the watch caches are checked again.
func (r *Recovery) Run(ctx context.Context) (res RecoverResult, err error) {
	if len(r.pods) == 0 {
		return RecoverResult{}, nil
	}
	start := r.clock.Now()
	r.mu.Lock()
	var todo []*tracked
	for _, t := range r.pods {
		if !t.deleting {
			t.started = start
		}
		if t.action.Action == plan.ActionDelete && !t.deleting {
			todo = append(todo, t)
		}
	}
	r.mu.Unlock()
	if err := r.journalAndTouch(ctx, true); err != nil {
		return RecoverResult{}, err
	}
	errs := make(chan error, 1)
	go func() {
		if err := r.deleteAll(ctx, todo); err != nil {
			errs <- err
		}
	}()

	deadline := r.clock.NewTimer(r.o.Timeout)
	defer deadline.Stop()
	tick := r.clock.NewTicker(r.o.Retouch / 2)
	defer tick.Stop()
	p := &progress{w: r.o.Progress, tty: r.o.TTY, now: r.clock.Now}
	defer func() { p.done(res) }()
	final := func(timedOut bool) RecoverResult {
		res := r.result(r.clock.Now().Sub(start))
		res.TimedOut = timedOut
		return res
	}
	for {
		// Counting, not r.result: the loop runs on every pod event, and a
		// full result per event is quadratic in the number of pods.
		sum, by := r.count(r.clock.Now().Sub(start))
		p.show(sum, by)
		if sum.Ready == sum.Total {
			return final(false), nil
		}
		select {
		case <-ctx.Done():
			return final(false), ctx.Err()
		case err := <-errs:
			return final(false), err
		case <-deadline.C():
			return final(true), nil
		case <-tick.C():
			r.retouch()
		case <-r.changed:
		}
	}
}

func (r *Recovery) signal() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *Recovery) closeTouch() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		close(r.touch)
	}
}

// queueTouch asks for a Node event; call with r.mu held.
func (r *Recovery) queueTouch(pod string) {
	if !r.closed && r.journalled {
		select {
		case r.touch <- pod:
		default:
		}
	}
}

// seen handles one informer event.
func (r *Recovery) seen(obj any, deleted bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.pods[p.Name]
	if t == nil {
		return
	}
	defer r.signal()
	if !deleted {
		r.observe(t, p)
	} else if p.UID == t.oldUID && t.deleting {
		r.markDeleted(t)
	}
}

// markDeleted records that the pod is gone and, when it needs one, queues
// its Node event; call with r.mu held.
func (r *Recovery) markDeleted(t *tracked) {
	if !t.deleted {
		t.deleted, t.state = true, "Deleted"
		if t.action.TouchNode {
			r.queueTouch(t.action.Pod)
		}
	}
}

// observe records a pod's state and readiness; call with r.mu held. The
// old pod counts only when dpfdoctor waits for it rather than replacing it.
func (r *Recovery) observe(t *tracked, p *corev1.Pod) {
	if t.action.Action != plan.ActionWait && p.UID == t.oldUID {
		if !t.deleted {
			t.state = dpf.PodState(p)
		}
		return
	}
	if t.state == "Deleted" {
		r.lastFresh = r.clock.Now()
	}
	t.state = dpf.PodState(p)
	if dpf.PodReady(p) && t.readyAt.IsZero() {
		t.readyAt = r.clock.Now()
	}
}

// safeToDelete checks, from the watch caches, that deleting the pod now
// brings a fresh one back. It returns why not otherwise; call with r.mu
// held.
func (r *Recovery) safeToDelete(t *tracked) string {
	obj, ok, _ := r.podStore.GetByKey(r.o.Namespace + "/" + t.action.Pod)
	if !ok {
		return ""
	}
	p := obj.(*corev1.Pod)
	if p.UID != t.oldUID {
		return "the operator already replaced the pod"
	}
	if dpf.PodReady(p) {
		return "the pod recovered on its own retry before dpfdoctor came to delete it"
	}
	if !t.action.TouchNode {
		return ""
	}
	if _, exists, _ := r.dpuNodes.GetByKey(r.o.Namespace + "/" + t.action.Node); exists {
		return fmt.Sprintf("DPUNode %s exists (dms-init got through on a retry); deleting the pod would lose it", t.action.Node)
	}
	// A running dms-init may get through (someone else's grant, the
	// guard's): its last step creates the DPUNode, and v25.4.0 never
	// re-creates a pod deleted after that. The kubelet's next retry
	// brings it up once the grant is in place.
	for _, c := range p.Status.InitContainerStatuses {
		if c.Name == dpf.ContainerDMSInit && c.State.Running != nil {
			return "dms-init was running when dpfdoctor came to delete the pod (it may get through, and v25.4.0 would not re-create a pod deleted after that); left to the kubelet's retry"
		}
	}
	return ""
}

// deleteAll deletes the pods, at most fanout.Limit at a time.
func (r *Recovery) deleteAll(ctx context.Context, todo []*tracked) error {
	sort.Slice(todo, func(i, j int) bool { return todo[i].action.Pod < todo[j].action.Pod })
	err := fanout.Each(len(todo), fanout.Limit, func(i int) error {
		if ctx.Err() != nil {
			return nil
		}
		return r.deletePod(ctx, todo[i])
	})
	return cmp.Or(err, ctx.Err())
}

func (r *Recovery) deletePod(ctx context.Context, t *tracked) error {
	r.mu.Lock()
	if why := r.safeToDelete(t); why != "" {
		t.action.Action, t.action.TouchNode, t.note = plan.ActionWait, false, why
		if obj, ok, _ := r.podStore.GetByKey(r.o.Namespace + "/" + t.action.Pod); ok {
			r.observe(t, obj.(*corev1.Pod))
		}
		r.mu.Unlock()
		r.signal()
		return nil
	}
	uid := t.oldUID
	t.deleting, t.started = true, r.clock.Now()
	r.restarted(t.started)
	r.mu.Unlock()
	if r.o.Effects == nil {
		return fmt.Errorf("restart: nothing to delete pod %s with", t.action.Pod)
	}
	gone, err := r.o.Effects.DeletePod(ctx, t.action.Pod, uid)
	if err != nil || !gone {
		return err
	}
	// Already gone, or already replaced: nothing to delete.
	r.mu.Lock()
	r.markDeleted(t)
	r.mu.Unlock()
	r.signal()
	return nil
}

// journalAndTouch journals, in one write, the Node annotations for the
// pods deleted so far and still to delete, then (with queue) queues the
// events for those already deleted.
func (r *Recovery) journalAndTouch(ctx context.Context, queue bool) error {
	r.mu.Lock()
	var nodes []string
	for _, t := range r.pods {
		if t.action.TouchNode && t.action.Node != "" {
			nodes = append(nodes, t.action.Node)
		}
	}
	r.mu.Unlock()
	if len(nodes) == 0 {
		return nil
	}
	if r.o.Effects == nil {
		return fmt.Errorf("restart: no journal for the Node annotations")
	}
	if err := r.o.Effects.JournalNodes(ctx, nodes); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.journalled = true
	if !queue {
		return nil
	}
	for name, t := range r.pods {
		switch {
		case !t.action.TouchNode || !t.deleted || t.touches > 0:
		case t.state != "Deleted":
			// Another Node event (the kubelet's status report) came first.
			t.note = cmp.Or(t.note, RecreatedByOperator)
		default:
			t.started = r.clock.Now()
			r.queueTouch(name)
		}
	}
	return nil
}

// RecreatedByOperator notes a pod the operator re-created on a Node event
// of its own (a kubelet status report) before dpfdoctor sent one.
const RecreatedByOperator = "re-created by the operator on another Node event (a kubelet status report) before dpfdoctor sent one"

func (r *Recovery) touchNode(ctx context.Context, pod string) error {
	r.mu.Lock()
	t := r.pods[pod]
	if t == nil || !t.readyAt.IsZero() {
		r.mu.Unlock()
		return nil
	}
	t.touchedAt, t.touches = r.clock.Now(), t.touches+1
	r.restarted(t.touchedAt)
	node, n := t.action.Node, t.touches
	r.mu.Unlock()
	return r.o.Effects.TouchNode(ctx, node, n)
}

// retouch sends another Node event for deleted pods the operator has not
// re-created since the last one, once it has gone quiet (its cache may have
// lagged behind ours when the first event came), and gives up on a pod
// whose DPUNode appeared meanwhile.
func (r *Recovery) retouch() {
	r.mu.Lock()
	defer r.mu.Unlock()
	quiet := r.clock.Now().Sub(r.lastFresh) >= r.o.Retouch
	for name, t := range r.pods {
		if !t.action.TouchNode || !t.deleted || !t.readyAt.IsZero() || t.state != "Deleted" || t.note != "" || t.touches == 0 {
			continue
		}
		if _, exists, _ := r.dpuNodes.GetByKey(r.o.Namespace + "/" + t.action.Node); exists {
			t.note = fmt.Sprintf("DPUNode %s exists, so the operator will not re-create the pod: delete DPUNode %s/%s and the NodeReconciler re-creates it",
				t.action.Node, r.o.Namespace, t.action.Node)
			continue
		}
		if quiet && t.touches < 6 && r.clock.Now().Sub(t.touchedAt) >= r.o.Retouch {
			t.touchedAt = r.clock.Now()
			r.queueTouch(name)
		}
	}
}

func (r *Recovery) result(elapsed time.Duration) RecoverResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := RecoverResult{Total: len(r.pods), Seconds: elapsed.Seconds()}
	for _, t := range r.pods {
		o := PodOutcome{Pod: t.action.Pod, Node: t.action.Node, Action: t.action.Action, State: t.state, NodeEvents: t.touches, Note: t.note}
		if !t.started.IsZero() {
			o.StartedAt = t.started.UTC().Format(time.RFC3339Nano)
		}
		if !t.readyAt.IsZero() {
			o.Ready, o.State = true, "Ready"
			o.ReadyAt = t.readyAt.UTC().Format(time.RFC3339Nano)
			o.SecondsToReady = max(0, t.readyAt.Sub(t.started).Seconds())
			res.Ready++
		}
		res.Pods = append(res.Pods, o)
	}
	sort.Slice(res.Pods, func(i, j int) bool { return res.Pods[i].Pod < res.Pods[j].Pod })
	return res
}

// count is the progress so far: the pods Ready, in all, and by state
// (Ready ones as "Ready").
func (r *Recovery) count(elapsed time.Duration) (RecoverResult, map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	res, by := RecoverResult{Total: len(r.pods), Seconds: elapsed.Seconds()}, map[string]int{}
	for _, t := range r.pods {
		if !t.readyAt.IsZero() {
			res.Ready++
			by["Ready"]++
		} else {
			by[t.state]++
		}
	}
	return res, by
}

// restarted records a delete or Node event sent at t; call with r.mu held.
func (r *Recovery) restarted(t time.Time) {
	if r.firstRestart.IsZero() {
		r.firstRestart = t
	}
	if t.After(r.lastRestart) {
		r.lastRestart = t
	}
}

// Restarts returns when the first and the last delete or Node event were
// sent (zero when none was).
func (r *Recovery) Restarts() (first, last time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.firstRestart, r.lastRestart
}
