package guard

import (
	"context"
	"sync"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
)

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// dpuDeviceCRD is the one CRD the diagnosis asks about: whether DPUDevice
// has a status subresource (v25.7 on).
var dpuDeviceCRD = "dpudevices." + dpf.GroupProvisioning

// crdInfo reads the DPUDevice CRD once per process: one GET, by name.
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
		crd, err := cl.Dynamic.Resource(crdGVR).Get(ctx, dpuDeviceCRD, metav1.GetOptions{})
		switch {
		case err == nil:
			c.done, c.found, c.statusSubres = true, true, hasStatusSubresource(crd)
		case apierrors.IsNotFound(err), apierrors.IsForbidden(err):
			c.done = true
		default:
			log.Info("could not read the DPUDevice CRD; will retry", "error", err.Error())
		}
	}
	in.DPUDeviceCRD, in.DPUDeviceStatusSubresource = c.found, c.statusSubres
}

func hasStatusSubresource(crd *unstructured.Unstructured) bool {
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for _, v := range versions {
		if m, ok := v.(map[string]any); ok {
			if _, ok, _ := unstructured.NestedFieldNoCopy(m, "subresources", "status"); ok {
				return true
			}
		}
	}
	return false
}
