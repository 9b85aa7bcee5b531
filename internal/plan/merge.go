package plan

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
)

// Merged renders p's Role or ClusterRole want with the grants of live (the
// same object as dpfdoctor's other writer left it) added, exactly as Build
// renders kept grants, so that `fix` and the guard agree on the result.
func Merged(p *Plan, want, live *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	rb, err := roles([]*unstructured.Unstructured{want, live})
	if err != nil {
		return nil, err
	}
	ref := RefOf(want)
	objs, _, err := render(evidence.RBAC{}, p, earlierGrants(rb, map[ObjectRef]bool{ref: true}))
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		u, err := toUnstructured(o)
		if err != nil {
			return nil, err
		}
		if RefOf(u) == ref {
			return u, nil
		}
	}
	return nil, fmt.Errorf("plan: merging renders no %s", ref)
}
