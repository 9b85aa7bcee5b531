// Package guard is `dpfdoctor guard`: a controller-runtime manager that keeps
// DPF's DMS pods fixed. It watches the DMS and host-agent pods, the DPU
// Nodes, the DPFOperatorConfig and the RBAC objects dpfdoctor manages through
// one label-selected, namespace-restricted informer cache; on a pod entering
// a failing state it builds an evidence.Bundle from the cache (reading logs
// only for new failure signatures and asking SubjectAccessReviews only when
// the question or the RBAC state changes), runs diagnose.Diagnose, records an
// Event on the pod and exports Prometheus metrics. In repair mode it builds
// the fix with plan.Build and writes it with apply (policy-checked, backed
// up, server-side applied as field manager dpfdoctor), and puts dpfdoctor's
// grant back when it is deleted or altered. Leader election keeps two
// replicas from both acting.
package guard

// deploy/ is charts/dpfdoctor-guard rendered with its default values, so the
// guard's RBAC is written once (docs/guard.md, "Install with Helm").
//go:generate ../../hack/generate-deploy.sh

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/dpfdoctor/dpfdoctor/internal/apply"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/outcome"
)

// Modes.
const (
	// ModeObserve diagnoses, records events and exports metrics; it writes
	// nothing else.
	ModeObserve = "observe"
	// ModeRepair also applies the least-privilege fix and restores it.
	ModeRepair = "repair"
)

// Defaults.
const (
	DefaultMetricsAddr         = ":8443"
	DefaultProbeAddr           = ":8081"
	DefaultLeaderElectionID    = apply.GuardLease
	DefaultMaxLogsPerSignature = 3
	DefaultMaxRepairsPerMinute = 6
	DefaultStartupGrace        = 2 * time.Minute
	DefaultKeepBackups         = 20
	// DefaultQPS and DefaultBurst bound the guard's own client; at steady
	// state it sends nothing but watches.
	DefaultQPS   = 20
	DefaultBurst = 40
	// ControllerName names the controller, its logger and its events'
	// source component.
	ControllerName = "dpfdoctor-guard"
)

// ErrMode is returned for a --mode other than observe or repair.
var ErrMode = errors.New("unknown mode")

// ErrInsecureMetrics is returned for plain-HTTP metrics on an address that
// is not loopback.
var ErrInsecureMetrics = errors.New("insecure metrics address")

// loopback reports whether a host:port address binds to loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && (host == "localhost" || net.ParseIP(host).IsLoopback())
}

// Options configure a guard.
type Options struct {
	// Namespace DPF runs in (default dpf-operator-system).
	Namespace string
	// Mode is ModeObserve (default) or ModeRepair.
	Mode string
	// MetricsAddr serves /metrics ("0" disables; default :8443).
	MetricsAddr string
	// InsecureMetrics serves /metrics over plain HTTP without
	// authentication, on a loopback address only (for local runs). By
	// default /metrics is HTTPS and needs a token allowed `get` on /metrics.
	InsecureMetrics bool
	// MetricsCertDir holds the serving certificate of /metrics (tls.crt,
	// tls.key: a kubernetes.io/tls Secret, such as OpenShift's service-ca
	// issues), reloaded when it changes. Empty: a self-signed certificate.
	MetricsCertDir string
	// ProbeAddr serves /healthz and /readyz ("0" disables; default :8081).
	ProbeAddr string
	// LeaderElect turns on Lease-based leader election.
	LeaderElect bool
	// LeaderElectionID names the Lease (default dpfdoctor-guard), in
	// LeaderElectionNamespace (default Namespace).
	LeaderElectionID        string
	LeaderElectionNamespace string
	// LeaseDuration, RenewDeadline and RetryPeriod tune leader election
	// (controller-runtime's defaults 15 s, 10 s, 2 s when zero).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Identity is this replica's leader-election identity (default:
	// hostname plus a random suffix).
	Identity string
	// MaxLogsPerSignature bounds how many pods' logs are read per failure
	// signature (default 3).
	MaxLogsPerSignature int
	// MaxRepairsPerMinute caps writes (default 6).
	MaxRepairsPerMinute int
	// StartupGrace is how long a pod that has not crashed may take to
	// become Ready before it counts as failing (default 2 min).
	StartupGrace time.Duration
	// BackupDir is where each repair's backup goes (default
	// $TMPDIR/dpfdoctor-guard-backups); the newest KeepBackups are kept.
	BackupDir   string
	KeepBackups int
	// QPS and Burst of the guard's clients (defaults 20 and 40).
	QPS   float32
	Burst int
	// Registry receives the dpfdoctor_* metrics; /metrics serves it with
	// controller-runtime's own. Default: controller-runtime's registry.
	Registry ctrlmetrics.RegistererGatherer
	// Budget, when set, counts every API request the guard makes.
	Budget *kube.Budget
	// Logger is the guard's logger (default: controller-runtime's).
	Logger logr.Logger
	// OnReconcile, when set, is called with each reconcile's duration.
	OnReconcile func(time.Duration)
}

