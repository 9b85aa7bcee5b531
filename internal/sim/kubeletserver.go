package sim

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dpfdoctor/dpfdoctor/internal/selfsigned"
)

// kubeletServer is the HTTPS endpoint the API server proxies `pods/log` to:
// GET /containerLogs/{namespace}/{pod}/{container}[?previous=true&tailLines=N].
// It listens on every simulated node address (loopback only) on one port.
type kubeletServer struct {
	srv       *http.Server
	port      int
	caPEM     []byte
	listeners []net.Listener
	logs      logSource
	wg        sync.WaitGroup
}

// logSource answers a container log request.
type logSource interface {
	containerLog(namespace, pod, container string, previous bool) (string, error)
}

// newKubeletServer starts listening on addrs (all in 127.0.0.0/8).
func newKubeletServer(addrs []string, logs logSource) (*kubeletServer, error) {
	for _, a := range addrs {
		if ip := net.ParseIP(a); ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("kubelet address %q is not a loopback address", a)
		}
	}
	caPEM, cert, err := selfsigned.Server(addrs...)
	if err != nil {
		return nil, err
	}
	k := &kubeletServer{caPEM: caPEM, logs: logs}
	mux := http.NewServeMux()
	mux.HandleFunc("/containerLogs/", k.serveLogs)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	k.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}

	// One port for every address: find a free one on the first address,
	// then bind the rest; retry with a new port on a clash.
	for attempt := 0; attempt < 20; attempt++ {
		if err := k.listenAll(addrs); err == nil {
			break
		} else if attempt == 19 {
			return nil, err
		}
	}
	for _, l := range k.listeners {
		k.wg.Go(func() { _ = k.srv.ServeTLS(l, "", "") })
	}
	return k, nil
}

func (k *kubeletServer) listenAll(addrs []string) error {
	first, err := net.Listen("tcp", net.JoinHostPort(addrs[0], "0"))
	if err != nil {
		return fmt.Errorf("kubelet endpoint: %w", err)
	}
	port := first.Addr().(*net.TCPAddr).Port
	ls := []net.Listener{first}
	for _, a := range addrs[1:] {
		l, err := net.Listen("tcp", net.JoinHostPort(a, strconv.Itoa(port)))
		if err != nil {
			for _, l := range ls {
				_ = l.Close()
			}
			return fmt.Errorf("kubelet endpoint on %s:%d: %w", a, port, err)
		}
		ls = append(ls, l)
	}
	k.port, k.listeners = port, ls
	return nil
}

func (k *kubeletServer) close() {
	_ = k.srv.Close()
	k.wg.Wait()
}

func (k *kubeletServer) serveLogs(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/containerLogs/"), "/")
	if len(parts) != 3 {
		http.Error(w, "expected /containerLogs/{namespace}/{pod}/{container}", http.StatusBadRequest)
		return
	}
	q := r.URL.Query()
	previous, _ := strconv.ParseBool(q.Get("previous"))
	text, err := k.logs.containerLog(parts[0], parts[1], parts[2], previous)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if n, err := strconv.Atoi(q.Get("tailLines")); err == nil && n >= 0 {
		text = tail(text, n)
	}
	if n, err := strconv.Atoi(q.Get("limitBytes")); err == nil && n >= 0 && n < len(text) {
		text = text[:n]
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(text))
}

func tail(text string, n int) string {
	lines := strings.SplitAfter(text, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if n < len(lines) {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

// nodeAddress returns the loopback address of node i: 127.0.0.2, 127.0.0.3,
// … up to maxAddrs distinct addresses, then wrapping (many simulated nodes
// may share one address; logs are addressed by pod, not by node).
func nodeAddress(i, maxAddrs int) string {
	j := i % maxAddrs
	return fmt.Sprintf("127.0.%d.%d", j/250, 2+j%250)
}
