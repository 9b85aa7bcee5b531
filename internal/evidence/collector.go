package evidence

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/buildinfo"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
)

// Defaults for Options.
const (
	DefaultLogBudget   = 200
	DefaultMaxLogs     = 10000
	DefaultConcurrency = 8
)

// Options select what Collect gathers.
type Options struct {
	// Namespace DPF is installed in; "" means the clients' namespace (-n),
	// else dpf-operator-system.
	Namespace string
	// Nodes limits pods, Nodes and per-node objects to these nodes.
	Nodes []string
	// LogBudget: with at most this many failing pods every one's logs are
	// read; above it, a sample per failure signature, and the whole
	// signature when the sample disagrees. 0 means DefaultLogBudget.
	LogBudget int
	// MaxLogs caps the number of pods whose logs are read, in total: 0
	// means DefaultMaxLogs, a negative number none.
	MaxLogs int
	// Progress, when set, is told how many of the pods chosen for reading
	// after a sample disagreed have been read.
	Progress func(read, total int)
	// Concurrency bounds parallel log reads and access reviews; 0 means
	// DefaultConcurrency.
	Concurrency int
	// Upgrade reads the DPUDevice CRD and the Issuers even when no pod
	// needs them now: an upgrade preflight checks them for the next version.
	Upgrade bool
	// Pods, when set, are the namespace's pods as a watch holds them (the
	// fix's recovery): a Refresh takes the DMS and host-agent pods among
	// them instead of listing them again.
	Pods []*corev1.Pod
}

// Collector gathers a Bundle with a request count that does not grow with
// the number of pods, apart from log reads (see Options.LogBudget).
type Collector struct {
	Clients *kube.Clients
}

// Collect gathers the evidence. It fails with an error wrapping
// outcome.ErrNotInstalled when DPF is not there, kube.ErrInsufficientRights
// when even the DPFOperatorConfig or the pods cannot be listed, and the
// kube.Classify sentinels for transport and authentication failures. Other
// refused reads are recorded as Gaps.
func (c *Collector) Collect(ctx context.Context, o Options) (*Bundle, error) {
	return c.collect(ctx, o, nil)
}

// Refresh collects again, with the same options, what a fix changes or
// proves: the pods, their events, the access reviews and the failing pods'
// logs. The rest (the DPFOperatorConfig and the version, Deployments, DPF
// and cert-manager objects, Nodes, Secret names, the RBAC objects and their
// gaps) it takes from prev, collected shortly before: a fix does not touch
// them, or, for the RBAC objects it writes, has just read them itself and
// put them into prev (see doctor's rediagnose), so reading them again would
// only repeat prev's answers.
func (c *Collector) Refresh(ctx context.Context, prev *Bundle, o Options) (*Bundle, error) {
	if prev == nil {
		return nil, errors.New("refresh evidence: no earlier bundle")
	}
	return c.collect(ctx, o, prev)
}

// refreshed are the gaps Refresh finds anew; prev's other gaps carry over.
var refreshed = map[string]bool{"events": true, "pods/log": true, ReviewsRefused().What: true}

func (c *Collector) collect(ctx context.Context, o Options, prev *Bundle) (*Bundle, error) {
	if c == nil || c.Clients == nil {
		return nil, errors.New("collect evidence: no clients")
	}
	o = o.withDefaults(c.Clients.Namespace)
	start := c.Clients.Budget.Used()
	r := &run{
		cl:    c.Clients,
		o:     o,
		nodes: sets.New(o.Nodes...),
		b:     &Bundle{SchemaVersion: SchemaVersion, CollectedAt: time.Now().UTC().Format(time.RFC3339), CollectedBy: "dpfdoctor " + buildinfo.Get().Version, NodeFilter: o.Nodes},
	}
	r.b.Install.Namespace = o.Namespace
	// Phase 1: every LIST that needs nothing else, at once. The
	// DPFOperatorConfig's error comes first (no DPF, no rights), then the
	// pods'; other refusals are gaps.
	// A refresh lists only what a fix changes (see Refresh).
	lists := []func() error{
		func() error { return r.pods(ctx, prev != nil) },
		func() error { return r.events(ctx) },
	}
	if prev == nil {
		lists = append([]func() error{func() error { return r.operatorConfig(ctx) }}, lists...)
		lists = append(lists,
			func() error { return r.deployments(ctx) },
			func() error { return r.objects(ctx) },
			func() error { return r.nodeList(ctx) },
			func() error { return r.secrets(ctx) },
			func() error { return r.rbacBindings(ctx) },
		)
	}
	if err := parallel(lists...); err != nil {
		return nil, err
	}
	if prev == nil {
		r.detectVersion()
	} else {
		r.carry(prev)
	}
	// v25.1's DMS pods carry no label: find them by name and owner.
	if r.needPerDPUPods() {
		if err := r.perDPUPods(ctx); err != nil {
			return nil, err
		}
	}
	if prev == nil {
		if err := r.b.CheckNodes(o.Nodes); err != nil {
			return nil, err
		}
	}
	r.keepEvents()
	// Phase 2: what depends on the pods: the roles their ServiceAccounts'
	// bindings reference, and the DPUDevice CRD and Issuers when needed.
	if prev == nil {
		more := []func() error{func() error { return r.rbacRoles(ctx) }}
		if r.o.Upgrade || r.needCRD() {
			more = append(more, func() error { return r.dpuDeviceCRD(ctx) })
		}
		if r.o.Upgrade || r.needIssuers() {
			more = append(more, func() error { return r.objectList(ctx, issuerList) })
		}
		if err := parallel(more...); err != nil {
			return nil, err
		}
		r.versionFromCRDs()
	}
	// Phase 3: access reviews and log reads, side by side.
	r.rbacOK = r.rbacComplete()
	if err := parallel(func() error { return r.access(ctx) }, func() error { return r.logs(ctx) }); err != nil {
		return nil, err
	}
	sort.SliceStable(r.b.Gaps, func(i, j int) bool { return r.b.Gaps[i].What < r.b.Gaps[j].What })
	r.b.Requests = c.Clients.Budget.Used() - start
	return r.b, nil
}

