package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

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
	// Init containers, then containers: those before st.next have run to
	// completion (init) or are running; st.next restarts after a failure.
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
		count, last := ev.Count, ev.LastTimestamp
		name := ev.Name
		k.evMu.Unlock()
		patch, _ := json.Marshal(map[string]any{"count": count, "lastTimestamp": last})
		if _, err := k.c.kube.CoreV1().Events(pod.Namespace).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && ctx.Err() == nil {
			k.c.logf("kubelet: event %s: %v", name, err)
		}
		return
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	fieldPath := ""
	if container != "" {
		fieldPath = "spec.initContainers{" + container + "}"
		for _, c := range pod.Spec.Containers {
			if c.Name == container {
				fieldPath = "spec.containers{" + container + "}"
			}
		}
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
