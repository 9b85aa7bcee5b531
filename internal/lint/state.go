package lint

import (
	"maps"
	"slices"

	"mvdan.cc/sh/v3/syntax"
)

// status is a command's exit status as far as lint knows it.
type status int8

const (
	stUnknown status = iota
	stOK
	stFail
)

func statusOf(ok bool) status {
	if ok {
		return stOK
	}
	return stFail
}

func (s status) not() status {
	switch s {
	case stOK:
		return stFail
	case stFail:
		return stOK
	}
	return stUnknown
}

// variable is a shell variable: a scalar value or an indexed array.
type variable struct {
	val        value
	arr        []text
	isArr      bool
	arrUnknown bool // an array whose elements lint cannot list
}

func (v variable) same(w variable) bool {
	return v.isArr == w.isArr && v.arrUnknown == w.arrUnknown && v.val.same(w.val) && sameTexts(v.arr, w.arr)
}

func sameTexts(a, b []text) bool {
	return slices.EqualFunc(a, b, func(x, y text) bool { return x.key() == y.key() })
}

// scalar is the variable read as $name: an array's first element.
func (v variable) scalar(name string) value {
	if !v.isArr {
		return v.val
	}
	if v.arrUnknown {
		return unknownValue(varPlaceholder(name))
	}
	if len(v.arr) == 0 {
		return litValue("")
	}
	return value{v.arr[0]}
}

// flow says how a path through the script goes on.
type flow int8

const (
	flowLive   flow = iota
	flowDead        // the script exited
	flowJumped      // return, break, continue, or exit from a subshell
)

// saved is a variable's value outside a function that declared it local.
type saved struct {
	v   variable
	set bool
}

// state is one path's view of the shell: variables, positional parameters,
// the last exit status, and the guard under which the path runs.
type state struct {
	vars        map[string]variable
	args        []text
	argsUnknown bool
	status      status
	out         value // stdout of the last simple command, nil if unknown
	guard       *guard
	flow        flow
	jumps       []*frame           // where a jumped path went
	locals      []map[string]saved // per active function call
	exitLine    int                // for dead paths
	exitFail    bool               // dead by a non-zero (or unknown) exit
}

func newState() *state {
	return &state{vars: map[string]variable{}, status: stOK, guard: &guard{}}
}

// clone copies the state so that a branch can change it independently.
func (st *state) clone() *state {
	c := *st
	c.vars = maps.Clone(st.vars)
	c.locals = slices.Clone(st.locals)
	for i, l := range c.locals {
		c.locals[i] = maps.Clone(l)
	}
	return &c
}

// under returns a copy of st that runs under a new possible guard.
func (st *state) under(why *reason) *state {
	c := st.clone()
	c.guard = &guard{parent: st.guard, possible: true, why: why}
	return c
}

// declareLocal makes name local to the innermost function call.
func (st *state) declareLocal(name string) {
	if n := len(st.locals); n > 0 {
		if _, done := st.locals[n-1][name]; !done {
			old, ok := st.vars[name]
			st.locals[n-1][name] = saved{v: old, set: ok}
		}
	}
}

// merge joins the variables of paths that meet again: values that differ
// become alternatives (or unknown).
func merge(states []*state) *state {
	m := states[0].clone()
	m.jumps = nil
	for _, s := range states[1:] {
		mergeVars(m.vars, s.vars)
		if !sameArgs(m, s) {
			m.args, m.argsUnknown = nil, true
		}
		if m.status != s.status {
			m.status = stUnknown
		}
		if m.out == nil || s.out == nil {
			m.out = nil
		} else {
			m.out = union("$(…)", m.out, s.out)
		}
		mergeLocals(m.locals, s.locals)
	}
	return m
}

// mergeLocals adds to a the saved outer values b has and a lacks.
func mergeLocals(a, b []map[string]saved) {
	for i := range min(len(a), len(b)) {
		for k, v := range b[i] {
			if _, ok := a[i][k]; !ok {
				a[i][k] = v
			}
		}
	}
}

func mergeVar(name string, v, w variable) variable {
	if v.isArr || w.isArr { // mergeVars calls it only for variables that differ
		return variable{isArr: true, arrUnknown: true}
	}
	return variable{val: union(varPlaceholder(name), v.val, w.val)}
}

func sameArgs(a, b *state) bool {
	return a.argsUnknown == b.argsUnknown && (a.argsUnknown || sameTexts(a.args, b.args))
}

// frameKind is what a jump leaves: a function (return), a loop (break or
// continue) or a subshell (exit inside $(...), a pipeline or ( )).
type frameKind int8

const (
	frameFunc frameKind = iota
	frameBreak
	frameCont
	frameSub
)