// carry takes from prev what a refresh does not list again.
func (r *run) carry(prev *Bundle) {
	b := r.b
	b.Install, b.DPUNodes, b.DPUDevices, b.Certificates, b.Issuers = prev.Install, prev.DPUNodes, prev.DPUDevices, prev.Certificates, prev.Issuers
	b.Nodes, b.Secrets, b.SecretsListed, b.RBAC = prev.Nodes, prev.Secrets, prev.SecretsListed, prev.RBAC
	for _, g := range prev.Gaps {
		if !refreshed[g.What] {
			b.Gaps = append(b.Gaps, g)
		}
	}
}

// fromCache lets the API server answer a LIST from its watch cache
// (resourceVersion "0") instead of a quorum read from etcd: much cheaper for
// thousands of pods, and at most a moment stale, which a diagnosis of
// crash-looping pods tolerates.
var fromCache = metav1.ListOptions{ResourceVersion: "0"}

// run is one collection: the Bundle being filled and what fills it.
type run struct {
	cl    *kube.Clients
	o     Options
	nodes sets.Set[string] // --node filter; empty = every node
	mu    sync.Mutex       // guards b while lists run in parallel
	b     *Bundle
	// deployments are kept for version detection only.
	deploymentImages []deploymentImage
	configLabels     map[string]string
	// Lists kept between phases.
	rawEvents           []corev1.Event
	crbs                []rbacv1.ClusterRoleBinding
	rbs                 []rbacv1.RoleBinding
	crbFailed, rbFailed bool
	// rbacOK is true when every RBAC list succeeded.
	rbacOK bool
}

func (o Options) withDefaults(clientNamespace string) Options {
	o.Namespace = cmp.Or(o.Namespace, clientNamespace, dpf.DefaultNamespace)
	o.MaxLogs = cmp.Or(o.MaxLogs, DefaultMaxLogs)
	if o.LogBudget <= 0 {
		o.LogBudget = DefaultLogBudget
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	o.Nodes = uniqueSorted(o.Nodes)
	return o
}

// optional turns a refused or absent list into a Gap; other errors are
// classified and returned.
func (r *run) optional(what string, req access.Request, impact string, err error) error {
	if err == nil {
		return nil
	}
	g := Gap{What: what, Impact: impact}
	switch {
	case apierrors.IsForbidden(err):
		g.Reason = "forbidden: " + req.String()
		g.Request = &req
	case apierrors.IsNotFound(err):
		g.Reason = "not served by this cluster (is its CRD installed?)"
	default:
		return fmt.Errorf("list %s: %w", what, kube.Classify(err))
	}
	r.gap(g)
	return nil
}

func (r *run) gap(g Gap) {
	r.mu.Lock()
	r.b.Gaps = append(r.b.Gaps, g)
	r.mu.Unlock()
}

// parallel runs fns concurrently and returns the first error.
func parallel(fns ...func() error) error {
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Go(func() { errs[i] = fn() })
	}
	wg.Wait()
	return cmp.Or(errs...) // the first error in the order of fns
}

// keep reports whether a node passes the --node filter.
func (r *run) keep(node string) bool { return r.nodes.Len() == 0 || r.nodes.Has(node) }

func uniqueSorted(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	return sets.List(sets.New(in...).Delete(""))
}
