package guard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync/atomic"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/dpfdoctor/dpfdoctor/internal/apply"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/outcome"
)

// Guard is a configured guard: a controller-runtime manager with the guard's
// controller, metrics endpoint and probes.
type Guard struct {
	cfg      *rest.Config
	mgr      manager.Manager
	opts     Options
	identity string
	metrics  *metrics
	server   *metricsServer
	synced   atomic.Bool
}

// New builds a guard from a client config (the in-cluster ServiceAccount's,
// or a kubeconfig's). It asks the API server (discovery, one request)
// whether it serves the DPFOperatorConfig kind, and fails fast with
// outcome.ErrNotInstalled or a kube sentinel otherwise.
func New(cfg *rest.Config, o Options) (*Guard, error) {
	if cfg == nil {
		return nil, errors.New("guard: no client config")
	}
	if err := o.complete(); err != nil {
		return nil, err
	}
	if o.Logger.GetSink() == nil {
		o.Logger = ctrllog.Log.WithName(ControllerName)
	}
	cfg = o.tune(cfg)
	sel, err := newSelectors()
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("guard: scheme: %w", err)
	}
	g := &Guard{cfg: cfg, opts: o, identity: o.Identity}
	if err := g.preflight(); err != nil {
		return nil, err
	}
	if g.identity == "" {
		host, _ := os.Hostname()
		g.identity = host + "_" + string(uuid.NewUUID())
	}
	if g.metrics, err = newMetrics(o.Registry); err != nil {
		return nil, err
	}
	skip := true
	mo := manager.Options{
		Scheme:                 scheme,
		Logger:                 o.Logger,
		Cache:                  cacheOptions(o.Namespace, sel),
		Client:                 client.Options{Cache: &client.CacheOptions{Unstructured: true}},
		Metrics:                metricsserver.Options{BindAddress: "0"}, // served by metricsServer
		HealthProbeBindAddress: o.ProbeAddr,
		Controller:             config.Controller{SkipNameValidation: &skip},
	}
	if o.ProbeAddr == "0" {
		mo.HealthProbeBindAddress = ""
	}
	if o.LeaderElect {
		lock, err := leaseLock(cfg, o, g.identity)
		if err != nil {
			return nil, err
		}
		mo.LeaderElection = true
		mo.LeaderElectionID = o.LeaderElectionID
		mo.LeaderElectionNamespace = o.LeaderElectionNamespace
		mo.LeaderElectionResourceLockInterface = lock
		mo.LeaderElectionReleaseOnCancel = true
		if o.LeaseDuration > 0 {
			mo.LeaseDuration = &o.LeaseDuration
		}
		if o.RenewDeadline > 0 {
			mo.RenewDeadline = &o.RenewDeadline
		}
		if o.RetryPeriod > 0 {
			mo.RetryPeriod = &o.RetryPeriod
		}
	}
	if g.mgr, err = manager.New(cfg, mo); err != nil {
		return nil, fmt.Errorf("guard: manager: %w", kube.Classify(err))
	}
	clients, err := newClients(cfg, o.Namespace, o.Budget)
	if err != nil {
		return nil, err
	}
	r, err := newReconciler(g, clients)
	if err != nil {
		return nil, err
	}
	if err := r.setup(g.mgr); err != nil {
		return nil, fmt.Errorf("guard: controller: %w", err)
	}
	if err := g.addRunnables(); err != nil {
		return nil, err
	}
	return g, nil
}

// newClients builds the direct clients (logs, reviews, apply) from the
// already tuned config, so that requests are counted once.
func newClients(cfg *rest.Config, namespace string, b *kube.Budget) (*kube.Clients, error) {
	if b == nil {
		b = kube.NewBudget(0)
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("guard: client: %w", err)
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("guard: client: %w", err)
	}
	mc, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("guard: client: %w", err)
	}
	return &kube.Clients{Config: cfg, Kube: kc, Dynamic: dc, Metadata: mc, Namespace: namespace, Budget: b}, nil
}

