// Package faultproxy puts a fault-injecting HTTPS proxy between a client and
// a kube-apiserver, for tests: it can drop a request's connection, delay it,
// or answer it with an error status (429 with Retry-After, 500, …) instead of
// forwarding it. It listens on 127.0.0.1 only.
package faultproxy

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"

	"github.com/dpfdoctor/dpfdoctor/internal/selfsigned"
)

// Action is what the proxy does with a matching request.
type Action struct {
	// Drop closes the client connection without an answer.
	Drop bool
	// Delay holds the request before forwarding (or answering).
	Delay time.Duration
	// Status answers with this HTTP status instead of forwarding (0 = forward).
	Status int
	// RetryAfter, with Status, sets the Retry-After header in seconds.
	RetryAfter int
}

// Rule applies an Action to requests that Match. Times limits how often it
// fires (0 = always).
type Rule struct {
	Match  func(n int64, r *http.Request) bool
	Action Action
	Times  int64
	fired  atomic.Int64
}

// Proxy is a running fault-injecting proxy.
type Proxy struct {
	Config *rest.Config // a copy of the upstream client config pointing at the proxy

	srv      *http.Server
	n        atomic.Int64
	mu       sync.Mutex
	rules    []*Rule
	injected atomic.Int64
}

// AfterN matches every request after the first n (the (n+1)th on).
func AfterN(n int64) func(int64, *http.Request) bool {
	return func(i int64, _ *http.Request) bool { return i > n }
}

// Nth matches exactly the nth request (1-based).
func Nth(n int64) func(int64, *http.Request) bool {
	return func(i int64, _ *http.Request) bool { return i == n }
}

// Writes matches mutating requests.
func Writes() func(int64, *http.Request) bool {
	return func(_ int64, r *http.Request) bool { return r.Method != http.MethodGet && r.Method != http.MethodHead }
}

// Start proxies to the API server of upstream. The upstream's credentials are
// used for the forwarded requests; the returned Config reaches the proxy
// over TLS with a throwaway CA and carries no credentials of its own.
func Start(upstream *rest.Config, rules ...*Rule) (*Proxy, error) {
	target, err := url.Parse(upstream.Host)
	if err != nil {
		return nil, err
	}
	if target.Scheme == "" {
		target.Scheme = "https"
	}
	rt, err := rest.TransportFor(upstream)
	if err != nil {
		return nil, err
	}
	caPEM, cert, err := selfsigned.Server("127.0.0.1")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{rules: rules}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = rt
	rp.FlushInterval = -1 // stream watches
	p.srv = &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.serve(rp, w, r) }),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	}
	go func() { _ = p.srv.ServeTLS(ln, "", "") }()
	p.Config = &rest.Config{
		Host:            "https://" + ln.Addr().String(),
		TLSClientConfig: rest.TLSClientConfig{CAData: caPEM},
		QPS:             upstream.QPS, Burst: upstream.Burst,
	}
	return p, nil
}

// SetRules replaces the rules (tests use one proxy over many seeds).
func (p *Proxy) SetRules(rules ...*Rule) {
	p.mu.Lock()
	p.rules = rules
	p.mu.Unlock()
	p.n.Store(0)
}

// Requests is the number of requests the proxy has seen since the last
// SetRules.
func (p *Proxy) Requests() int64 { return p.n.Load() }

// Injected is the number of faults injected so far.
func (p *Proxy) Injected() int64 { return p.injected.Load() }

// Close stops the proxy.
func (p *Proxy) Close() error { return p.srv.Close() }

func (p *Proxy) serve(rp *httputil.ReverseProxy, w http.ResponseWriter, r *http.Request) {
	n := p.n.Add(1)
	p.mu.Lock()
	var act *Action
	for _, rule := range p.rules {
		if rule.Match(n, r) && (rule.Times == 0 || rule.fired.Add(1) <= rule.Times) {
			a := rule.Action
			act = &a
			break
		}
	}
	p.mu.Unlock()
	if act != nil {
		if act.Delay > 0 {
			select {
			case <-time.After(act.Delay):
			case <-r.Context().Done():
				return
			}
		}
		switch {
		case act.Drop:
			p.injected.Add(1)
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler) // closes the stream without a response
		case act.Status != 0:
			p.injected.Add(1)
			if act.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(act.RetryAfter))
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(act.Status)
			fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"injected by faultproxy","reason":%q,"code":%d}`,
				cmp.Or(reasons[act.Status], "Unknown"), act.Status)
			return
		}
	}
	rp.ServeHTTP(w, r)
}

// reasons are the Status reasons of the codes tests inject.
var reasons = map[int]string{
	http.StatusTooManyRequests:     "TooManyRequests",
	http.StatusServiceUnavailable:  "ServiceUnavailable",
	http.StatusInternalServerError: "InternalError",
}
