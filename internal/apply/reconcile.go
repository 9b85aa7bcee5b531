package apply

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
)

// ReconcileRequest is an operator reconcile requested by annotating the
// DPFOperatorConfig (plan.ReconcileRequestedAnnotation).
type ReconcileRequest struct {
	// Paused is true when the DPFOperatorConfig is paused: no reconcile
	// runs until it is resumed, so none was requested.
	Paused      bool
	RequestedAt string // the annotation's value; empty when paused

	cl       *kube.Clients
	ref      plan.ObjectRef
	previous *string
}

// RequestReconcile reads the plan's DPFOperatorConfig and, unless it is
// paused, journals the annotation in b and sets it. Withdraw removes it
// again.
func RequestReconcile(ctx context.Context, cl *kube.Clients, b *Backup) (*ReconcileRequest, error) {
	p := b.plan
	g := dpf.MustGVR(dpf.GroupOperator, "DPFOperatorConfig")
	req := &ReconcileRequest{cl: cl, ref: plan.ObjectRef{Group: dpf.GroupOperator, Kind: "DPFOperatorConfig", Namespace: p.Namespace, Name: p.OperatorConfig}}
	cfg, err := cl.Dynamic.Resource(g).Namespace(p.Namespace).Get(ctx, p.OperatorConfig, metav1.GetOptions{})
	if err != nil {
		return req, fmt.Errorf("read DPFOperatorConfig %s: %w", p.OperatorConfig, kube.Classify(err))
	}
	if req.Paused, _, _ = unstructured.NestedBool(cfg.Object, "spec", "overrides", "paused"); req.Paused {
		return req, nil
	}
	if prev, had := cfg.GetAnnotations()[plan.ReconcileRequestedAnnotation]; had {
		req.previous = &prev
	}
	value := b.now().UTC().Format(time.RFC3339Nano)
	if err := b.record(plan.AnnotationChange{Ref: req.ref, Key: plan.ReconcileRequestedAnnotation, Value: value, Previous: req.previous}); err != nil {
		return req, fmt.Errorf("journal the reconcile request: %w", err)
	}
	if err := annotate(ctx, cl.Dynamic, g, req.ref, plan.ReconcileRequestedAnnotation, &value); err != nil {
		return req, fmt.Errorf("annotate DPFOperatorConfig %s: %w", p.OperatorConfig, kube.Classify(err))
	}
	req.RequestedAt = value
	return req, nil
}

// Withdraw leaves the DPFOperatorConfig's annotation as it was before the
// request; this is one more harmless reconcile trigger.
func (r *ReconcileRequest) Withdraw(ctx context.Context) error {
	if r.RequestedAt == "" {
		return nil
	}
	err := annotate(ctx, r.cl.Dynamic, dpf.MustGVR(dpf.GroupOperator, "DPFOperatorConfig"), r.ref, plan.ReconcileRequestedAnnotation, r.previous)
	if err != nil {
		return fmt.Errorf("annotate DPFOperatorConfig %s: %w", r.ref.Name, kube.Classify(err))
	}
	return nil
}
