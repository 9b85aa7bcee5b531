package sim

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/selfsigned"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Kubelet timing (before TimeScale), as a real kubelet's.
const (
	backoffInitial = 10 * time.Second
	backoffMax     = 5 * time.Minute
	mountRetry     = 10 * time.Second
	// syncFrequency is the kubelet's --sync-frequency: a pod in back-off
	// is synced again when its back-off ends, but at most this long
	// after its last sync (requeue).
	syncFrequency = time.Minute
	// nodeStatusReport is the kubelet's nodeStatusReportFrequency: without
	// a change it still posts its Node status this often, and each post is
	// a Node update event the operator's NodeReconciler sees.
	nodeStatusReport = 5 * time.Minute
	// PCIAddress is the simulated DPU's PCI address on every host.
	PCIAddress = "0000:3b:00.0"
	// DMSEmptyCertificate is the dms container's (modelled) last line when
	// dms-init left empty certificate files.
	DMSEmptyCertificate = "dmsd: load server certificate /opt/dpf/dms/certs/tls.crt: tls: failed to find any PEM data in certificate input"
)

// kubelet runs the containers of every DMS pod: init containers in order,
// each failure answered with CrashLoopBackOff back-off, status and events
// written as a kubelet would, logs kept for the pods/log endpoint.
type kubelet struct {
	c     *Cluster
	queue workqueue.TypedDelayingInterface[string]
	// terminating confirms the graceful deletion of a pod no worker is
	// syncing, on workers of its own: a real kubelet handles a pod's
	// termination on that pod's worker, not behind other pods' runs.
	terminating workqueue.TypedInterface[string]

	mu     sync.Mutex
	states map[string]*podState // by pod name
	busy   map[string]bool      // pods a worker has (claim)

	tokMu    sync.Mutex
	token    string
	tokenExp time.Time
	callers  map[string]apiCaller

	evMu   sync.Mutex
	events map[string]*corev1.Event

	caFile, emptyKubeconfig, cacheDir string
}

type containerRun struct {
	lines    []string
	exitCode int32
	message  string
	started  time.Time
	finished time.Time
}

type podState struct {
	uid       types.UID
	created   time.Time
	next      int // index of the init container to run next
	failures  map[string]int32
	backoff   time.Duration
	lastDelay time.Duration // the back-off before the next restart, as the status reports it
	due       time.Time
	runs      map[string][]containerRun // per container, oldest first (last two kept)
	mounted   bool
	// emptyCerts: dms-init left empty certificate files (script B after
	// Forbidden Secret reads); dms fails on them until dms-init runs again.
	emptyCerts bool
	done       bool
}

func newKubelet(c *Cluster) *kubelet {
	return &kubelet{c: c, states: map[string]*podState{}, busy: map[string]bool{}, callers: map[string]apiCaller{}, events: map[string]*corev1.Event{},
		queue:       workqueue.NewTypedDelayingQueueWithConfig(workqueue.TypedDelayingQueueConfig[string]{Name: "sim-kubelet"}),
		terminating: workqueue.NewTypedWithConfig(workqueue.TypedQueueConfig[string]{Name: "sim-kubelet-terminating"})}
}