// leaseLock is the Lease the replicas compete for, with a known identity.
func leaseLock(cfg *rest.Config, o Options, identity string) (resourcelock.Interface, error) {
	cs, err := kubernetes.NewForConfig(rest.AddUserAgent(rest.CopyConfig(cfg), "leader-election"))
	if err != nil {
		return nil, fmt.Errorf("guard: leader election client: %w", err)
	}
	// The leader labels the Lease with its mode, so that rollback can tell
	// a guard that repairs (apply.FindGuard).
	lock, err := resourcelock.NewWithLabels(resourcelock.LeasesResourceLock, o.LeaderElectionNamespace, o.LeaderElectionID,
		cs.CoreV1(), cs.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: identity}, map[string]string{apply.GuardModeLabel: o.Mode})
	if err != nil {
		return nil, fmt.Errorf("guard: leader election lock: %w", err)
	}
	return lock, nil
}

func (g *Guard) addRunnables() error {
	if err := g.mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("guard: healthz: %w", err)
	}
	if err := g.mgr.AddReadyzCheck("readyz", func(*http.Request) error {
		if !g.synced.Load() {
			return errors.New("informer cache not synced yet")
		}
		return nil
	}); err != nil {
		return fmt.Errorf("guard: readyz: %w", err)
	}
	// Readiness: every replica, leader or not, once its cache is synced.
	if err := g.mgr.Add(everyReplica(func(ctx context.Context) error {
		if g.mgr.GetCache().WaitForCacheSync(ctx) {
			g.synced.Store(true)
		}
		<-ctx.Done()
		return nil
	})); err != nil {
		return err
	}
	// dpfdoctor_guard_leader: 1 while this replica leads.
	if err := g.mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		g.metrics.leader.Set(1)
		<-ctx.Done()
		g.metrics.leader.Set(0)
		return nil
	})); err != nil {
		return err
	}
	if g.opts.MetricsAddr != "0" {
		s, err := newMetricsServer(g.cfg, g.opts)
		if err != nil {
			return err
		}
		g.server = s
		if err := g.mgr.Add(s); err != nil {
			return err
		}
	}
	return nil
}

// Start runs the guard until ctx is cancelled; a clean shutdown returns nil.
func (g *Guard) Start(ctx context.Context) error {
	err := g.mgr.Start(ctx)
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("guard: %w", kube.Classify(err))
	}
	return nil
}

// preflight fails fast, with the sentinel the exit codes use, when the API
// server cannot be reached or does not serve the DPFOperatorConfig kind
// (the watches would otherwise retry until the cache-sync timeout).
func (g *Guard) preflight() error {
	dc, err := discovery.NewDiscoveryClientForConfig(g.cfg)
	if err != nil {
		return fmt.Errorf("guard: %w", err)
	}
	gv := operatorConfigGVK.GroupVersion().String()
	list, err := dc.ServerResourcesForGroupVersion(gv)
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%w: the cluster serves no %s (install the DPF operator, or point --kubeconfig/--context at the cluster that has it)", outcome.ErrNotInstalled, gv)
	case err != nil:
		return fmt.Errorf("guard: discover %s: %w", gv, kube.Classify(err))
	}
	for _, r := range list.APIResources {
		if r.Kind == operatorConfigGVK.Kind {
			return nil
		}
	}
	return fmt.Errorf("%w: %s serves no %s", outcome.ErrNotInstalled, gv, operatorConfigGVK.Kind)
}

// Identity is this replica's leader-election identity.
func (g *Guard) Identity() string { return g.identity }

// MetricsAddr returns the address /metrics listens on once it does, ""
// until then or when disabled.
func (g *Guard) MetricsAddr() string {
	if g.server == nil {
		return ""
	}
	return g.server.Addr()
}

// everyReplica runs fn on every replica, not only the leader.
type everyReplica func(ctx context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (everyReplica) NeedLeaderElection() bool          { return false }