func (o *Options) complete() error {
	o.Namespace = cmp.Or(o.Namespace, dpf.DefaultNamespace)
	o.Mode = cmp.Or(o.Mode, ModeObserve)
	if o.Mode != ModeObserve && o.Mode != ModeRepair {
		return fmt.Errorf("%w %q (want %q or %q)", ErrMode, o.Mode, ModeObserve, ModeRepair)
	}
	o.MetricsAddr = cmp.Or(o.MetricsAddr, DefaultMetricsAddr)
	if o.InsecureMetrics && o.MetricsAddr != "0" && !loopback(o.MetricsAddr) {
		return fmt.Errorf("%w: /metrics without TLS and authentication (--metrics-secure=false) listens on a loopback address only, not %q", ErrInsecureMetrics, o.MetricsAddr)
	}
	o.ProbeAddr = cmp.Or(o.ProbeAddr, DefaultProbeAddr)
	o.LeaderElectionID = cmp.Or(o.LeaderElectionID, DefaultLeaderElectionID)
	o.LeaderElectionNamespace = cmp.Or(o.LeaderElectionNamespace, o.Namespace)
	o.MaxLogsPerSignature = cmp.Or(o.MaxLogsPerSignature, DefaultMaxLogsPerSignature)
	o.MaxRepairsPerMinute = positive(o.MaxRepairsPerMinute, DefaultMaxRepairsPerMinute)
	o.StartupGrace = positive(o.StartupGrace, DefaultStartupGrace)
	o.BackupDir = cmp.Or(o.BackupDir, filepath.Join(os.TempDir(), "dpfdoctor-guard-backups"))
	o.KeepBackups = positive(o.KeepBackups, DefaultKeepBackups)
	o.QPS = positive(o.QPS, DefaultQPS)
	o.Burst = positive(o.Burst, DefaultBurst)
	o.Registry = cmp.Or[ctrlmetrics.RegistererGatherer](o.Registry, ctrlmetrics.Registry)
	if o.Logger.GetSink() == nil {
		o.Logger = ctrllog.Log.WithName(ControllerName)
	}
	if o.OnReconcile == nil {
		o.OnReconcile = func(time.Duration) {}
	}
	if o.Identity == "" {
		host, _ := os.Hostname()
		o.Identity = host + "_" + string(uuid.NewUUID())
	}
	return nil
}