func (k *kubelet) start(ctx context.Context, wg *sync.WaitGroup) error {
	c := k.c
	k.caFile = filepath.Join(c.dir, "apiserver-ca.crt")
	k.emptyKubeconfig = filepath.Join(c.dir, "empty-kubeconfig")
	k.cacheDir = filepath.Join(c.dir, "kubectl-cache")
	if err := errors.Join(os.WriteFile(k.caFile, c.Config.CAData, 0o600), os.WriteFile(k.emptyKubeconfig, nil, 0o600), os.MkdirAll(k.cacheDir, 0o700)); err != nil {
		return err
	}
	// The operator's pod informer, started and synced already.
	enqueue := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
			k.queue.Add(p.Name)
		}
	}
	if _, err := c.op.podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, DeleteFunc: enqueue,
		UpdateFunc: func(o, n any) {
			if o.(*corev1.Pod).UID != n.(*corev1.Pod).UID || n.(*corev1.Pod).DeletionTimestamp != nil {
				enqueue(n)
			}
			if p := n.(*corev1.Pod); p.DeletionTimestamp != nil && p.Spec.NodeName != "" {
				k.terminating.Add(p.Name)
			}
		}}); err != nil {
		return err
	}
	wg.Go(func() { k.reportNodeStatus(ctx) })
	retry := func(name string, err error) {
		if err != nil && ctx.Err() == nil {
			k.c.logf("kubelet: pod %s: %v", name, err)
			k.queue.AddAfter(name, k.c.scale(time.Second))
		}
	}
	work(ctx, wg, k.queue, k.c.opts.Workers, func(name string) {
		if !k.claim(name) { // being confirmed deleted: look again then
			k.queue.AddAfter(name, k.c.scale(time.Second))
			return
		}
		defer k.release(name)
		retry(name, k.sync(ctx, name))
	})
	// A pod being run is left to its worker, which confirms the deletion
	// when the run ends: dms-init, PID 1 of its container, ignores SIGTERM
	// and runs on until it ends or the grace period does.
	work(ctx, wg, k.terminating, k.c.opts.Workers, func(name string) {
		if p, err := k.c.op.pods.Pods(k.c.Namespace).Get(name); err != nil || p.DeletionTimestamp == nil || !k.claim(name) {
			return
		}
		defer k.release(name)
		retry(name, k.sync(ctx, name))
	})
	return nil
}

// claim gives a pod to the calling worker; false when another has it.
func (k *kubelet) claim(name string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.busy[name] {
		return false
	}
	k.busy[name] = true
	return true
}

func (k *kubelet) release(name string) {
	k.mu.Lock()
	delete(k.busy, name)
	k.mu.Unlock()
}

// reportNodeStatus posts each registered node's status every
// nodeStatusReport × time scale, jittered by ±10 % per report as the
// kubelet's is, by renewing the Ready condition's lastHeartbeatTime.
func (k *kubelet) reportNodeStatus(ctx context.Context) {
	period := k.c.scale(k.c.opts.NodeStatusReport)
	if period <= 0 {
		return
	}
	jitter := func(d time.Duration) time.Duration { return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64())) }
	due := map[string]time.Time{}
	t := time.NewTicker(max(period/20, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		nodes, err := k.c.op.nodes.List(labels.Everything())
		if err != nil {
			continue
		}
		now := time.Now()
		for _, n := range nodes {
			next, seen := due[n.Name]
			switch {
			case nodeIP(n) == "":
				continue
			case !seen:
				// Kubelets start at different times: spread the first reports.
				due[n.Name] = now.Add(time.Duration(rand.Int64N(int64(period))))
				continue
			case now.Before(next):
				continue
			}
			due[n.Name] = now.Add(jitter(period))
			patch := fmt.Sprintf(`{"status":{"conditions":[{"type":"Ready","lastHeartbeatTime":%q}]}}`, now.UTC().Format(time.RFC3339))
			if _, err := k.c.kube.CoreV1().Nodes().PatchStatus(ctx, n.Name, []byte(patch)); err != nil && ctx.Err() == nil && !apierrors.IsNotFound(err) {
				k.c.logf("kubelet: node %s status: %v", n.Name, err)
			}
		}
	}
}

func (k *kubelet) state(p *corev1.Pod) *podState {
	k.mu.Lock()
	defer k.mu.Unlock()
	st := k.states[p.Name]
	if st == nil || st.uid != p.UID {
		st = &podState{uid: p.UID, created: p.CreationTimestamp.Time, failures: map[string]int32{},
			backoff: k.c.scale(backoffInitial), runs: map[string][]containerRun{}}
		if st.created.IsZero() {
			st.created = time.Now()
		}
		k.states[p.Name] = st
	}
	return st
}

