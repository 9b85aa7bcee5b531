package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// RestartAPIServer stops the kube-apiserver (killed when it has not shut
// down gracefully within 2 s, as a crash would), calls during while it is
// down, and starts it again on the same etcd data, address, certificates
// and ServiceAccount signing keys, so that existing clients and tokens
// reconnect. envtest would otherwise remove its certificate directory on
// stop and start with fresh ones.
func (c *Cluster) RestartAPIServer(ctx context.Context, during func()) error {
	api := c.env.ControlPlane.APIServer
	keep, err := os.MkdirTemp(c.dir, "apiserver-")
	if err != nil {
		return err
	}
	if err := os.CopyFS(keep, os.DirFS(api.CertDir)); err != nil {
		return fmt.Errorf("keep the API server's certificates: %w", err)
	}
	api.StopTimeout = 2 * time.Second
	stopErr := api.Stop() // a timeout after which it was killed is fine: the port tells
	addr := net.JoinHostPort(c.apiHost, fmt.Sprint(c.apiPort))
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = conn.Close()
		}
		return err != nil, nil
	}); err != nil {
		return fmt.Errorf("the API server still listens on %s: %w", addr, errors.Join(err, stopErr))
	}
	api.CertDir = keep
	if during != nil {
		during()
	}
	if err := api.Start(); err != nil {
		return fmt.Errorf("start the API server again: %w", err)
	}
	return nil
}