func positive[T int | float32 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Run starts a guard and blocks until ctx is cancelled. A clean shutdown
// returns nil.
func Run(ctx context.Context, cfg *rest.Config, o Options) error {
	g, err := New(cfg, o)
	if err != nil {
		return err
	}
	return g.Start(ctx)
}

// Guard is a configured guard: a controller-runtime manager with the guard's
// controller, metrics endpoint and probes.
type Guard struct {
	cfg     *rest.Config
	mgr     manager.Manager
	opts    Options
	metrics *metrics
	server  *metricsServer
	synced  atomic.Bool
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
	// Every client of the guard shares its QPS/Burst, user agent and budget:
	// each request is counted once.
	cfg = kube.Tune(cfg, o.Budget)
	cfg.QPS, cfg.Burst, cfg.UserAgent = o.QPS, o.Burst, ControllerName
	co, err := cacheOptions(o.Namespace)
	if err != nil {
		return nil, err
	}
	g := &Guard{cfg: cfg, opts: o}
	if err := g.preflight(); err != nil {
		return nil, err
	}
	if g.metrics, err = newMetrics(o.Registry); err != nil {
		return nil, err
	}
	mo := manager.Options{
		Logger:                 o.Logger,
		Cache:                  co,
		Client:                 client.Options{Cache: &client.CacheOptions{Unstructured: true}},
		Metrics:                metricsserver.Options{BindAddress: "0"}, // served by metricsServer
		HealthProbeBindAddress: o.ProbeAddr,                             // "0": none
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
		LeaderElection:         o.LeaderElect,
		LeaderElectionID:       o.LeaderElectionID,
		// The rest only matters with LeaderElection.
		LeaderElectionNamespace:       o.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 optional(o.LeaseDuration),
		RenewDeadline:                 optional(o.RenewDeadline),
		RetryPeriod:                   optional(o.RetryPeriod),
	}
	if o.LeaderElect {
		if mo.LeaderElectionResourceLockInterface, err = leaseLock(cfg, o); err != nil {
			return nil, err
		}
	}
	if g.mgr, err = manager.New(cfg, mo); err != nil {
		return nil, fmt.Errorf("guard: manager: %w", kube.Classify(err))
	}
	// Without o.Budget the clients' budget counts nothing: the config has no counter.
	clients, err := kube.ForConfig(cfg, o.Namespace, cmp.Or(o.Budget, kube.NewBudget(0)))
	if err != nil {
		return nil, fmt.Errorf("guard: client: %w", err)
	}
	if err := g.addReconciler(clients); err != nil {
		return nil, fmt.Errorf("guard: controller: %w", err)
	}
	if err := g.addRunnables(); err != nil {
		return nil, err
	}
	return g, nil
}

// optional is &d, or nil (controller-runtime's default) unless d is positive.
func optional(d time.Duration) *time.Duration {
	if d <= 0 {
		return nil
	}
	return &d
}

// leaseLock is the Lease the replicas compete for, with a known identity.
func leaseLock(cfg *rest.Config, o Options) (resourcelock.Interface, error) {
	cs, err := kubernetes.NewForConfig(rest.AddUserAgent(rest.CopyConfig(cfg), "leader-election"))
	if err != nil {
		return nil, fmt.Errorf("guard: leader election client: %w", err)
	}
	// The leader labels the Lease with its mode, so that rollback can tell
	// a guard that repairs (apply.FindGuard).
	lock, err := resourcelock.NewWithLabels(resourcelock.LeasesResourceLock, o.LeaderElectionNamespace, o.LeaderElectionID,
		cs.CoreV1(), cs.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: o.Identity}, map[string]string{apply.GuardModeLabel: o.Mode})
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
	if g.opts.MetricsAddr == "0" {
		return nil
	}
	var err error
	if g.server, err = newMetricsServer(g.cfg, g.opts); err != nil {
		return err
	}
	return g.mgr.Add(g.server)
}

// Start runs the guard until ctx is cancelled; a clean shutdown returns nil.
func (g *Guard) Start(ctx context.Context) error {
	if err := g.mgr.Start(ctx); err != nil && ctx.Err() == nil {
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
	if slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Kind == operatorConfigGVK.Kind }) {
		return nil
	}
	return fmt.Errorf("%w: %s serves no %s", outcome.ErrNotInstalled, gv, operatorConfigGVK.Kind)
}

// MetricsAddr returns the address /metrics listens on once it does, ""
// until then or when disabled.
func (g *Guard) MetricsAddr() string { return g.server.Addr() }

// everyReplica runs fn on every replica, not only the leader.
type everyReplica func(ctx context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (everyReplica) NeedLeaderElection() bool          { return false }