// sync advances one pod as far as it can go now.
func (k *kubelet) sync(ctx context.Context, name string) error {
	pod, err := k.c.op.pods.Pods(k.c.Namespace).Get(name)
	if err == nil && pod.DeletionTimestamp != nil {
		// The kubelet confirms a graceful deletion once the containers
		// have stopped: delete with grace period 0.
		err := k.c.kube.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0)),
			Preconditions: &metav1.Preconditions{UID: &pod.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return err
		}
	} else if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if err != nil || pod.DeletionTimestamp != nil {
		k.mu.Lock()
		if st := k.states[name]; st != nil && (pod == nil || st.uid == pod.UID) {
			delete(k.states, name)
		}
		k.mu.Unlock()
		return nil
	}
	st := k.state(pod)
	if st.done {
		return nil
	}
	if left := time.Until(st.due); left > 0 {
		k.requeue(name, left)
		return nil
	}
	node := &corev1.Node{}
	if n, err := k.c.op.nodes.Get(pod.Spec.NodeName); err == nil {
		node = n
	}
	scen := k.c.scenarioOf(node)

	// Volumes: the node's server Secret must exist before anything runs.
	if !st.mounted {
		if i := slices.IndexFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Secret != nil }); i >= 0 && pod.Spec.Volumes[i].Secret.SecretName != "" {
			vol := pod.Spec.Volumes[i].Secret.SecretName
			if _, err := k.c.kube.CoreV1().Secrets(k.c.Namespace).Get(ctx, vol, metav1.GetOptions{}); apierrors.IsNotFound(err) {
				k.event(ctx, pod, "", corev1.EventTypeWarning, "FailedMount",
					fmt.Sprintf("MountVolume.SetUp failed for volume %q : secret %q not found", dpf.ServerVolume, vol))
				st.due = time.Now().Add(k.c.scale(mountRetry))
				k.requeue(name, k.c.scale(mountRetry))
				return k.writeStatus(ctx, pod, st)
			} else if err != nil {
				return err
			}
		}
		st.mounted = true
	}

	// Init containers in order, then the containers; a failure restarts
	// only the failing one, after the back-off.
	all := append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
	for st.next < len(all) {
		ctr := all[st.next]
		run := k.runContainer(ctx, pod, scen, ctr, st)
		if ctx.Err() != nil {
			return nil
		}
		k.mu.Lock()
		st.runs[ctr.Name] = append(st.runs[ctr.Name], run)
		if runs := st.runs[ctr.Name]; len(runs) > 2 {
			st.runs[ctr.Name] = runs[len(runs)-2:]
		}
		k.mu.Unlock()
		k.event(ctx, pod, ctr.Name, corev1.EventTypeNormal, "Started", "Started container "+ctr.Name)
		if run.exitCode != 0 {
			st.failures[ctr.Name]++
			delay := st.backoff
			st.lastDelay = delay
			st.backoff = min(2*st.backoff, k.c.scale(backoffMax))
			st.due = time.Now().Add(delay)
			k.event(ctx, pod, ctr.Name, corev1.EventTypeWarning, "BackOff",
				fmt.Sprintf("Back-off restarting failed container %s in pod %s_%s(%s)", ctr.Name, pod.Name, pod.Namespace, pod.UID))
			k.requeue(name, delay)
			return k.writeStatus(ctx, pod, st)
		}
		st.next++
		st.backoff = k.c.scale(backoffInitial)
	}
	k.mu.Lock()
	st.done = true
	k.mu.Unlock()
	return k.writeStatus(ctx, pod, st)
}

// requeue schedules a pod in back-off for the kubelet's sync that restarts
// it. The kubelet's pod worker syncs such a pod again when its back-off
// ends, but at most syncFrequency after the last sync, each delay jittered
// by up to +50 % (completeWork in pkg/kubelet/pod_workers.go, Kubernetes
// v1.37), and restarts the container at the first sync after the
// back-off: up to half a sync period late, 30 s after a 5-minute back-off.
// The sim queues that sync alone, not the ones before it.
func (k *kubelet) requeue(name string, backoff time.Duration) {
	k.queue.AddAfter(name, restartAfter(backoff, k.c.scale(syncFrequency), rand.Float64))
}

// restartAfter is when the first pod sync at or after backoff comes, the
// syncs spaced as the pod worker spaces them; rnd is uniform in [0, 1).
func restartAfter(backoff, sync time.Duration, rnd func() float64) time.Duration {
	var at time.Duration
	for at < backoff {
		d := min(backoff-at, max(sync, time.Millisecond))
		at += d + time.Duration(0.5*rnd()*float64(d))
	}
	return at
}

