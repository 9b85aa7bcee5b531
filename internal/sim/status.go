package sim

import (
	"context"
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
)

// Summary counts the DMS pods by the state kubectl shows.
type Summary struct {
	Total  int            `json:"total"`
	Ready  int            `json:"ready"`
	States map[string]int `json:"states"`
}

// Summary lists the DMS pods once and counts their states.
func (c *Cluster) Summary(ctx context.Context) (Summary, error) {
	opts := metav1.ListOptions{LabelSelector: dpf.ComponentLabel}
	if c.Release.PodPerDPU {
		opts = metav1.ListOptions{} // v25.1 pods are unlabelled
	}
	list, err := c.kube.CoreV1().Pods(c.Namespace).List(ctx, opts)
	if err != nil {
		return Summary{}, err
	}
	s := Summary{States: map[string]int{}}
	for i := range list.Items {
		p := &list.Items[i]
		if _, ok := dpf.NodeFromPodName(p.Name); !ok {
			continue
		}
		s.Total++
		if dpf.PodReady(p) {
			s.Ready++
		}
		s.States[dpf.PodState(p)]++
	}
	return s, nil
}

func (s Summary) String() string {
	var parts []string
	for st, n := range s.States {
		parts = append(parts, fmt.Sprintf("%d %s", n, st))
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d/%d DMS pods ready (%s)", s.Ready, s.Total, strings.Join(parts, ", "))
}
