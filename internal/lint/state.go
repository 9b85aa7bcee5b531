package lint

import (
	"cmp"
	"maps"
	"slices"
	"strings"

	"mvdan.cc/sh/v3/pattern"
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
	why  string // one of the why* formats
	node syntax.Node
	line uint
	fn   string
}

// The texts of reasons: %[1]s is the source of the node, %[2]d the line
// and %[3]s the function.
const (
	whySucceeds = "only if `%[1]s` succeeds (line %[2]d), which lint cannot resolve"
	whyFails    = "only if `%[1]s` fails (line %[2]d), which lint cannot resolve"
	whyCase     = "only when case pattern `%[1]s` matches (line %[2]d), which lint cannot resolve"
	whyLoop     = "inside a loop (line %[2]d) that may not run: `%[1]s` is not resolved"
	whyUncalled = "in function %[3]s (line %[2]d), which no run with these arguments calls"
	whyAfter    = "only on paths that pass a conditional return, break or exit (near line %[2]d)"
)

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
	x := g
	for x != nil && x != root {
		x = x.parent
	}
	if x == nil { // root is not on g's chain
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
			dead = cmp.Or(dead, s) // the first one
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

// seg is a run of an expanded string. An unknown segment stands for text
// lint cannot resolve; s then holds its placeholder, such as "${node}".
type seg struct {
	s       string
	unknown bool
}

// text is one way a word may expand.
type text []seg

func lit(s string) text { return text{{s: s}} }

// unknownText is a text lint cannot resolve, shown as placeholder.
func unknownText(placeholder string) text { return text{{s: placeholder, unknown: true}} }

// varPlaceholder is how an unresolved variable is shown: "${name}".
func varPlaceholder(name string) string { return "${" + name + "}" }

func (t text) known() bool { return !slices.ContainsFunc(t, func(s seg) bool { return s.unknown }) }

func (t text) exact() (string, bool) {
	if !t.known() {
		return "", false
	}
	return t.String(), true
}

func (t text) String() string {
	if len(t) == 1 {
		return t[0].s
	}
	var b strings.Builder
	for _, s := range t {
		b.WriteString(s.s)
	}
	return b.String()
}

// empty reports whether t is known to be "".
func (t text) empty() bool {
	return !slices.ContainsFunc(t, func(s seg) bool { return s.unknown || s.s != "" })
}

// concat returns t followed by u, merging adjacent known segments. It never
// modifies t or u.
func (t text) concat(u text) text {
	if u.empty() {
		return t
	}
	if t.empty() {
		return u
	}
	out := make(text, 0, len(t)+len(u))
	out = append(out, t...)
	for _, s := range u {
		if s.s == "" && !s.unknown {
			continue
		}
		if last := len(out) - 1; !s.unknown && !out[last].unknown {
			out[last] = seg{s: out[last].s + s.s}
			continue
		}
		out = append(out, s)
	}
	return out
}

// key identifies t for comparisons.
func (t text) key() string {
	if len(t) == 1 && !t[0].unknown {
		return t[0].s
	}
	var b strings.Builder
	for _, s := range t {
		if s.unknown {
			b.WriteString("\x00")
		}
		b.WriteString(s.s)
		b.WriteString("\x01")
	}
	return b.String()
}

// joinTexts joins ts with spaces, as "$*" and echo do.
func joinTexts(ts []text) text {
	var t text
	for i, x := range ts {
		if i > 0 {
			t = t.concat(lit(" "))
		}
		t = t.concat(x)
	}
	return t
}

// glob turns t into a shell pattern that matches every string t may stand
// for: known parts quoted, unknown parts "*".
func (t text) glob() string {
	var b strings.Builder
	for _, s := range t {
		if s.unknown {
			b.WriteByte('*')
		} else {
			b.WriteString(pattern.QuoteMeta(s.s, 0))
		}
	}
	return b.String()
}

// maxAlts bounds how many alternative expansions lint tracks per value.
const maxAlts = 8

// value is every way something may expand: one text per alternative (at
// least one). A value of several alternatives comes from branches lint could
// not decide, such as kubectl_cmd being "kubectl" or "kubectl --kubeconfig x".
//
// This lattice (known and unknown parts, alternatives, unknown arguments) is
// lint's own because mvdan.cc/sh/v3/expand and interp compute one concrete
// string and would have to guess every value lint cannot resolve; lint hands
// them only fully known values (cond.go, param.go).
type value []text

func litValue(s string) value { return value{lit(s)} }

func unknownValue(placeholder string) value { return value{unknownText(placeholder)} }

// single returns the only alternative, or an unknown text when there are
// several.
func (v value) single(placeholder string) text {
	if len(v) == 1 {
		return v[0]
	}
	return unknownText(placeholder)
}

func (v value) exact() (string, bool) {
	if len(v) != 1 {
		return "", false
	}
	return v[0].exact()
}

// same reports whether v and w are the same alternatives, cheaply when they
// share storage.
func (v value) same(w value) bool {
	if len(v) != len(w) {
		return false
	}
	return len(v) == 0 || &v[0] == &w[0] || sameTexts(v, w)
}

// union merges alternatives, dropping duplicates. Past maxAlts the result
// collapses to one unknown text.
func union(placeholder string, vs ...value) value {
	var out value
	seen := map[string]bool{}
	for _, v := range vs {
		for _, t := range v {
			if k := t.key(); !seen[k] {
				seen[k] = true
				out = append(out, t)
			}
		}
	}
	if len(out) > maxAlts {
		return unknownValue(placeholder)
	}
	return out
}

// concatValues is every alternative of v followed by every alternative of w.
func concatValues(v, w value, placeholder string) value {
	if len(v) == 1 && len(w) == 1 {
		return value{v[0].concat(w[0])}
	}
	if len(v)*len(w) > maxAlts {
		return unknownValue(placeholder)
	}
	out := make(value, 0, len(v)*len(w))
	for _, a := range v {
		for _, b := range w {
			out = append(out, a.concat(b))
		}
	}
	return out
}
