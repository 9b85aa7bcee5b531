package policy

import (
	"fmt"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/plan"
)

// ParseInventory reads the operator's applyset.kubernetes.io/inventory
// annotation: a comma-separated, sorted list of "<kind>.<group>/<name>.<namespace>"
// (the DPF operator's GroupKindNamespaceName; the namespace is empty for
// cluster-scoped objects). A "<kind>.<group>/<namespace>/<name>" spelling is
// accepted too. Entries that fit neither form are returned as an error
// together with those that parsed.
func ParseInventory(annotation string) ([]plan.ObjectRef, error) {
	var out []plan.ObjectRef
	var bad []string
	for _, s := range strings.Split(annotation, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		r, ok := parseGKNN(s)
		if !ok {
			bad = append(bad, s)
			continue
		}
		out = append(out, r)
	}
	if len(bad) > 0 {
		return out, fmt.Errorf("unreadable inventory entries: %s", strings.Join(bad, ", "))
	}
	return out, nil
}

func parseGKNN(s string) (plan.ObjectRef, bool) {
	kindGroup, rest, ok := strings.Cut(s, "/")
	if !ok || kindGroup == "" {
		return plan.ObjectRef{}, false
	}
	// A kind cannot contain a dot; a group can.
	kind, group, _ := strings.Cut(kindGroup, ".")
	r := plan.ObjectRef{Kind: kind, Group: group}
	if i := strings.LastIndex(rest, "/"); i >= 0 {
		r.Namespace, r.Name = strings.TrimPrefix(rest[:i], "/"), rest[i+1:]
	} else if i := strings.LastIndex(rest, "."); i >= 0 {
		// A namespace cannot contain a dot; a name can.
		r.Name, r.Namespace = rest[:i], rest[i+1:]
	} else {
		return plan.ObjectRef{}, false
	}
	if r.Kind == "" || r.Name == "" {
		return plan.ObjectRef{}, false
	}
	return r, true
}
