package lint

import (
	"maps"

	"mvdan.cc/sh/v3/syntax"
)

// loop runs a loop body: concretely while the condition is known, once
// abstractly otherwise. next reports whether another iteration starts (and
// prepares its state); assumeOnce says whether a loop whose condition is
// unknown is taken to run at least once (for-in over an unresolved list) or
// not (while).
type loopSpec struct {
	next       func(st *state, i int) (*state, status)
	body       func(st *state) *state
	post       func(st *state) *state // the C-style loop's step
	abstract   func(st *state)        // make loop variables unknown
	assumeOnce bool
	fixpoint   bool // the condition depends only on variables
	why        *reason
}

func (in *interp) loop(st *state, spec loopSpec) *state {
	root := st.guard
	brk := &frame{kind: frameBreak}
	cont := &frame{kind: frameCont}
	in.frames = append(in.frames, brk, cont)
	defer func() { in.frames = in.frames[:len(in.frames)-2] }()

	var exits []*state
	cur := st
	var prev *state
	widen := false
	for i := 0; ; i++ {
		next, cond := spec.next(cur, i)
		cur = next
		if cur.flow != flowLive {
			exits = append(exits, cur)
			break
		}
		if cond == stFail {
			exits = append(exits, cur)
			break
		}
		if cond == stUnknown || i >= maxIterations || in.overBudget() || widen {
			exits = append(exits, in.abstractIteration(cur, spec, cont, cond == stUnknown && (!spec.assumeOnce || i > 0))...)
			break
		}
		if spec.fixpoint {
			if prev != nil && sameState(prev, cur) {
				// Nothing changes between iterations: the loop only ends
				// by break or exit.
				break
			}
			prev = cur.clone()
		}
		records := len(in.order)
		if cur = spec.iterate(cur, cont); cur.flow != flowLive {
			exits = append(exits, cur)
			break
		}
		// Once iterations only run on some paths (after a conditional
		// break) and stop finding new calls, the rest is walked once,
		// abstractly: a 30-attempt retry loop costs a few iterations.
		widen = i >= minConcrete && len(in.order) == records && cur.guard.possibleBelow(root) != nil
	}
	res := join(root, append(brk.states, exits...), []*frame{brk, cont}, &reason{kind: "after", line: spec.why.line})
	if res.flow == flowLive {
		res.status = stOK
	}
	return res
}

// abstractIteration runs the body once with the loop variables unknown.
// The state after it merges "not run" and "run", since the loop may repeat.
func (in *interp) abstractIteration(cur *state, spec loopSpec, cont *frame, possible bool) []*state {
	pre := cur.clone()
	body := cur
	if spec.abstract != nil {
		spec.abstract(body)
	}
	if possible {
		body.guard = &guard{parent: body.guard, possible: true, why: spec.why}
	}
	it := spec.iterate(body, cont)
	if it.flow != flowLive {
		if possible {
			return []*state{pre, it}
		}
		return []*state{it}
	}
	// Values after a loop that may repeat: what they were, or anything the
	// body makes of them.
	m := merge([]*state{it, pre})
	m.guard = it.guard
	if possible {
		return []*state{pre, m}
	}
	return []*state{m}
}

// iterate runs the body once from cur, joins the paths that continue, and
// runs the step.
func (spec loopSpec) iterate(cur *state, cont *frame) *state {
	root := cur.guard
	end := spec.body(cur)
	it := join(root, append(cont.states, end), []*frame{cont}, &reason{kind: "after", line: spec.why.line})
	cont.states = nil
	if it.flow == flowLive && spec.post != nil {
		it = spec.post(it)
	}
	return it
}

// sameState reports whether two loop iterations start alike.
func sameState(a, b *state) bool {
	return sameArgs(a, b) && maps.EqualFunc(a.vars, b.vars, variable.same)
}

func (in *interp) whileClause(st *state, c *syntax.WhileClause, io ioctx) *state {
	return in.loop(st, loopSpec{
		next: func(cur *state, _ int) (*state, status) {
			cur = in.stmts(cur, c.Cond, io)
			if cur.flow != flowLive {
				return cur, stUnknown
			}
			s := cur.status
			if c.Until {
				s = s.not()
			}
			return cur, s
		},
		body:     func(cur *state) *state { return in.stmts(cur, c.Do, io) },
		fixpoint: true,
		why:      &reason{kind: "while", node: lastStmt(c.Cond), line: c.WhilePos.Line()},
	})
}

func lastStmt(list []*syntax.Stmt) syntax.Node {
	if len(list) == 0 {
		return nil
	}
	return list[len(list)-1]
}

func (in *interp) forClause(st *state, c *syntax.ForClause, io ioctx) *state {
	why := &reason{kind: "for", node: c.Loop, line: c.ForPos.Line()}
	body := func(cur *state) *state { return in.stmts(cur, c.Do, io) }
	switch l := c.Loop.(type) {
	case *syntax.WordIter:
		name := l.Name.Value
		items, unknownList := st.args, st.argsUnknown // for x; do: the arguments
		if l.InPos.IsValid() {
			alts, unknownCount := in.expandFields(st, l.Items, io)
			items, unknownList = alts[0], len(alts) != 1 || unknownCount
		}
		return in.loop(st, loopSpec{
			next: func(cur *state, i int) (*state, status) {
				if unknownList {
					return cur, stUnknown
				}
				if i >= len(items) {
					return cur, stFail
				}
				cur.vars[name] = variable{val: value{items[i]}}
				return cur, stOK
			},
			body:       body,
			abstract:   func(cur *state) { cur.vars[name] = unknownVar(name) },
			assumeOnce: true,
			why:        why,
		})
	case *syntax.CStyleLoop:
		if l.Init != nil {
			in.arith(st, l.Init, io)
		}
		return in.loop(st, loopSpec{
			next: func(cur *state, _ int) (*state, status) {
				if l.Cond == nil {
					return cur, stOK
				}
				return cur, in.arithStatus(cur, l.Cond, io)
			},
			body: body,
			post: func(cur *state) *state {
				if l.Post != nil {
					in.arith(cur, l.Post, io)
				}
				return cur
			},
			abstract: func(cur *state) {
				for _, n := range arithNames(l.Init, l.Cond, l.Post) {
					cur.vars[n] = unknownVar(n)
				}
			},
			assumeOnce: true,
			fixpoint:   true,
			why:        why,
		})
	}
	st.status = stUnknown
	return st
}

// arithNames lists the variables an arithmetic loop header uses.
func arithNames(xs ...syntax.ArithmExpr) []string {
	var out []string
	for _, x := range xs {
		if x == nil {
			continue
		}
		syntax.Walk(x, func(n syntax.Node) bool {
			switch n := n.(type) {
			case *syntax.Word:
				if l := n.Lit(); l != "" && syntax.ValidName(l) {
					out = append(out, l)
				}
			case *syntax.ParamExp:
				if n.Param != nil {
					out = append(out, n.Param.Value)
				}
			}
			return true
		})
	}
	return out
}
