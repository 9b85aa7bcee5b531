package guard

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
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
	if !r.pods.synced() {
		return nil, errNotSynced
	}
	var (
		configs unstructured.UnstructuredList
		roles   rbacv1.RoleList
		rbs     rbacv1.RoleBindingList
	)
	configs.SetGroupVersionKind(operatorConfigGVK.GroupVersion().WithKind(operatorConfigGVK.Kind + "List"))
	for _, l := range []client.ObjectList{&configs, &roles, &rbs} {
		if err := r.cache.List(ctx, l, client.InNamespace(r.opts.Namespace), client.UnsafeDisableDeepCopy); err != nil {
			return nil, fmt.Errorf("read the DPFOperatorConfig and dpfdoctor's RBAC objects from the cache: %w", err)
		}
	}
	return &snapshot{now: time.Now(), config: evidence.PickConfig(configs.Items), pods: r.pods.list(),
		rbac: evidence.RBAC{Roles: roles.Items, RoleBindings: rbs.Items}}, nil
}

var errNotSynced = errors.New("the pod index has not synced yet")

// nodes returns the cached DPU Nodes of the given names, as evidence (a
// copy each, few: only failing pods' nodes are asked for).
func (r *reconciler) nodes(ctx context.Context, names []string) ([]evidence.Node, error) {
	var out []evidence.Node
	for _, name := range names {
		var n corev1.Node
		if err := r.cache.Get(ctx, client.ObjectKey{Name: name}, &n); err == nil {
			out = append(out, evidence.NodeFrom(&n))
		} else if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("read node %s from the cache: %w", name, err)
		}
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

// addPerDPUPods adds v25.1's per-DPU DMS pods to s as the evidence collector
// finds them (one LIST from the API server's watch cache), trimmed as the
// cache trims, when the release creates pods per DPU or is unknown with no
// labelled pod cached. It reports whether it listed: then look again in
// perDPUPoll.
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

// update forgets pods that are gone and calls recovered for each pod Ready
// again since the guard saw it fail.
func (t *tracker) update(s *snapshot, recovered func(p *corev1.Pod, after time.Duration)) {
	present := make(map[types.UID]bool, len(s.pods))
	for _, p := range s.pods {
		present[p.UID] = true
		if at, ok := t.firstFail[p.UID]; ok && dpf.PodReady(p) {
			recovered(p, s.now.Sub(at))
			delete(t.firstFail, p.UID)
			delete(t.reported, p.UID)
		}
	}
	maps.DeleteFunc(t.firstFail, func(uid types.UID, _ time.Time) bool { return !present[uid] })
	maps.DeleteFunc(t.reported, func(uid types.UID, _ string) bool { return !present[uid] })
}

// split notes when each pod was first seen failing, and separates the pods
// to diagnose from those awaiting their retry after a change of dpfdoctor's
// RBAC (such as the guard's own repair): a diagnosed pod whose last run
// started before the change keeps its diagnosis until it runs again, not
// judged on the logs of a run before the change against the RBAC after it.
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

// operatorConfigGVK is the DPFOperatorConfig, read as unstructured so the
// guard needs no DPF API types.
var operatorConfigGVK = dpf.MustGVR(dpf.GroupOperator, "DPFOperatorConfig").GroupVersion().WithKind("DPFOperatorConfig")

func newOperatorConfig() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(operatorConfigGVK)
	return u
}

// cacheOptions restrict the shared informer cache to what the guard reads:
// namespaced kinds in the DPF namespace only, DMS and host-agent pods, DPU
// Nodes, and the Roles and RoleBindings dpfdoctor manages there, each
// selected by label so that the API server filters. Nothing else (Secrets
// above all) is ever listed or watched: a read of any other kind fails
// instead of starting an informer.
func cacheOptions(namespace string) (cache.Options, error) {
	comp, cerr := labels.NewRequirement(dpf.ComponentLabel, selection.In, []string{dpf.ComponentDMS, dpf.ComponentHostAgent})
	dpu, derr := labels.NewRequirement(dpf.DPUNodeLabel, selection.Exists, nil)
	if err := errors.Join(cerr, derr); err != nil {
		return cache.Options{}, fmt.Errorf("guard: label selectors: %w", err)
	}
	managed := labels.SelectorFromSet(labels.Set{plan.ManagedByLabel: plan.ManagedByValue})
	resync := 10 * time.Hour
	return cache.Options{
		DefaultNamespaces: map[string]cache.Config{namespace: {}},
		SyncPeriod:        &resync,
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:         {Label: labels.NewSelector().Add(*comp), Transform: trimPod},
			&corev1.Node{}:        {Label: labels.NewSelector().Add(*dpu), Transform: trimNode},
			&rbacv1.Role{}:        {Label: managed},
			&rbacv1.RoleBinding{}: {Label: managed},
			newOperatorConfig():   {},
		},
		ReaderFailOnMissingInformer: true,
	}, nil
}

