package guard

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	kwait "k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	certutil "k8s.io/client-go/util/cert"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
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
	var err error
	m := &metrics{
		pods: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricDMSPods,
			Help: "DMS and host-agent pods by state, as kubectl shows it (Running, Init:CrashLoopBackOff, ...)."}, []string{"state"}), &err),
		findings: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricFindings,
			Help: "Pods by the primary class of their diagnosis (Healthy for Ready pods)."}, []string{"class"}), &err),
		repairs: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricRepairs,
			Help: "Repairs attempted by result: applied, noop, failed, refused."}, []string{"result"}), &err),
		timeToReady: register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{Name: MetricTimeToReady,
			Help:    "Seconds from the guard first seeing a pod fail to the pod being Ready.",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600}}), &err),
		leader: register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricLeader,
			Help: "1 while this replica holds the leader lease (or runs without leader election)."}), &err),
		paused: register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricPaused,
			Help: "1 while the DPFOperatorConfig's dpfdoctor.dev/guard-paused annotation pauses repairs."}), &err),
		upgrade: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricUpgradeFindings,
			Help: "Findings of `dpfdoctor preflight`'s check for the DPF version the installation reports, by code; checked when that version changes."}, []string{"version", "code"}), &err),
	}
	for _, r := range []string{ResultApplied, ResultNoOp, ResultFailed, ResultRefused} {
		m.repairs.WithLabelValues(r)
	}
	bi := buildinfo.Get()
	register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricBuildInfo, Help: "Always 1; the labels name the guard's build."},
		[]string{"version", "commit", "go_version"}), &err).WithLabelValues(bi.Version, bi.Commit, bi.GoVersion).Set(1)
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
		*errp = errors.Join(*errp, err)
	}
	return c
}

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
	o      Options                // MetricsAddr, Registry, MetricsCertDir, Logger
	filter metricsserver.Filter   // nil: plain HTTP, no authentication
	bound  atomic.Pointer[string] // the address, once listening
}

func newMetricsServer(cfg *rest.Config, o Options) (*metricsServer, error) {
	s := &metricsServer{o: o}
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
	log := s.o.Logger
	l, err := net.Listen("tcp", s.o.MetricsAddr)
	if err != nil {
		return fmt.Errorf("metrics: listen on %s: %w", s.o.MetricsAddr, err)
	}
	bound := l.Addr().String()
	s.bound.Store(&bound)
	var g prometheus.Gatherer = s.o.Registry
	if s.o.Registry != ctrlmetrics.Registry {
		g = prometheus.Gatherers{ctrlmetrics.Registry, s.o.Registry}
	}
	h := promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	if s.filter == nil {
		log.Info("serving metrics over plain HTTP without authentication (--metrics-secure=false): for local runs only", "address", bound)
	} else {
		if h, err = s.filter(log.WithName("metrics"), h); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		sc, err := newServingCert(ctx, s.o.MetricsCertDir, log)
		if err != nil {
			return err
		}
		l = tls.NewListener(l, &tls.Config{GetCertificate: sc.get, MinVersion: tls.VersionTLS12})
		log.Info("serving metrics over HTTPS to authenticated, authorized clients", "address", bound)
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

// Addr is the bound address once listening, else "" (also when s is nil:
// metrics disabled).
func (s *metricsServer) Addr() string {
	if s == nil || s.bound.Load() == nil {
		return ""
	}
	return *s.bound.Load()
}

// servingCert is the certificate /metrics serves: self-signed, until the
// --metrics-cert-dir holds tls.crt and tls.key (OpenShift's service CA
// writes them into a Secret that may appear after the pod starts, and
// rotates them); from then on those, reloaded as they change.
type servingCert struct {
	self    tls.Certificate
	watched atomic.Pointer[certwatcher.CertWatcher]
}

func newServingCert(ctx context.Context, dir string, log logr.Logger) (*servingCert, error) {
	cert, key, err := certutil.GenerateSelfSignedCertKey("localhost", []net.IP{{127, 0, 0, 1}}, nil)
	if err != nil {
		return nil, fmt.Errorf("metrics: self-signed certificate: %w", err)
	}
	s := &servingCert{}
	if s.self, err = tls.X509KeyPair(cert, key); err != nil {
		return nil, fmt.Errorf("metrics: self-signed certificate: %w", err)
	}
	if dir != "" {
		go s.watch(ctx, filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), log)
	}
	return s, nil
}

// watch waits for the certificate files, then serves and watches them.
func (s *servingCert) watch(ctx context.Context, crt, key string, log logr.Logger) {
	var cw *certwatcher.CertWatcher
	if kwait.PollUntilContextCancel(ctx, 5*time.Second, true, func(context.Context) (bool, error) {
		if _, err := os.Stat(crt); err != nil {
			return false, nil
		}
		var err error
		if cw, err = certwatcher.New(crt, key); err != nil {
			log.Error(err, "metrics certificate: keeping the self-signed one", "file", crt)
		}
		return err == nil, nil
	}) != nil {
		return // cancelled
	}
	s.watched.Store(cw)
	log.Info("serving the metrics certificate from a file", "file", crt)
	if err := cw.Start(ctx); err != nil {
		log.Error(err, "watching the metrics certificate")
	}
}

func (s *servingCert) get(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if cw := s.watched.Load(); cw != nil {
		return cw.GetCertificate(hello)
	}
	return &s.self, nil
}