// runContainer runs one init container's program for the pod's scenario.
func (k *kubelet) runContainer(ctx context.Context, pod *corev1.Pod, scen Scenario, ctr corev1.Container, st *podState) containerRun {
	run := containerRun{started: time.Now()}
	fail := func(err error) containerRun {
		run.lines, run.exitCode = []string{"sim: " + err.Error()}, 1
		return run
	}
	switch {
	case ctr.Name == dpf.ContainerRshimPreflight || ctr.Name == dpf.ContainerDMSInit:
		if k.c.opts.Script != nil && k.c.useKubectl && k.c.Release.Script != dpf.ScriptNone {
			started := run.started
			run = k.runScript(ctx, pod, scen, ctr, st)
			run.started = started
			break
		}
		if k.c.Release.Script == dpf.ScriptNone {
			// v25.1: an inline bash check, no dmsinit.sh.
			if scen == RshimOccupied {
				run.exitCode, run.message = 1, PCIAddress
			}
			return run
		}
		api, err := k.caller(ctx, pod, scen, true)
		if err != nil {
			return fail(err)
		}
		argv := append(append([]string{}, ctr.Command...), ctr.Args...)
		d := &dmsInit{
			variant: dpf.ScriptForImageTag(dpf.ImageTag(ctr.Image)), args: dpf.ParseArgs(argv), node: pod.Spec.NodeName,
			pci: PCIAddress, serial: serialNumber(pod.Spec.NodeName), noDPU: scen == NoDPUFound && ctr.Name == dpf.ContainerDMSInit, occupied: scen == RshimOccupied,
			hypothetical: scen == HypotheticalSecretsForbidden, api: api, attempts: k.c.opts.SecretWaitAttempts, sleep: k.sleep,
		}
		// The real rshim-preflight runs discover_dpu too and, with no DPU,
		// fails first (check_rshim_not_occupied: "No DPUs found on this
		// system, exiting"). The sim lets it pass so that no-dpu-found shows
		// in dms-init, the container whose log diagnose reads.
		lines, code := d.run(ctx)
		run.lines, run.exitCode = lines, int32(code)
		if ctr.Name == dpf.ContainerDMSInit {
			st.emptyCerts = d.emptyCerts
		}
		if code != 0 && ctr.Name == dpf.ContainerRshimPreflight {
			// What the script writes to /dev/termination-log. B–E write
			// the address without its function (0000:3b:00); the sim
			// keeps the function so evidence.IsPCIAddress matches it.
			run.message = PCIAddress
		}
	case ctr.Name == dpf.ContainerConfigureVF:
		run.lines = []string{"restoring VF configuration: nothing to restore"}
	case ctr.Name == dpf.ContainerDMS && st.emptyCerts:
		// Modelled: the facts record no dmsd text for empty certificate
		// files; the TLS error is Go's for empty PEM input.
		run.lines, run.exitCode = []string{DMSEmptyCertificate}, 1
	case ctr.Name == dpf.ContainerHostAgent:
		// The host agent is a Go program: client-go, never kubectl.
		api, err := k.caller(ctx, pod, scen, false)
		if err != nil {
			return fail(err)
		}
		if cc, ok := api.(*clientCaller); ok {
			g := *cc
			g.goClient = true
			api = &g
		}
		lines, code := hostAgent(ctx, api, k.c.Namespace, pod.Spec.NodeName, scen == NoDPUFound)
		run.lines, run.exitCode = lines, int32(code)
	default:
		run.lines = []string{fmt.Sprintf("time=%q level=info msg=\"starting %s\" node=%s", run.started.UTC().Format(time.RFC3339), ctr.Name, pod.Spec.NodeName)}
	}
	run.finished = time.Now()
	return run
}

func (k *kubelet) sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(k.c.scale(d)):
	}
}

// serialNumber is the simulated DPU's serial number for a node.
func serialNumber(node string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(node))
	return fmt.Sprintf("MT2306XZ%05X", h.Sum32()&0xFFFFF)
}

