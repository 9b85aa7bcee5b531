package evidence

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
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

// logSample is how many pods of one failure signature are read first when
// more pods fail than Options.LogBudget.
const logSample = 3

// logFetch is one log to read.
type logFetch struct {
	group                    int
	pod, container, instance string
	// fallback: read the previous run when the current one is empty or
	// gone (the container restarted since the pods were listed).
	fallback bool
}

// logs reads the work container's logs (current and previous) of failing
// pods. With at most LogBudget failing pods whose container ran, it reads
// every one. Above that it reads logSample pods of each failure signature
// (see sample), and the rest of a group only when its sample
// disagrees. Agreement is dpf.LogVerdict, the rule diagnose uses to let
// unread pods share their peers' class. It lives in dpf rather than being
// passed in from diagnose so that data still flows one way and every
// collector caller (diagnose, fix) samples by the same rule. So one cause
// costs logSample logs however many pods it breaks, and a mixed signature
// is read in full. MaxLogs caps the total.
func (r *run) logs(ctx context.Context) error {
	groups := groupFailing(r.b.Pods)
	r.b.LogGroups = groups
	ran := make([][]string, len(groups))
	total := 0
	for i, g := range groups {
		for _, name := range g.Pods {
			if p, _ := r.b.Pod(name); workRan(p) {
				ran[i] = append(ran[i], name)
			}
		}
		total += len(ran[i])
	}
	if r.o.MaxLogs < 0 {
		r.unread(ran, UnreadDisabled)
		return nil
	}
	left, sampling := r.o.MaxLogs, total > r.o.LogBudget
	pick := make([][]string, len(groups))
	for i, names := range ran {
		if sampling {
			names = sample(names)
		}
		pick[i] = take(names, &left)
	}
	lines, err := r.readLogs(ctx, pick, nil)
	if err != nil || lines == nil {
		return err
	}
	agreed := make([]bool, len(groups))
	if sampling {
		rest := make([][]string, len(groups))
		for i := range groups {
			if agreed[i] = agree(lines, pick[i]); !agreed[i] {
				rest[i] = take(without(ran[i], pick[i]), &left)
			}
		}
		if _, err := r.readLogs(ctx, rest, r.o.Progress); err != nil {
			return err
		}
	}
	for i := range r.b.LogGroups {
		g := &r.b.LogGroups[i]
		switch {
		case len(g.Fetched) == len(ran[i]):
		case agreed[i]:
			g.Unread = UnreadSampled
		default:
			g.Unread = UnreadMaxLogs
		}
	}
	return nil
}

// take returns as many names as the remaining cap allows.
func take(names []string, left *int) []string {
	n := min(len(names), *left)
	*left -= n
	return names[:n:n]
}

func without(names, drop []string) []string {
	return slices.DeleteFunc(slices.Clone(names), func(n string) bool { return slices.Contains(drop, n) })
}

// agree reports whether the read logs of pods say the same (dpf.LogVerdict);
// pods whose logs are empty say nothing.
func agree(lines map[string][]string, pods []string) bool {
	first, seen := "", false
	for _, p := range pods {
		if len(lines[p]) == 0 {
			continue
		}
		v := dpf.LogVerdict(lines[p])
		if seen && v != first {
			return false
		}
		first, seen = v, true
	}
	return true
}

// unread marks every group whose pods ran as not read, for why.
func (r *run) unread(ran [][]string, why string) {
	for i := range r.b.LogGroups {
		r.b.LogGroups[i].Fetched = nil
		if len(ran[i]) > 0 {
			r.b.LogGroups[i].Unread = why
		}
	}
}

// readLogs reads the logs of the picked pods of each group, with bounded
// concurrency, and returns each pod's lines (previous run first). It
// returns nil lines when pods/log is forbidden: that is a gap, and no
// group's logs are kept.
func (r *run) readLogs(ctx context.Context, pick [][]string, progress func(read, total int)) (map[string][]string, error) {
	var fetches []logFetch
	for i, names := range pick {
		for _, name := range names {
			p, _ := r.b.Pod(name)
			c, _ := p.Work()
			insts := Instances(c)
			for _, inst := range insts {
				fetches = append(fetches, logFetch{group: i, pod: name, container: c.Name, instance: inst,
					fallback: len(insts) == 1})
			}
		}
	}
	lines := map[string][]string{}
	if len(fetches) == 0 {
		return lines, nil
	}
	out := make([]Log, len(fetches))
	var refused atomic.Bool
	var done atomic.Int64
	err := fanout.Each(len(fetches), r.o.Concurrency, func(i int) (err error) {
		out[i], err = r.readLog(ctx, fetches[i], &refused)
		if progress != nil {
			progress(int(done.Add(1)), len(fetches))
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if refused.Load() {
		req := access.Request{Verb: "get", Resource: "pods", Subresource: "log", Namespace: r.o.Namespace}
		r.gap(Gap{What: "pods/log", Request: &req, Reason: "forbidden: " + req.String(),
			Impact: "dms-init logs are not read; classes come from pod states, events, objects and SubjectAccessReviews"})
		ran := make([][]string, len(r.b.LogGroups))
		for i, g := range r.b.LogGroups {
			ran[i] = g.Pods // forbidden says so for every pod that ran
		}
		r.unread(ran, UnreadForbidden)
		r.b.Logs = nil
		return nil, nil
	}
	for i, f := range fetches {
		g := &r.b.LogGroups[f.group]
		if n := len(g.Fetched); n == 0 || g.Fetched[n-1] != f.pod {
			g.Fetched = append(g.Fetched, f.pod)
		}
		if out[i].Text == "" {
			continue
		}
		text := strings.Split(out[i].Text, "\n")
		if f.instance == InstancePrevious {
			lines[f.pod] = append(text, lines[f.pod]...)
		} else {
			lines[f.pod] = append(lines[f.pod], text...)
		}
	}
	r.b.Logs = append(r.b.Logs, out...)
	return lines, nil
}

// sample picks logSample pods of a group: in natural name order
// (worker-2 before worker-10), the first two and the last. Neighbours
// catch causes that alternate node by node, first and last catch causes
// assigned in blocks (racks, batches); names spread evenly would alias
// with a fleet whose causes repeat every k nodes.
func sample(names []string) []string {
	if len(names) <= logSample {
		return names
	}
	sorted := slices.Clone(names)
	slices.SortFunc(sorted, naturalCompare)
	return []string{sorted[0], sorted[1], sorted[len(sorted)-1]}
}

// naturalCompare orders names with their digit runs compared as numbers.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digits(a), digits(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := cmp.Or(cmp.Compare(len(na), len(nb)), strings.Compare(na, nb)); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digits(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

func workRan(p Pod) bool {
	c, ok := p.Work()
	return ok && c.Ran()
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
	if err == nil && l.Text == "" && f.fallback {
		l, err = ReadLog(ctx, r.cl.Kube, r.o.Namespace, f.pod, f.container, InstancePrevious)
	}
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