// frame collects the paths that jump to it.
type frame struct {
	kind   frameKind
	states []*state
}

// guard is the condition under which a path runs, as a chain up to the
// script's start. A possible guard is a condition lint cannot decide. A call
// is certain when some path reaching it has no possible guard in its chain.
//
// Guards are decided late: when all but one branch of a construct end in
// `exit`, the surviving branch's guard is promoted (made not possible),
// because every run that completes takes it. Guards placed after a
// conditional return/break/continue carry the frames those paths escaped
// to; such a guard is only promoted at the join where those frames end.
type guard struct {
	parent   *guard
	possible bool
	why      *reason
	escapes  []*frame
}

// reason explains a possible guard; it is rendered only when a finding
// needs it.
type reason struct {
	kind string // "if", "case", "&&", "||", "while", "after", "uncalled", "for"
	node syntax.Node
	line uint
	fn   string
}

// possibleBelow returns the innermost possible guard on the chain from g up
// to (not including) stop, nil if there is none.
func (g *guard) possibleBelow(stop *guard) *guard {
	for x := g; x != nil && x != stop; x = x.parent {
		if x.possible {
			return x
		}
	}
	return nil
}

func (g *guard) certain() bool { return g.possibleBelow(nil) == nil }

func isAncestor(root, g *guard) bool {
	for x := g; x != nil; x = x.parent {
		if x == root {
			return true
		}
	}
	return false
}

func resolvedBy(escapes, resolved []*frame) bool {
	return !slices.ContainsFunc(escapes, func(e *frame) bool { return !slices.Contains(resolved, e) })
}

// escapesBetween lists the unresolved escapes on the chain from g up to root.
func escapesBetween(g, root *guard, resolved []*frame) []*frame {
	var out []*frame
	for x := g; x != nil && x != root; x = x.parent {
		if x.possible && !resolvedBy(x.escapes, resolved) {
			out = addFrames(out, x.escapes)
		}
	}
	return out
}

// promote marks the guards between g and root as taken on every completing
// run, except those that wait for an escape to be resolved.
func promote(g, root *guard, resolved []*frame) {
	if !isAncestor(root, g) {
		return
	}
	for x := g; x != root; x = x.parent {
		if x.possible && resolvedBy(x.escapes, resolved) {
			x.possible = false
		}
	}
}

func addFrames(to, from []*frame) []*frame {
	for _, f := range from {
		if !slices.Contains(to, f) {
			to = append(to, f)
		}
	}
	return to
}

// join merges the paths that meet after a construct. root is the guard in
// force before it; resolved are the frames that end here (the function
// called, the loop left). See guard for the promotion rules.
func join(root *guard, states []*state, resolved []*frame, why *reason) *state {
	var live []*state
	var jumps []*frame
	var dead *state
	for _, s := range states {
		switch s.flow {
		case flowLive:
			live = append(live, s)
		case flowJumped:
			for _, f := range s.jumps {
				if !slices.Contains(resolved, f) && !slices.Contains(jumps, f) {
					jumps = append(jumps, f)
				}
			}
		case flowDead:
			if dead == nil {
				dead = s
			}
		}
	}
	if len(live) == 0 {
		if len(jumps) > 0 {
			return &state{vars: map[string]variable{}, flow: flowJumped, jumps: jumps, guard: root}
		}
		if dead != nil {
			return dead
		}
		return &state{vars: map[string]variable{}, flow: flowDead, guard: root, exitFail: true}
	}
	var carried []*frame
	for _, s := range live {
		carried = addFrames(carried, escapesBetween(s.guard, root, resolved))
	}
	if len(live) == 1 && len(jumps) == 0 {
		s := live[0]
		promote(s.guard, root, resolved)
		if len(carried) == 0 {
			s.guard = root
		}
		return s
	}
	m := merge(live)
	m.guard = root
	if escapes := addFrames(carried, jumps); len(escapes) > 0 {
		m.guard = &guard{parent: root, possible: true, why: why, escapes: escapes}
	}
	return m
}

func unknownVar(name string) variable { return variable{val: unknownValue(varPlaceholder(name))} }

// mergeVars joins the variables of another path into m: values that differ
// become alternatives (or unknown); a variable one path lacks may come from
// the environment, so it is unknown there.
func mergeVars(m, s map[string]variable) {
	for n, v := range m {
		if w, ok := s[n]; !ok {
			m[n] = mergeVar(n, v, unknownVar(n))
		} else if !v.same(w) {
			m[n] = mergeVar(n, v, w)
		}
	}
	for n, w := range s {
		if _, ok := m[n]; !ok {
			m[n] = mergeVar(n, unknownVar(n), w)
		}
	}
}