// caller returns the API caller for a pod: the pod's KUBERNETES_SERVICE_*
// env decides where kubectl connects; the token is the ServiceAccount's.
func (k *kubelet) caller(ctx context.Context, pod *corev1.Pod, scen Scenario, kubectl bool) (apiCaller, error) {
	server := "https://" + k.apiAddress(pod, scen)
	token, err := k.saToken(ctx, cmp.Or(pod.Spec.ServiceAccountName, "default"))
	if err != nil {
		return nil, err
	}
	if kubectl && k.c.useKubectl {
		return &kubectlCaller{path: cmp.Or(k.c.opts.Kubectl, KubectlPath()), server: server, token: token, caFile: k.caFile,
			kubeconfig: k.emptyKubeconfig, cacheDir: k.cacheDir}, nil
	}
	k.tokMu.Lock()
	defer k.tokMu.Unlock()
	key := server + "|" + token
	if a, ok := k.callers[key]; ok {
		return a, nil
	}
	a, err := newClientCaller(server, token, k.c.Config.CAData)
	if err != nil {
		return nil, err
	}
	k.callers[key] = a
	return a, nil
}

// apiAddress is host:port of the API server as the pod's
// KUBERNETES_SERVICE_* env names it, or the closed port for a node that
// cannot reach it (when the whole cluster's VIP is wrong, the env already
// points nowhere).
func (k *kubelet) apiAddress(pod *corev1.Pod, scen Scenario) string {
	if scen == APIServerUnreachable {
		return k.c.closedAddr
	}
	host, port := k.c.apiHost, fmt.Sprint(k.c.apiPort)
	for _, ctr := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		for _, e := range ctr.Env {
			switch e.Name {
			case "KUBERNETES_SERVICE_HOST":
				host = e.Value
			case "KUBERNETES_SERVICE_PORT":
				port = e.Value
			}
		}
	}
	return net.JoinHostPort(host, port)
}

// saToken returns a TokenRequest token for the ServiceAccount, renewed
// before it expires.
func (k *kubelet) saToken(ctx context.Context, sa string) (string, error) {
	k.tokMu.Lock()
	defer k.tokMu.Unlock()
	if k.token != "" && time.Until(k.tokenExp) > 10*time.Minute {
		return k.token, nil
	}
	tr, err := k.c.kube.CoreV1().ServiceAccounts(k.c.Namespace).CreateToken(ctx, sa,
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for ServiceAccount %s: %w", sa, err)
	}
	k.token, k.tokenExp = tr.Status.Token, tr.Status.ExpirationTimestamp.Time
	k.callers = map[string]apiCaller{}
	return k.token, nil
}

// KubectlPath finds kubectl: $KUBECTL, then $KUBEBUILDER_ASSETS/kubectl,
// then kubectl on PATH.
func KubectlPath() string {
	if p := os.Getenv("KUBECTL"); p != "" {
		return p
	}
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		if p := filepath.Join(d, "kubectl"); fileExists(p) {
			return p
		}
	}
	return "kubectl"
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// containerLog serves pods/log through the kubelet endpoint.
func (k *kubelet) containerLog(ns, podName, container string, previous bool) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	st := k.states[podName]
	if ns != k.c.Namespace || st == nil {
		return "", fmt.Errorf("pod %q in namespace %q not found", podName, ns)
	}
	runs := st.runs[container]
	if previous {
		if len(runs) < 2 {
			return "", fmt.Errorf("previous terminated container %q in pod %q not found", container, podName)
		}
		return joinLines(runs[len(runs)-2].lines), nil
	}
	if len(runs) == 0 {
		return "", fmt.Errorf("container %q in pod %q is waiting to start: PodInitializing", container, podName)
	}
	return joinLines(runs[len(runs)-1].lines), nil
}

func joinLines(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}

// writeStatus writes the pod status a kubelet would report for st.
func (k *kubelet) writeStatus(ctx context.Context, pod *corev1.Pod, st *podState) error {
	k.mu.Lock()
	status := k.podStatus(pod, st)
	k.mu.Unlock()
	for attempt := 0; attempt < 5; attempt++ {
		p := pod.DeepCopy()
		p.Status = status
		_, err := k.c.kube.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
		if !apierrors.IsConflict(err) {
			return err
		}
		if pod, err = k.c.kube.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{}); err != nil {
			return err
		}
		if pod.UID != st.uid {
			return nil
		}
	}
	return fmt.Errorf("status of %s: too many conflicts", pod.Name)
}

