package lint

import "maps"

// unknownVar is a scalar variable lint cannot resolve.
func unknownVar(name string) variable { return variable{val: unknownValue(varPlaceholder(name))} }

// mergeVars joins the variables of paths that meet again: values that
// differ become alternatives (or unknown); a variable some path lacks may
// come from the environment, so it is unknown there.
func mergeVars(stores []map[string]variable) map[string]variable {
	out := maps.Clone(stores[0])
	for _, s := range stores[1:] {
		for n, v := range out {
			if w, ok := s[n]; !ok {
				out[n] = mergeVar(n, v, unknownVar(n))
			} else if !v.same(w) {
				out[n] = mergeVar(n, v, w)
			}
		}
		for n, w := range s {
			if _, ok := out[n]; !ok {
				out[n] = mergeVar(n, unknownVar(n), w)
			}
		}
	}
	return out
}
