package guard

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	certutil "k8s.io/client-go/util/cert"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
)

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
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Second):
			}
		}
		if _, err := os.Stat(crt); err != nil {
			continue
		}
		cw, err := certwatcher.New(crt, key)
		if err != nil {
			log.Error(err, "metrics certificate: keeping the self-signed one", "file", crt)
			continue
		}
		s.watched.Store(cw)
		log.Info("serving the metrics certificate from a file", "file", crt)
		if err := cw.Start(ctx); err != nil {
			log.Error(err, "watching the metrics certificate")
		}
		return
	}
}

func (s *servingCert) get(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if cw := s.watched.Load(); cw != nil {
		return cw.GetCertificate(hello)
	}
	return &s.self, nil
}
