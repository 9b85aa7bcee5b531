package doctor

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/apply"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
)

// RollbackOptions configure Rollback.
type RollbackOptions struct {
	Clients *kube.Clients
	// Dir is the backup directory.
	Dir string
	// Log receives one line per step.
	Log io.Writer
}

// Rollback restores the state a backup recorded. A backup taken from
// another API server is refused with apply.ErrBadBackup before any change.
func Rollback(ctx context.Context, o RollbackOptions) (apply.RollbackResult, error) {
	l, err := apply.Load(o.Dir)
	if err != nil {
		return apply.RollbackResult{Dir: o.Dir}, err
	}
	if host := o.Clients.Config.Host; l.Manifest.Server != "" && strings.TrimSuffix(l.Manifest.Server, "/") != strings.TrimSuffix(host, "/") {
		return apply.RollbackResult{Dir: o.Dir}, fmt.Errorf("%w %s: it was taken from %s, not %s (pick that cluster with --kubeconfig/--context)",
			apply.ErrBadBackup, o.Dir, l.Manifest.Server, host)
	}
	return (&apply.Applier{Clients: o.Clients, Log: o.Log}).Rollback(ctx, o.Dir)
}
