package guard

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/rest"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/dpfdoctor/dpfdoctor/internal/buildinfo"
)

// Repair results, the values of dpfdoctor_repairs_total{result}.
const (
	ResultApplied = "applied" // objects were written
	ResultNoOp    = "noop"    // apply found everything in place
	ResultFailed  = "failed"  // the write failed (rolled back by apply)
	ResultRefused = "refused" // the policy refused the plan
)

// Metric names.
const (
	MetricDMSPods     = "dpfdoctor_dms_pods"
	MetricFindings    = "dpfdoctor_findings"
	MetricRepairs     = "dpfdoctor_repairs_total"
	MetricTimeToReady = "dpfdoctor_time_to_ready_seconds"
	MetricLeader      = "dpfdoctor_guard_leader"
	MetricBuildInfo   = "dpfdoctor_build_info"
	MetricPaused      = "dpfdoctor_guard_paused"
)

// metrics are the guard's own Prometheus metrics.
type metrics struct {
	pods        *prometheus.GaugeVec
	findings    *prometheus.GaugeVec
	repairs     *prometheus.CounterVec
	timeToReady prometheus.Histogram
	leader      prometheus.Gauge
	paused      prometheus.Gauge
	upgrade     *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		pods: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricDMSPods,
			Help: "DMS and host-agent pods by state, as kubectl shows it (Running, Init:CrashLoopBackOff, ...)."}, []string{"state"}),
		findings: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricFindings,
			Help: "Pods by the primary class of their diagnosis (Healthy for Ready pods)."}, []string{"class"}),
		repairs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricRepairs,
			Help: "Repairs attempted by result: applied, noop, failed, refused."}, []string{"result"}),
		timeToReady: prometheus.NewHistogram(prometheus.HistogramOpts{Name: MetricTimeToReady,
			Help:    "Seconds from the guard first seeing a pod fail to the pod being Ready.",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600}}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricLeader,
			Help: "1 while this replica holds the leader lease (or runs without leader election)."}),
		paused: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricPaused,
			Help: "1 while the DPFOperatorConfig's dpfdoctor.dev/guard-paused annotation pauses repairs."}),
		upgrade: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricUpgradeFindings,
			Help: "Findings of `dpfdoctor preflight`'s check for the DPF version the installation reports, by code; checked when that version changes."}, []string{"version", "code"}),
	}
	for _, r := range []string{ResultApplied, ResultNoOp, ResultFailed, ResultRefused} {
		m.repairs.WithLabelValues(r)
	}
	bi := buildinfo.Get()
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricBuildInfo,
		Help: "Always 1; the labels name the guard's build."}, []string{"version", "commit", "go_version"})
	var err error
	register(reg, info, &err).WithLabelValues(bi.Version, bi.Commit, bi.GoVersion).Set(1)
	m.pods = register(reg, m.pods, &err)
	m.findings = register(reg, m.findings, &err)
	m.repairs = register(reg, m.repairs, &err)
	m.timeToReady = register(reg, m.timeToReady, &err)
	m.leader = register(reg, m.leader, &err)
	m.paused = register(reg, m.paused, &err)
	m.upgrade = register(reg, m.upgrade, &err)
	if err != nil {
		return nil, fmt.Errorf("guard: register metrics: %w", err)
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// its name (a second guard in the same process shares the metrics).
func register[C prometheus.Collector](reg prometheus.Registerer, c C, errp *error) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		if *errp == nil {
			*errp = err
		}
	}
	return c
}

// setCounts replaces a gauge vector's values with counts.
func setCounts(g *prometheus.GaugeVec, counts map[string]int) {
	g.Reset()
	for k, n := range counts {
		g.WithLabelValues(k).Set(float64(n))
	}
}

// metricsServer serves /metrics on every replica: controller-runtime's
// registry (controller, workqueue and client-go metrics) and the guard's.
// Secure, it serves TLS (a self-signed certificate, as controller-runtime's
// own metrics server does) and lets a request through only when its bearer
// token passes a TokenReview and a SubjectAccessReview for `get` on the
// /metrics non-resource URL (controller-runtime's metrics filter).
type metricsServer struct {
	addr    string
	reg     RegistererGatherer
	filter  metricsserver.Filter // nil: plain HTTP, no authentication
	certDir string               // serve its tls.crt and tls.key once there; "" self-signed
	log     logr.Logger

	mu    sync.Mutex
	bound string
}

func newMetricsServer(cfg *rest.Config, o Options) (*metricsServer, error) {
	s := &metricsServer{addr: o.MetricsAddr, reg: o.Registry, log: o.Logger, certDir: o.MetricsCertDir}
	if o.InsecureMetrics {
		return s, nil
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("guard: metrics client: %w", err)
	}
	if s.filter, err = filters.WithAuthenticationAndAuthorization(cfg, hc); err != nil {
		return nil, fmt.Errorf("guard: metrics authentication: %w", err)
	}
	return s, nil
}

func (s *metricsServer) NeedLeaderElection() bool { return false }

func (s *metricsServer) Start(ctx context.Context) error {
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("metrics: listen on %s: %w", s.addr, err)
	}
	s.mu.Lock()
	s.bound = l.Addr().String()
	s.mu.Unlock()
	var g prometheus.Gatherer = s.reg
	if s.reg != ctrlmetrics.Registry {
		g = prometheus.Gatherers{ctrlmetrics.Registry, s.reg}
	}
	h := promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	if s.filter == nil {
		s.log.Info("serving metrics over plain HTTP without authentication (--metrics-secure=false): for local runs only", "address", s.bound)
	} else {
		if h, err = s.filter(s.log.WithName("metrics"), h); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		sc, err := newServingCert(ctx, s.certDir, s.log)
		if err != nil {
			return err
		}
		l = tls.NewListener(l, &tls.Config{GetCertificate: sc.get, MinVersion: tls.VersionTLS12})
		s.log.Info("serving metrics over HTTPS to authenticated, authorized clients", "address", s.bound)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("metrics: %w", err)
	}
}

// Addr is the bound address once listening, else "".
func (s *metricsServer) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bound
}
