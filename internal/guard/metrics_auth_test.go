package guard

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/dpfdoctor/dpfdoctor/internal/selfsigned"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// TestMetricsAuthenticated serves /metrics as deploy/ runs the guard (HTTPS,
// TokenReview and SubjectAccessReview as the guard's own ServiceAccount)
// and scrapes it with no token, a token without rights and a token bound
// to deploy/'s metrics-reader ClusterRole.
func TestMetricsAuthenticated(t *testing.T) {
	t.Parallel()
	e := startEnv(t, sim.Options{Nodes: 1, Scenario: "healthy"})
	ctx := context.Background()
	ns := e.c.Namespace
	token := func(sa string) string {
		t.Helper()
		if _, err := e.cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tr, err := e.cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authnv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	reader, nobody := token("prometheus"), token("nobody")
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "prometheus-metrics"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "dpfdoctor-guard-metrics-reader"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "prometheus", Namespace: ns}}}
	if _, err := e.cs.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	g, err := New(e.guardCfg, Options{Namespace: ns, MetricsAddr: "127.0.0.1:0", ProbeAddr: "0",
		Registry: prometheus.NewRegistry(), BackupDir: t.TempDir(), Logger: testLogger("guard")})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 2)
	go func() { done <- g.Start(runCtx) }()
	defer cancel()
	e.eventually(30*time.Second, "metrics endpoint listening", func() bool { return g.MetricsAddr() != "" })

	// The guard's certificate is self-signed; the token is what counts. Each
	// scrape waits on a TokenReview and an access review: on two busy cores
	// that took more than 10 s.
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // self-signed
	get := func(scheme, tok string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, scheme+"://"+g.MetricsAddr()+"/metrics", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET /metrics: %v", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, _ := get("http", reader); code != http.StatusBadRequest {
		t.Errorf("plain HTTP: %d, want 400 (the endpoint speaks TLS only)", code)
	}
	for _, c := range []struct {
		name, token string
		want        int
	}{{"no token", "", http.StatusUnauthorized}, {"a token without rights", nobody, http.StatusForbidden}} {
		if code, _ := get("https", c.token); code != c.want {
			t.Errorf("%s: %d, want %d", c.name, code, c.want)
		}
	}
	var body string
	e.eventually(30*time.Second, "the guard's metrics for the metrics-reader token", func() bool {
		var code int
		code, body = get("https", reader)
		return code == http.StatusOK && strings.Contains(body, MetricDMSPods)
	})
	m := parseMetrics(t, strings.NewReader(body))
	if len(m.with(MetricBuildInfo)) != 1 || len(m.with(MetricRepairs)) != 4 {
		t.Errorf("build info %v, repairs %v", m.with(MetricBuildInfo), m.with(MetricRepairs))
	}

	// With --metrics-cert-dir (OpenShift's service-ca Secret, mounted), a
	// scraper verifies the certificate against the CA and the server name
	// (the Service's DNS name there, the loopback address here).
	const serverName = "127.0.0.1"
	files, pool := writeServingCert(t, serverName)
	dir := t.TempDir() // the Secret, mounted optional, is filled in after the pod starts
	v, err := New(e.guardCfg, Options{Namespace: ns, MetricsAddr: "127.0.0.1:0", MetricsCertDir: dir, ProbeAddr: "0",
		Registry: prometheus.NewRegistry(), BackupDir: t.TempDir(), Logger: testLogger("guard-tls")})
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- v.Start(runCtx) }()
	e.eventually(30*time.Second, "verified metrics endpoint listening", func() bool { return v.MetricsAddr() != "" })
	scrape := func(cfg *tls.Config) (int, error) {
		c := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: cfg}}
		req, _ := http.NewRequest(http.MethodGet, "https://"+v.MetricsAddr()+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+reader)
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	verified := &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
	if _, err := scrape(verified); err == nil {
		t.Error("the self-signed certificate verified")
	}
	for _, f := range []string{"tls.crt", "tls.key"} {
		if err := os.Rename(filepath.Join(files, f), filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	e.eventually(30*time.Second, "a verified scrape once the certificate is there", func() bool {
		code, err := scrape(verified)
		return err == nil && code == http.StatusOK
	})
	if _, err := scrape(&tls.Config{RootCAs: pool, ServerName: "other.svc", MinVersion: tls.VersionTLS12}); err == nil {
		t.Error("a scrape for another server name verified")
	}
	if _, err := scrape(&tls.Config{MinVersion: tls.VersionTLS12}); err == nil {
		t.Error("a scrape without the CA verified")
	}
	cancel()
	for range 2 {
		if err := <-done; err != nil {
			t.Errorf("guard: %v", err)
		}
	}
}

// writeServingCert writes tls.crt and tls.key for the IP address name,
// signed by a new CA, as a kubernetes.io/tls Secret mounts them, and
// returns the directory and a pool with the CA.
func writeServingCert(t *testing.T, name string) (string, *x509.CertPool) {
	t.Helper()
	ca, crt, key, err := selfsigned.Issue(name)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for file, data := range map[string][]byte{"tls.crt": crt, "tls.key": key} {
		if err := os.WriteFile(filepath.Join(dir, file), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatal("no CA")
	}
	return dir, pool
}

func TestInsecureMetricsLoopbackOnly(t *testing.T) {
	for addr, ok := range map[string]bool{"127.0.0.1:0": true, "[::1]:8080": true, "localhost:8080": true,
		":8080": false, "0.0.0.0:8080": false, "192.0.2.1:8080": false, "8080": false} {
		_, err := New(&rest.Config{Host: "https://127.0.0.1:1"}, Options{MetricsAddr: addr, InsecureMetrics: true})
		if refused := errors.Is(err, ErrInsecureMetrics); refused == ok {
			t.Errorf("--metrics-secure=false on %q: %v", addr, err)
		}
	}
}
