package guard

import (
	"context"
	"errors"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
)

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

// valid reports whether logs read earlier still tell the pod's story: same
// signature, and no new failure since dpfdoctor's RBAC changed.
func (l fetchedLogs) valid(p failingPod, rbacState string) bool {
	return l.sig == p.sig && (l.rbacState == rbacState || l.restarts == p.restarts)
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
	maps.DeleteFunc(f.logs, func(uid types.UID, l fetchedLogs) bool {
		p, ok := live[uid]
		return !ok || !l.valid(p, f.rbacState)
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
