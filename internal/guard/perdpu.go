package guard

import (
	"context"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
)

// perDPUPoll is how often the guard looks for v25.1's per-DPU DMS pods.
// They carry no label, so the label-selected cache never sees them.
const perDPUPoll = time.Minute

// addPerDPUPods adds v25.1's per-DPU DMS pods to s, found as the evidence
// collector finds them: one LIST of the namespace's pods (served from the
// API server's watch cache), kept when dpf.IsPerDPUPod, and trimmed as the
// cache trims. It lists only when the installed release creates pods per
// DPU, or when no release is known and the cache holds no labelled pod,
// and reports whether it did: the caller then looks again in perDPUPoll.
func (r *reconciler) addPerDPUPods(ctx context.Context, s *snapshot) (bool, error) {
	rel, err := dpf.Lookup(evidence.InstallFrom(r.opts.Namespace, s.config, s.pods).Version)
	if (err != nil && len(s.pods) > 0) || (err == nil && !rel.PodPerDPU) {
		return false, nil
	}
	list, err := r.clients.Kube.CoreV1().Pods(r.opts.Namespace).List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return false, fmt.Errorf("list per-DPU DMS pods: %w", kube.Classify(err))
	}
	for i := range list.Items {
		if dpf.IsPerDPUPod(&list.Items[i]) {
			p, _ := trimPod(&list.Items[i])
			s.pods = append(s.pods, p.(*corev1.Pod))
		}
	}
	sort.Slice(s.pods, func(i, j int) bool { return s.pods[i].Name < s.pods[j].Name })
	return true, nil
}
