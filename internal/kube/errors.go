package kube

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Sentinels the CLI maps to exit codes.
var (
	// ErrUnreachable: the API server could not be reached (connection
	// refused, DNS, timeout, TLS failure). Exit code 4.
	ErrUnreachable = errors.New("cluster unreachable")
	// ErrUnauthenticated: the server rejected the credentials (401), or the
	// kubeconfig has none that work. Exit code 4.
	ErrUnauthenticated = errors.New("authentication failed")
	// ErrInsufficientRights: the user is not allowed a request dpfdoctor
	// needs (403). Exit code 6.
	ErrInsufficientRights = errors.New("insufficient rights")
	// ErrBadKubeconfig: the kubeconfig is missing, malformed or names an
	// unknown context. Exit code 4 (the cluster cannot be reached with it).
	ErrBadKubeconfig = errors.New("invalid kubeconfig")
)

// Classify wraps err with the sentinel that describes it, keeping the
// original text. Errors that fit none are returned unchanged.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	for _, s := range []error{ErrUnreachable, ErrUnauthenticated, ErrInsufficientRights, ErrBadKubeconfig, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, s) {
			return err
		}
	}
	switch {
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%w: %v (check the credentials in your kubeconfig, or log in again)", ErrUnauthenticated, err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%w: %v", ErrInsufficientRights, err)
	case isTransport(err):
		return fmt.Errorf("%w: %v (check --kubeconfig/--context and that the API server is up)", ErrUnreachable, err)
	}
	return err
}

func isTransport(err error) bool {
	var (
		ue   *url.Error
		ne   net.Error
		oe   *net.OpError
		dnse *net.DNSError
		ua   x509.UnknownAuthorityError
		hn   x509.HostnameError
		ci   x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &oe), errors.As(err, &dnse), errors.As(err, &ua), errors.As(err, &hn), errors.As(err, &ci):
		return true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EHOSTUNREACH):
		return true
	case errors.As(err, &ne) && ne.Timeout():
		return true
	case errors.As(err, &ue):
		return true
	}
	msg := err.Error()
	for _, s := range []string{"connection refused", "no such host", "tls: ", "x509: ", "i/o timeout", "EOF", "connection reset"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