// trimPod keeps only what the guard reads of a pod, environment values
// masked except the API server address: managed fields, annotations,
// probes, mounts, security contexts and the like never reach the cache.
func trimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &corev1.Pod{
		TypeMeta: p.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion,
			Labels: p.Labels, CreationTimestamp: p.CreationTimestamp, DeletionTimestamp: p.DeletionTimestamp},
		Spec: corev1.PodSpec{NodeName: p.Spec.NodeName, ServiceAccountName: p.Spec.ServiceAccountName,
			InitContainers: trimContainers(p.Spec.InitContainers), Containers: trimContainers(p.Spec.Containers)},
		Status: corev1.PodStatus{Phase: p.Status.Phase, Reason: p.Status.Reason, Conditions: p.Status.Conditions,
			InitContainerStatuses: p.Status.InitContainerStatuses, ContainerStatuses: p.Status.ContainerStatuses},
	}
	for _, v := range p.Spec.Volumes {
		vol := corev1.Volume{Name: v.Name}
		if v.Secret != nil {
			vol.Secret = &corev1.SecretVolumeSource{SecretName: v.Secret.SecretName}
		}
		out.Spec.Volumes = append(out.Spec.Volumes, vol)
	}
	return out, nil
}

func trimContainers(cs []corev1.Container) []corev1.Container {
	out := make([]corev1.Container, len(cs))
	for i, c := range cs {
		out[i] = corev1.Container{Name: c.Name, Image: c.Image, Command: c.Command, Args: c.Args}
		for _, e := range c.Env {
			if e.Value != "" && !evidence.VisibleEnv(e.Name) {
				e.Value = evidence.Masked
			}
			out[i].Env = append(out[i].Env, e)
		}
	}
	return out
}

// trimNode keeps a Node's name, labels and addresses: a few hundred bytes
// instead of several kilobytes per node.
func trimNode(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	return &corev1.Node{
		TypeMeta: n.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, UID: n.UID, ResourceVersion: n.ResourceVersion, Labels: n.Labels,
			CreationTimestamp: n.CreationTimestamp, DeletionTimestamp: n.DeletionTimestamp},
		Status: corev1.NodeStatus{Addresses: n.Status.Addresses},
	}, nil
}

// podIndex holds pointers to the cached pods (read-only), kept by an event
// handler on the shared informer, so a reconcile takes them without the
// per-object copy a cache List makes (5,000 pods: ~8 ms and ~5 MB saved).
// The handler triggers the controller after updating the index, so a
// reconcile never sees the index older than the change that caused it.
type podIndex struct {
	mu      sync.RWMutex
	pods    map[types.UID]*corev1.Pod
	reg     toolscache.ResourceEventHandlerRegistration
	trigger chan event.GenericEvent
}

func newPodIndex(ctx context.Context, c cache.Cache) (*podIndex, error) {
	x := &podIndex{pods: map[types.UID]*corev1.Pod{}, trigger: make(chan event.GenericEvent, 1)}
	inf, err := c.GetInformer(ctx, &corev1.Pod{})
	if err != nil {
		return nil, fmt.Errorf("pod informer: %w", err)
	}
	if x.reg, err = inf.AddEventHandler(x); err != nil {
		return nil, fmt.Errorf("pod informer: %w", err)
	}
	return x, nil
}

func (x *podIndex) OnAdd(obj any, _ bool) {
	if x.put(obj) {
		x.signal()
	}
}

// OnUpdate signals only changes the guard reads (see podChanged).
func (x *podIndex) OnUpdate(oldObj, obj any) {
	old, ok := oldObj.(*corev1.Pod)
	if x.put(obj) && (!ok || podChanged(old, obj.(*corev1.Pod))) {
		x.signal()
	}
}

func (x *podIndex) OnDelete(obj any) {
	if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if p, ok := obj.(*corev1.Pod); ok {
		x.mu.Lock()
		delete(x.pods, p.UID)
		x.mu.Unlock()
		x.signal()
	}
}

func (x *podIndex) put(obj any) bool {
	p, ok := obj.(*corev1.Pod) // of the DPF namespace: the cache watches no other
	if !ok {
		return false
	}
	x.mu.Lock()
	x.pods[p.UID] = p
	x.mu.Unlock()
	return true
}

