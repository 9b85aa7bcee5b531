package lint

import "maps"

// varStore holds a path's variables as layers: a writable top over frozen
// parents shared with other paths. Cloning a state is then O(1), and
// comparing or merging two paths only looks at the layers above the one they
// share. A frozen layer is never written again.
type varStore struct {
	local  map[string]variable
	parent *varStore
	depth  int
}

// maxVarDepth bounds the layer chain; deeper chains are flattened.
const maxVarDepth = 16

func newVarStore() *varStore { return &varStore{} }

func (vs *varStore) get(name string) (variable, bool) {
	for l := vs; l != nil; l = l.parent {
		if v, ok := l.local[name]; ok {
			return v, !v.gone
		}
	}
	return variable{}, false
}

func (vs *varStore) set(name string, v variable) {
	if vs.local == nil {
		vs.local = map[string]variable{}
	}
	vs.local[name] = v
}

func (vs *varStore) del(name string) {
	if _, ok := vs.get(name); ok {
		vs.set(name, variable{gone: true})
	}
}

// fork freezes vs and returns two fresh tops over it: one for the path
// that goes on, one for the copy.
func (vs *varStore) fork() (*varStore, *varStore) {
	frozen := vs
	if len(vs.local) == 0 && vs.parent != nil {
		frozen = vs.parent
	}
	if frozen.depth >= maxVarDepth {
		frozen = frozen.flatten()
	}
	return &varStore{parent: frozen, depth: frozen.depth + 1}, &varStore{parent: frozen, depth: frozen.depth + 1}
}

// flatten copies every visible variable into one frozen layer.
func (vs *varStore) flatten() *varStore {
	m := map[string]variable{}
	for l := vs; l != nil; l = l.parent {
		for k, v := range l.local {
			if _, seen := m[k]; !seen {
				m[k] = v
			}
		}
	}
	maps.DeleteFunc(m, func(_ string, v variable) bool { return v.gone })
	return &varStore{local: m}
}

// changed returns the deepest layer the stores share and the names set
// (or unset) in any of them above it.
func changed(stores ...*varStore) (*varStore, map[string]bool) {
	base := common(stores)
	names := map[string]bool{}
	for _, s := range stores {
		for l := s; l != nil && l != base; l = l.parent {
			for k := range l.local {
				names[k] = true
			}
		}
	}
	return base, names
}

// common returns the deepest layer every store shares (nil if none).
func common(stores []*varStore) *varStore {
	var chain []*varStore
	index := map[*varStore]int{}
	for l := stores[0]; l != nil; l = l.parent {
		index[l] = len(chain)
		chain = append(chain, l)
	}
	best := 0
	for _, s := range stores[1:] {
		found := -1
		for l := s; l != nil && found < 0; l = l.parent {
			if j, ok := index[l]; ok {
				found = j
			}
		}
		if found < 0 {
			return nil
		}
		best = max(best, found)
	}
	return chain[best]
}

// sameVars reports whether two stores hold the same variables.
func sameVars(a, b *varStore) bool {
	_, names := changed(a, b)
	for n := range names {
		x, okX := a.get(n)
		y, okY := b.get(n)
		if okX != okY || okX && !x.same(y) {
			return false
		}
	}
	return true
}

// mergeStores joins the variables of paths that meet again: values that
// differ become alternatives (or unknown).
func mergeStores(stores []*varStore) *varStore {
	base, names := changed(stores...)
	depth := 0
	if base != nil {
		depth = base.depth + 1
	}
	out := &varStore{parent: base, depth: depth, local: make(map[string]variable, len(names))}
	for n := range names {
		v, ok := stores[0].get(n)
		if !ok {
			v = variable{val: unknownValue(varPlaceholder(n))}
		}
		differs := !ok
		for _, s := range stores[1:] {
			w, okW := s.get(n)
			if !okW {
				w = variable{val: unknownValue(varPlaceholder(n))}
				differs = true
			}
			if differs || !v.same(w) {
				v = mergeVar(n, v, w)
				differs = true
			}
		}
		out.local[n] = v
	}
	return out
}
