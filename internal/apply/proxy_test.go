package apply_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/dpfdoctor/dpfdoctor/internal/selfsigned"
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
	caPEM, cert, err := selfsigned.Server("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
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