// signal asks for a reconcile; one pending signal is enough, since every
// reconcile reads the whole index.
func (x *podIndex) signal() {
	select {
	case x.trigger <- event.GenericEvent{Object: &corev1.Pod{}}:
	default:
	}
}

// synced reports whether the handler has seen the informer's initial list.
func (x *podIndex) synced() bool { return x.reg != nil && x.reg.HasSynced() }

// list returns the pods, sorted by name.
func (x *podIndex) list() []*corev1.Pod {
	x.mu.RLock()
	out := slices.Collect(maps.Values(x.pods))
	x.mu.RUnlock()
	slices.SortFunc(out, func(a, b *corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// fetcher reads the evidence the cache cannot hold, and remembers it: the
// work container's logs of at most maxLogs pods per failure signature, the
// events of pods that never started, and SubjectAccessReview answers. What
// it remembers is dropped when the pod stops failing; answers also when
// dpfdoctor's RBAC changes, and logs when the pod fails again after that.
// At steady state it sends nothing.
type fetcher struct {
	kube    kubernetes.Interface
	ns      string
	maxLogs int

	rbacState     string
	logs          map[types.UID]fetchedLogs
	events        map[types.UID][]evidence.Event
	reviews       map[string]evidence.AccessCheck // answered, by check key and representative name
	logsDenied    bool
	eventsDenied  bool
	reviewsDenied bool // creating SubjectAccessReviews is forbidden
}

// fetchedLogs are one pod's logs, read for one failure signature, after
// restarts restarts, with dpfdoctor's RBAC in state rbacState.
type fetchedLogs struct {
	sig       string
	restarts  int32
	rbacState string
	logs      []evidence.Log
}

func newFetcher(cs kubernetes.Interface, ns string, maxLogs int) *fetcher {
	return &fetcher{kube: cs, ns: ns, maxLogs: maxLogs, logs: map[types.UID]fetchedLogs{},
		events: map[types.UID][]evidence.Event{}, reviews: map[string]evidence.AccessCheck{}}
}

// failingPod is a failing pod, cached and as evidence.
type failingPod struct {
	obj      *corev1.Pod
	ev       evidence.Pod
	sig      string
	restarts int32
}

// fill adds logs, log groups, events and access checks for the failing
// pods to b. rbacState changes whenever dpfdoctor's RBAC objects do.
func (f *fetcher) fill(ctx context.Context, b *evidence.Bundle, pods []failingPod, rbacState string) error {
	if rbacState != f.rbacState {
		f.rbacState = rbacState
		f.reviews = map[string]evidence.AccessCheck{}
	}
	f.prune(pods)
	if err := f.fillLogs(ctx, b, pods); err != nil {
		return err
	}
	if err := f.fillEvents(ctx, b, pods); err != nil {
		return err
	}
	return f.fillAccess(ctx, b)
}

// prune forgets pods that no longer fail, and logs no longer valid.
func (f *fetcher) prune(pods []failingPod) {
	live := make(map[types.UID]failingPod, len(pods))
	for _, p := range pods {
		live[p.obj.UID] = p
	}
	// Logs read earlier still tell a live pod's story with the same
	// signature and no new failure since dpfdoctor's RBAC changed.
	maps.DeleteFunc(f.logs, func(uid types.UID, l fetchedLogs) bool {
		p, ok := live[uid]
		return !ok || l.sig != p.sig || (l.rbacState != f.rbacState && l.restarts != p.restarts)
	})
	maps.DeleteFunc(f.events, func(uid types.UID, _ []evidence.Event) bool {
		_, ok := live[uid]
		return !ok
	})
}

// fillLogs groups the failing pods by signature and reads the logs of up to
// maxLogs pods per group that it has not read yet.
func (f *fetcher) fillLogs(ctx context.Context, b *evidence.Bundle, pods []failingPod) error {
	bySig := map[string][]failingPod{}
	var order []string
	for _, p := range pods {
		if _, ok := bySig[p.sig]; !ok {
			order = append(order, p.sig)
		}
		bySig[p.sig] = append(bySig[p.sig], p)
	}
	for i, sig := range order {
		group := bySig[sig]
		work, _ := group[0].ev.Work()
		g := evidence.LogGroup{ID: fmt.Sprintf("g%d", i+1), Signature: sig, Container: work.Name}
		have := 0
		for _, p := range group {
			g.Pods = append(g.Pods, p.ev.Name)
			if _, ok := f.logs[p.obj.UID]; ok {
				have++
			}
		}
		for _, p := range group {
			_, done := f.logs[p.obj.UID]
			if c, ok := p.ev.Work(); !done && !f.logsDenied && have < f.maxLogs && ok && c.Ran() {
				logs, err := f.readLogs(ctx, p.ev, c)
				if err != nil {
					return err
				}
				if logs != nil {
					f.logs[p.obj.UID] = fetchedLogs{sig: sig, restarts: p.restarts, rbacState: f.rbacState, logs: logs}
					have++
				}
			}
			if l, ok := f.logs[p.obj.UID]; ok {
				g.Fetched = append(g.Fetched, p.ev.Name)
				b.Logs = append(b.Logs, l.logs...)
			}
		}
		b.LogGroups = append(b.LogGroups, g)
	}
	if f.logsDenied {
		req := access.Request{Verb: "get", Resource: "pods", Subresource: "log", Namespace: f.ns}
		b.Gaps = append(b.Gaps, evidence.Gap{What: "pods/log", Request: &req, Reason: "forbidden: " + req.String(),
			Impact: "dms-init logs are not read; classes come from pod states, events and SubjectAccessReviews"})
	}
	return nil
}

// readLogs reads the instances of the work container's log worth reading,
// through evidence's reader (bounds and redaction included).
func (f *fetcher) readLogs(ctx context.Context, p evidence.Pod, c evidence.Container) ([]evidence.Log, error) {
	var out []evidence.Log
	for _, inst := range evidence.Instances(c) {
		l, err := evidence.ReadLog(ctx, f.kube, p.Namespace, p.Name, c.Name, inst)
		switch {
		case errors.Is(err, evidence.ErrLogForbidden):
			f.logsDenied = true
			return nil, nil
		case err != nil:
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// fillEvents reads, once per pod, the events of failing pods that never
// started a container: the kubelet's FailedMount says why.
func (f *fetcher) fillEvents(ctx context.Context, b *evidence.Bundle, pods []failingPod) error {
	for _, p := range pods {
		if p.ev.Started() {
			continue
		}
		evs, ok := f.events[p.obj.UID]
		if !ok && !f.eventsDenied {
			sel := fields.Set{"involvedObject.uid": string(p.obj.UID)}.AsSelector().String()
			list, err := f.kube.CoreV1().Events(p.obj.Namespace).List(ctx, metav1.ListOptions{FieldSelector: sel})
			switch {
			case apierrors.IsForbidden(err):
				f.eventsDenied = true
			case err != nil:
				return fmt.Errorf("read events of %s: %w", p.obj.Name, kube.Classify(err))
			default:
				for i := range list.Items {
					evs = append(evs, evidence.EventFrom(&list.Items[i]))
				}
				f.events[p.obj.UID] = evs
			}
		}
		b.Events = append(b.Events, evs...)
	}
	return nil
}

// fillAccess answers each distinct call pattern of the failing pods with one
// SubjectAccessReview for a representative node, remembered until
// dpfdoctor's RBAC changes, and derives per-node answers from dpfdoctor's
// name-restricted grants, as the collector does.
func (f *fetcher) fillAccess(ctx context.Context, b *evidence.Bundle) error {
	set := b.RBAC.Set()
	checks, err := evidence.Answer(evidence.AccessPatterns(b.Pods, b.Install.Version), 1, func(p evidence.Pattern) (evidence.AccessCheck, error) {
		check := p.Question(set)
		if err := f.review(ctx, p.Key, &check); err != nil || check.Allowed {
			return check, err
		}
		check.NodeOverrides = p.Overrides(set)
		return check, nil
	})
	if err != nil {
		return err
	}
	b.Access = append(b.Access, checks...)
	if f.reviewsDenied {
		b.Gaps = append(b.Gaps, evidence.ReviewsRefused())
	}
	return nil
}

// review answers c once per question and RBAC state.
func (f *fetcher) review(ctx context.Context, checkKey string, c *evidence.AccessCheck) error {
	c.Method = evidence.MethodReview
	key := checkKey + "|" + c.Request.Name
	if r, ok := f.reviews[key]; ok {
		c.Allowed, c.Reason, c.Error = r.Allowed, r.Reason, r.Error
		return nil
	}
	if f.reviewsDenied {
		c.Error = evidence.NotAsked
		return nil
	}
	refused, err := evidence.Review(ctx, f.kube, c)
	switch {
	case err != nil:
		return err
	case refused:
		f.reviewsDenied = true
	default:
		f.reviews[key] = *c
	}
	return nil
}
