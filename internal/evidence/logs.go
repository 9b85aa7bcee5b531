package evidence

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/fanout"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
)

// Bounds on one log read.
const (
	logTailLines  = 200
	logLimitBytes = 128 << 10
)

// logFetch is one log to read.
type logFetch struct {
	pod, container, instance string
}

// logs groups failing pods by failure signature and reads the work
// container's logs (current and previous) of at most MaxLogs pods per group.
func (r *run) logs(ctx context.Context) error {
	groups := groupFailing(r.b.Pods)
	var fetches []logFetch
	for i := range groups {
		g := &groups[i]
		if r.o.MaxLogs < 0 {
			continue
		}
		var eligible []string
		for _, name := range g.Pods {
			if p, _ := r.b.Pod(name); workRan(p) {
				eligible = append(eligible, name)
			}
		}
		g.Fetched = spread(eligible, r.o.MaxLogs)
		for _, name := range g.Fetched {
			p, _ := r.b.Pod(name)
			c, _ := p.Work()
			for _, inst := range Instances(c) {
				fetches = append(fetches, logFetch{pod: name, container: c.Name, instance: inst})
			}
		}
	}
	r.b.LogGroups = groups
	if len(fetches) == 0 {
		return nil
	}
	out := make([]Log, len(fetches))
	var refused atomic.Bool
	err := fanout.Each(len(fetches), r.o.Concurrency, func(i int) (err error) {
		out[i], err = r.readLog(ctx, fetches[i], &refused)
		return err
	})
	if err != nil {
		return err
	}
	if refused.Load() {
		req := access.Request{Verb: "get", Resource: "pods", Subresource: "log", Namespace: r.o.Namespace}
		r.gap(Gap{What: "pods/log", Request: &req, Reason: "forbidden: " + req.String(),
			Impact: "dms-init logs are not read; classes come from pod states, events, objects and SubjectAccessReviews"})
		for i := range r.b.LogGroups {
			r.b.LogGroups[i].Fetched = nil
		}
		return nil
	}
	r.b.Logs = out
	return nil
}

func workRan(p Pod) bool {
	c, ok := p.Work()
	return ok && c.Ran()
}

// spread picks n names spread evenly over the group (first, last, and
// between), so that a group whose pods fail differently is more likely to
// show it than with the first n by name.
func spread(names []string, n int) []string {
	if n >= len(names) {
		return names
	}
	if n == 1 {
		return names[:1]
	}
	out := make([]string, 0, n)
	for k := 0; k < n; k++ {
		out = append(out, names[k*(len(names)-1)/(n-1)])
	}
	return out
}

// Instances are the log instances worth reading. A container waiting after
// a crash (CrashLoopBackOff) serves its last run as "current" (and the
// kubelet serves the same run as "previous"), so only "current" is read
// then; a running or terminated container with an earlier run gets both.
func Instances(c Container) []string {
	if c.State.Kind != StateWaiting && c.LastState.Terminated() {
		return []string{InstanceCurrent, InstancePrevious}
	}
	return []string{InstanceCurrent}
}

func (r *run) readLog(ctx context.Context, f logFetch, refused *atomic.Bool) (Log, error) {
	if refused.Load() {
		return Log{Pod: f.pod, Container: f.container, Instance: f.instance, Error: "not read: pods/log is forbidden"}, nil
	}
	l, err := ReadLog(ctx, r.cl.Kube, r.o.Namespace, f.pod, f.container, f.instance)
	if errors.Is(err, ErrLogForbidden) {
		refused.Store(true)
		l.Error = err.Error()
		return l, nil
	}
	return l, err
}

// ErrLogForbidden is ReadLog's answer when pods/log is forbidden.
var ErrLogForbidden = errors.New("forbidden: get pods/log")

// ReadLog reads one instance of a container's log, bounded (the last
// lines, at most 128 KiB) and redacted. A read that fails for this log
// alone is recorded in the Log's Error; a forbidden pods/log returns
// ErrLogForbidden; an unreachable or unauthenticated API server, or a
// cancelled context, returns the error.
func ReadLog(ctx context.Context, cs kubernetes.Interface, namespace, pod, container, instance string) (Log, error) {
	l := Log{Pod: pod, Container: container, Instance: instance}
	tail, limit := int64(logTailLines), int64(logLimitBytes)
	opts := &corev1.PodLogOptions{Container: container, Previous: instance == InstancePrevious, TailLines: &tail, LimitBytes: &limit}
	data, err := cs.CoreV1().Pods(namespace).GetLogs(pod, opts).DoRaw(ctx)
	switch {
	case apierrors.IsForbidden(err):
		return l, ErrLogForbidden
	case err != nil:
		classified := kube.Classify(err)
		if errors.Is(classified, kube.ErrUnreachable) || errors.Is(classified, kube.ErrUnauthenticated) || errors.Is(err, context.Canceled) {
			return l, fmt.Errorf("read logs of %s/%s: %w", pod, container, classified)
		}
		l.Error = err.Error()
		return l, nil
	}
	l.Text = redact(string(data))
	l.Truncated = len(data) >= logLimitBytes
	return l, nil
}

// groupFailing groups pods that are not Ready by failure signature, in a
// stable order (by their first pod's name), with IDs g1, g2, ...
func groupFailing(pods []Pod) []LogGroup {
	bySig := map[string]*LogGroup{}
	var order []*LogGroup
	for _, p := range pods { // pods are sorted by name
		if p.Ready {
			continue
		}
		c, _ := p.Work()
		sig := p.Signature()
		g, ok := bySig[sig]
		if !ok {
			g = &LogGroup{Signature: sig, Container: c.Name}
			bySig[sig] = g
			order = append(order, g)
		}
		g.Pods = append(g.Pods, p.Name)
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].Pods[0] < order[j].Pods[0] })
	out := make([]LogGroup, len(order))
	for i, g := range order {
		g.ID = fmt.Sprintf("g%d", i+1)
		out[i] = *g
	}
	return out
}