func cond(t corev1.PodConditionType, ok bool, since time.Time) corev1.PodCondition {
	s := corev1.ConditionFalse
	if ok {
		s = corev1.ConditionTrue
	}
	return corev1.PodCondition{Type: t, Status: s, LastTransitionTime: metav1.NewTime(since)}
}

func (k *kubelet) podStatus(pod *corev1.Pod, st *podState) corev1.PodStatus {
	now := time.Now()
	ip := ""
	if n, err := k.c.op.nodes.Get(pod.Spec.NodeName); err == nil {
		ip = nodeIP(n)
	}
	nInit := len(pod.Spec.InitContainers)
	initDone := st.next >= nInit && st.mounted
	s := corev1.PodStatus{
		Phase: corev1.PodPending, HostIP: ip, PodIP: ip, StartTime: &metav1.Time{Time: st.created},
		Conditions: []corev1.PodCondition{
			cond("PodReadyToStartContainers", st.mounted, now),
			cond(corev1.PodInitialized, initDone, now),
			cond(corev1.PodReady, st.done, now),
			cond(corev1.ContainersReady, st.done, now),
			cond(corev1.PodScheduled, true, st.created),
		},
	}
	if ip != "" {
		s.HostIPs, s.PodIPs = []corev1.HostIP{{IP: ip}}, []corev1.PodIP{{IP: ip}}
	}
	if initDone {
		s.Phase = corev1.PodRunning
	}
	waiting := func(reason, msg string) corev1.ContainerState {
		return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}
	}
	terminated := func(r containerRun) *corev1.ContainerStateTerminated {
		reason := "Completed"
		if r.exitCode != 0 {
			reason = "Error"
		}
		return &corev1.ContainerStateTerminated{ExitCode: r.exitCode, Reason: reason, Message: r.message,
			StartedAt: metav1.NewTime(r.started), FinishedAt: metav1.NewTime(r.finished), ContainerID: containerID(pod, r)}
	}
	for i, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: c.Image, RestartCount: st.failures[c.Name]}
		runs := st.runs[c.Name]
		isInit := i < nInit
		switch {
		case i < st.next && isInit:
			cs.State = corev1.ContainerState{Terminated: terminated(runs[len(runs)-1])}
			cs.Ready = true
		case i < st.next && st.mounted:
			cs.Ready = st.done
			cs.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(runs[len(runs)-1].started)}}
		case i == st.next && len(runs) > 0:
			cs.LastTerminationState = corev1.ContainerState{Terminated: terminated(runs[len(runs)-1])}
			cs.State = waiting("CrashLoopBackOff", fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)",
				st.lastDelay, c.Name, pod.Name, pod.Namespace, pod.UID))
		case !isInit && initDone:
			cs.State = waiting("ContainerCreating", "")
		default:
			cs.State = waiting("PodInitializing", "")
		}
		if isInit {
			s.InitContainerStatuses = append(s.InitContainerStatuses, cs)
			continue
		}
		cs.Started = ptr(i < st.next && st.mounted)
		s.ContainerStatuses = append(s.ContainerStatuses, cs)
	}
	return s
}

func containerID(pod *corev1.Pod, r containerRun) string {
	h := fnv.New64a()
	_, _ = fmt.Fprint(h, pod.UID, r.started.UnixNano())
	return fmt.Sprintf("containerd://%016x", h.Sum64())
}

// event records a kubelet event on the pod, aggregating repeats into count
// as the kubelet's event broadcaster does.
func (k *kubelet) event(ctx context.Context, pod *corev1.Pod, container, typ, reason, msg string) {
	key := string(pod.UID) + "|" + container + "|" + reason + "|" + msg
	now := metav1.Now()
	k.evMu.Lock()
	ev := k.events[key]
	if ev != nil {
		ev.Count++
		ev.LastTimestamp = now
		patch, _ := json.Marshal(map[string]any{"count": ev.Count, "lastTimestamp": now})
		name := ev.Name
		k.evMu.Unlock()
		if _, err := k.c.kube.CoreV1().Events(pod.Namespace).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && ctx.Err() == nil {
			k.c.logf("kubelet: event %s: %v", name, err)
		}
		return
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	fieldPath := ""
	switch {
	case slices.ContainsFunc(pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == container }):
		fieldPath = "spec.containers{" + container + "}"
	case container != "":
		fieldPath = "spec.initContainers{" + container + "}"
	}
	ev = &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.%016x", pod.Name, h.Sum64()), Namespace: pod.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
			FieldPath: fieldPath},
		Reason: reason, Message: msg, Type: typ, Count: 1, FirstTimestamp: now, LastTimestamp: now,
		Source:              corev1.EventSource{Component: "kubelet", Host: pod.Spec.NodeName},
		ReportingController: "kubelet", ReportingInstance: pod.Spec.NodeName,
	}
	k.events[key] = ev
	k.evMu.Unlock()
	if _, err := k.c.kube.CoreV1().Events(pod.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil && ctx.Err() == nil && !apierrors.IsAlreadyExists(err) {
		k.c.logf("kubelet: event: %v", err)
	}
}

