package apply_test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// faultProxy sits in front of the API server and breaks the connection of
// requests number K+1 … K+W: before forwarding them (the request is lost)
// or after (the request is served but the response is lost). Every other
// request passes, as after a network blip.
type faultProxy struct {
	srv      *http.Server
	ln       net.Listener
	caPEM    []byte
	upstream *httputil.ReverseProxy

	mu     sync.Mutex
	k, w   int64
	after  bool
	count  atomic.Int64
	broken atomic.Int64
	total  atomic.Int64
}

func startFaultProxy(t *testing.T, target *rest.Config) *faultProxy {
	t.Helper()
	u, err := url.Parse(target.Host)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := rest.TransportFor(target)
	if err != nil {
		t.Fatal(err)
	}
	cert, caPEM := selfSigned(t)
	p := &faultProxy{caPEM: caPEM, k: -1}
	p.upstream = httputil.NewSingleHostReverseProxy(u)
	p.upstream.Transport = rt
	p.upstream.FlushInterval = -1
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	p.ln = ln
	p.srv = &http.Server{Handler: p, TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){}, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	t.Cleanup(func() { _ = p.srv.Close() })
	return p
}

// arm breaks requests K+1 … K+W from now on (counting from zero again).
func (p *faultProxy) arm(k, w int64, after bool) {
	p.mu.Lock()
	p.k, p.w, p.after = k, w, after
	p.mu.Unlock()
	p.count.Store(0)
	p.broken.Store(0)
}

// config is a client config that goes through the proxy (with the
// upstream's identity).
func (p *faultProxy) config() *rest.Config {
	return &rest.Config{Host: "https://" + p.ln.Addr().String(), TLSClientConfig: rest.TLSClientConfig{CAData: p.caPEM}, QPS: -1}
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := p.count.Add(1)
	p.total.Add(1)
	p.mu.Lock()
	k, width, after := p.k, p.w, p.after
	p.mu.Unlock()
	if k < 0 || n <= k || n > k+width {
		p.upstream.ServeHTTP(w, r)
		return
	}
	p.broken.Add(1)
	if after {
		rec := &discard{header: http.Header{}}
		p.upstream.ServeHTTP(rec, r)
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "proxy: connection cannot be hijacked", http.StatusBadGateway)
		return
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

// discard is a ResponseWriter that throws the response away.
type discard struct {
	header http.Header
	body   bytes.Buffer
}

func (d *discard) Header() http.Header         { return d.header }
func (d *discard) Write(b []byte) (int, error) { return d.body.Write(b) }
func (d *discard) WriteHeader(int)             {}
func (d *discard) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, http.ErrNotSupported
}

func selfSigned(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dpfdoctor-fault-proxy"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	pair, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	return pair, certPEM
}
