package guard

import (
	"context"
	"sync"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
)

// crdInfo reads the DPUDevice CRD once per process, one GET by name: the
// diagnosis asks whether DPUDevice has a status subresource (v25.7 on).
type crdInfo struct {
	mu           sync.Mutex
	done         bool
	found        bool
	statusSubres bool
}

func (c *crdInfo) fill(ctx context.Context, cl *kube.Clients, in *evidence.Install, log logr.Logger) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.done {
		crd, err := cl.Dynamic.Resource(evidence.CRDGVR).Get(ctx, evidence.DPUDeviceCRDName(), metav1.GetOptions{})
		switch {
		case err == nil:
			c.done, c.found, c.statusSubres = true, true, evidence.HasStatusSubresource(crd)
		case apierrors.IsNotFound(err), apierrors.IsForbidden(err):
			c.done = true
		default:
			log.Info("could not read the DPUDevice CRD; will retry", "error", err.Error())
		}
	}
	in.DPUDeviceCRD, in.DPUDeviceStatusSubresource = c.found, c.statusSubres
}

// reset makes the next fill read the CRD again.
func (c *crdInfo) reset() {
	c.mu.Lock()
	c.done = false
	c.mu.Unlock()
}