// kubeletServer is the HTTPS endpoint the API server proxies `pods/log` to:
// GET /containerLogs/{namespace}/{pod}/{container}[?previous=true&tailLines=N].
// It listens on every simulated node address (loopback only) on one port.
type kubeletServer struct {
	srv       *http.Server
	port      int
	caPEM     []byte
	listeners []net.Listener
	logs      *kubelet
	wg        sync.WaitGroup
}

// newKubeletServer starts listening on addrs (all in 127.0.0.0/8).
func newKubeletServer(addrs []string, logs *kubelet) (*kubeletServer, error) {
	for _, a := range addrs {
		if ip := net.ParseIP(a); ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("kubelet address %q is not a loopback address", a)
		}
	}
	caPEM, cert, err := selfsigned.Server(addrs...)
	if err != nil {
		return nil, err
	}
	k := &kubeletServer{caPEM: caPEM, logs: logs}
	mux := http.NewServeMux()
	mux.HandleFunc("/containerLogs/", k.serveLogs)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	k.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}

	// One port for every address: find a free one on the first address,
	// then bind the rest; retry with a new port on a clash.
	for attempt := 0; attempt < 20; attempt++ {
		if err := k.listenAll(addrs); err == nil {
			break
		} else if attempt == 19 {
			return nil, err
		}
	}
	for _, l := range k.listeners {
		k.wg.Go(func() { _ = k.srv.ServeTLS(l, "", "") })
	}
	return k, nil
}

func (k *kubeletServer) listenAll(addrs []string) error {
	first, err := net.Listen("tcp", net.JoinHostPort(addrs[0], "0"))
	if err != nil {
		return fmt.Errorf("kubelet endpoint: %w", err)
	}
	port := first.Addr().(*net.TCPAddr).Port
	ls := []net.Listener{first}
	for _, a := range addrs[1:] {
		l, err := net.Listen("tcp", net.JoinHostPort(a, strconv.Itoa(port)))
		if err != nil {
			for _, l := range ls {
				_ = l.Close()
			}
			return fmt.Errorf("kubelet endpoint on %s:%d: %w", a, port, err)
		}
		ls = append(ls, l)
	}
	k.port, k.listeners = port, ls
	return nil
}

func (k *kubeletServer) serveLogs(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/containerLogs/"), "/")
	if len(parts) != 3 {
		http.Error(w, "expected /containerLogs/{namespace}/{pod}/{container}", http.StatusBadRequest)
		return
	}
	q := r.URL.Query()
	previous, _ := strconv.ParseBool(q.Get("previous"))
	text, err := k.logs.containerLog(parts[0], parts[1], parts[2], previous)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if n, err := strconv.Atoi(q.Get("tailLines")); err == nil && n >= 0 {
		text = tail(text, n)
	}
	if n, err := strconv.Atoi(q.Get("limitBytes")); err == nil && n >= 0 && n < len(text) {
		text = text[:n]
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(text))
}

func tail(text string, n int) string {
	lines := strings.SplitAfter(text, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if n < len(lines) {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

// nodeAddress returns the loopback address of node i: 127.0.0.2, 127.0.0.3,
// … up to maxAddrs distinct addresses, then wrapping (many simulated nodes
// may share one address; logs are addressed by pod, not by node).
func nodeAddress(i, maxAddrs int) string {
	j := i % maxAddrs
	return fmt.Sprintf("127.0.%d.%d", j/250, 2+j%250)
}
