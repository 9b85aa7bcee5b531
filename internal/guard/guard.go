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

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/dpfdoctor/dpfdoctor/internal/apply"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
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
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// RegistererGatherer is a Prometheus registry: where the guard registers its
// metrics and what its /metrics endpoint serves.
type RegistererGatherer interface {
	prometheus.Registerer
	prometheus.Gatherer
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
	Registry RegistererGatherer
	// Budget, when set, counts every API request the guard makes.
	Budget *kube.Budget
	// Logger is the guard's logger (default: controller-runtime's).
	Logger logr.Logger
	// OnReconcile, when set, is called with each reconcile's duration.
	OnReconcile func(time.Duration)
}

func (o *Options) complete() error {
	o.Namespace = cmp.Or(o.Namespace, dpf.DefaultNamespace)
	switch o.Mode {
	case "":
		o.Mode = ModeObserve
	case ModeObserve, ModeRepair:
	default:
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
	if o.MaxRepairsPerMinute <= 0 {
		o.MaxRepairsPerMinute = DefaultMaxRepairsPerMinute
	}
	if o.StartupGrace <= 0 {
		o.StartupGrace = DefaultStartupGrace
	}
	o.BackupDir = cmp.Or(o.BackupDir, filepath.Join(os.TempDir(), "dpfdoctor-guard-backups"))
	if o.KeepBackups <= 0 {
		o.KeepBackups = DefaultKeepBackups
	}
	if o.QPS <= 0 {
		o.QPS = DefaultQPS
	}
	if o.Burst <= 0 {
		o.Burst = DefaultBurst
	}
	if o.Registry == nil {
		o.Registry = ctrlmetrics.Registry
	}
	return nil
}

// tune returns the rest.Config every client of the guard uses: explicit
// QPS/Burst, a user agent, and the request counter when one is set.
func (o *Options) tune(cfg *rest.Config) *rest.Config {
	c := kube.Tune(cfg, o.Budget)
	c.QPS, c.Burst = o.QPS, o.Burst
	c.UserAgent = ControllerName
	return c
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
