package lint

import (
	"maps"
	"regexp"
	"slices"

	"mvdan.cc/sh/v3/syntax"
)

// Limits that keep the interpreter fast and finite on any input.
const (
	maxCallDepth   = 24
	maxIterations  = 256   // concrete iterations of one loop
	maxSteps       = 50000 // statements walked per script
	maxGuardsPerAt = 64
	minConcrete    = 3 // concrete iterations before a loop may be widened
)

// sink is where a file descriptor goes.
type sink int8

const (
	sinkTerminal sink = iota // the script's own stdout/stderr: the log
	sinkNull
	sinkCapture // $(...)
	sinkPipe
	sinkFile
)

// ioctx is the I/O a command runs with.
type ioctx struct {
	stdout, stderr sink
	stdin          value // nil when unknown (a file, the terminal)
	ignored        bool  // the caller discards failures (|| true)
}

// interp walks one script abstractly. See docs/lint.md for the semantics.
type interp struct {
	file     string
	opts     *Options
	funcs    map[string]*syntax.FuncDecl
	called   map[*syntax.FuncDecl]bool
	stack    []string
	frames   []*frame
	recs     map[recKey]*record
	order    []*record
	warnings []Warning
	steps    int
	printer  *syntax.Printer
	patterns map[string]*regexp.Regexp
	calls    map[*syntax.CallExpr]bool
}

func (in *interp) warn(line uint, msg string) {
	if w := (Warning{File: in.file, Line: int(line), Message: msg}); !slices.Contains(in.warnings, w) {
		in.warnings = append(in.warnings, w)
	}
}

func (in *interp) overBudget() bool { return in.steps > maxSteps }

func (in *interp) stmts(st *state, list []*syntax.Stmt, io ioctx) *state {
	for _, s := range list {
		if st.flow != flowLive {
			return st
		}
		st = in.stmt(st, s, io)
	}
	return st
}

func (in *interp) stmt(st *state, s *syntax.Stmt, io ioctx) *state {
	in.steps++
	io = in.redirect(st, s.Redirs, io)
	if s.Cmd == nil {
		return st
	}
	st.out = nil
	if s.Background {
		in.subshell(st, io, func(sub *state, io ioctx) *state { return in.command(sub, s.Cmd, io) })
		st.status = stOK
		return st
	}
	st = in.command(st, s.Cmd, io)
	if s.Negated && st.flow == flowLive {
		st.status = st.status.not()
	}
	return st
}

func (in *interp) command(st *state, cmd syntax.Command, io ioctx) *state {
	switch c := cmd.(type) {
	case *syntax.CallExpr:
		return in.call(st, c, io)
	case *syntax.Block:
		return in.stmts(st, c.Stmts, io)
	case *syntax.Subshell:
		sub := in.subshell(st, io, func(sub *state, io ioctx) *state { return in.stmts(sub, c.Stmts, io) })
		st.status, st.out = sub.status, sub.out
	case *syntax.IfClause:
		return in.ifClause(st, c, io)
	case *syntax.WhileClause:
		return in.whileClause(st, c, io)
	case *syntax.ForClause:
		return in.forClause(st, c, io)
	case *syntax.CaseClause:
		return in.caseClause(st, c, io)
	case *syntax.BinaryCmd:
		return in.binary(st, c, io)
	case *syntax.FuncDecl:
		if c.Name != nil {
			in.funcs[c.Name.Value] = c
		}
		st.status = stOK
	case *syntax.DeclClause:
		return in.decl(st, c, io)
	case *syntax.TestClause:
		st.status = in.testExpr(st, c.X, io)
	case *syntax.ArithmCmd:
		st.status = in.arithStatus(st, c.X, io)
	case *syntax.LetClause:
		st.status = stUnknown
		for _, x := range c.Exprs {
			st.status = in.arithStatus(st, x, io)
		}
	case *syntax.TimeClause:
		if c.Stmt != nil {
			return in.stmt(st, c.Stmt, io)
		}
	case *syntax.CoprocClause:
		if c.Stmt != nil {
			in.subshell(st, io, func(sub *state, io ioctx) *state { return in.stmt(sub, c.Stmt, io) })
		}
		st.status = stOK
	default:
		st.status = stUnknown
	}
	return st
}

// subshell runs body in a copy of st: assignments do not leak, and an exit
// only ends the subshell. The returned state carries the subshell's status
// and stdout; st itself is unchanged.
func (in *interp) subshell(st *state, io ioctx, body func(*state, ioctx) *state) *state {
	f := &frame{kind: frameSub}
	in.frames = append(in.frames, f)
	end := body(st.clone(), io)
	in.frames = in.frames[:len(in.frames)-1]
	states := append(slices.Clip(f.states), end)
	res := join(st.guard, states, []*frame{f}, &reason{why: whyAfter})
	if res.flow != flowLive {
		return &state{status: stFail, guard: st.guard}
	}
	return res
}

// jump ends the current path at frame f (return, break, continue, exit in
// a subshell).
func (in *interp) jump(st *state, f *frame) *state {
	c := st.clone()
	c.flow = flowLive
	f.states = append(f.states, c)
	st.flow = flowJumped
	st.jumps = []*frame{f}
	return st
}

// findFrame returns the innermost frame a jump of kind k reaches. Loop
// jumps do not cross functions or subshells; return does not cross
// subshells; exit reaches the innermost subshell or, if none, ends the
// script (nil). n counts loop levels for break/continue n.
func (in *interp) findFrame(k frameKind, n int) *frame {
	loop := k == frameBreak || k == frameCont
	for _, f := range slices.Backward(in.frames) {
		switch {
		case f.kind == k && (!loop || n <= 1), k == frameFunc && f.kind == frameSub:
			return f
		case f.kind == k:
			n--
		case loop && (f.kind == frameFunc || f.kind == frameSub):
			return nil
		}
	}
	return nil
}

func (in *interp) ifClause(st *state, c *syntax.IfClause, io ioctx) *state {
	if len(c.Cond) == 0 { // a plain else
		return in.stmts(st, c.Then, io)
	}
	st = in.stmts(st, c.Cond, io)
	if st.flow != flowLive {
		return st
	}
	switch st.status {
	case stOK:
		return in.stmts(st, c.Then, io)
	case stFail:
		if c.Else == nil {
			st.status = stOK
			return st
		}
		return in.ifClause(st, c.Else, io)
	}
	root, cond, line := st.guard, lastStmt(c.Cond), c.Position.Line()
	thenEnd := in.stmts(st.under(&reason{why: whySucceeds, node: cond, line: line}), c.Then, io)
	st.guard = &guard{parent: root, possible: true, why: &reason{why: whyFails, node: cond, line: line}}
	st.status = stOK
	if c.Else != nil {
		st = in.ifClause(st, c.Else, io)
	}
	return join(root, []*state{thenEnd, st}, nil, &reason{why: whyAfter, line: line})
}

func (in *interp) binary(st *state, c *syntax.BinaryCmd, io ioctx) *state {
	switch c.Op {
	case syntax.Pipe, syntax.PipeAll:
		xio := io
		xio.stdout = sinkPipe
		if c.Op == syntax.PipeAll {
			xio.stderr = sinkPipe
		}
		x := in.subshell(st, xio, func(sub *state, io ioctx) *state { return in.stmt(sub, c.X, io) })
		yio := io
		yio.stdin = x.out
		y := in.subshell(st, yio, func(sub *state, io ioctx) *state { return in.stmt(sub, c.Y, io) })
		st.status, st.out = y.status, y.out
		return st
	case syntax.AndStmt, syntax.OrStmt:
	default:
		st.status = stUnknown
		return st
	}
	runY, why, skip := stOK, whySucceeds, whyFails
	xio := io
	if c.Op == syntax.OrStmt {
		runY, why, skip = stFail, whyFails, whySucceeds
		xio.ignored = xio.ignored || isTrue(c.Y)
	}
	st = in.stmt(st, c.X, xio)
	if st.flow != flowLive {
		return st
	}
	switch st.status {
	case runY:
		return in.stmt(st, c.Y, io)
	case runY.not():
		return st
	}
	root := st.guard
	r := &reason{why: why, node: c.X, line: c.OpPos.Line()}
	yEnd := in.stmt(st.under(r), c.Y, io)
	st.guard = &guard{parent: root, possible: true, why: &reason{why: skip, node: c.X, line: r.line}}
	st.status = runY.not()
	return join(root, []*state{yEnd, st}, nil, &reason{why: whyAfter, line: c.OpPos.Line()})
}

// isTrue reports whether s is `true` or `:`, as in `cmd || true`.
func isTrue(s *syntax.Stmt) bool {
	ce, ok := s.Cmd.(*syntax.CallExpr)
	if !ok || len(ce.Args) != 1 || len(ce.Assigns) > 0 {
		return false
	}
	w := ce.Args[0].Lit()
	return w == "true" || w == ":"
}

func (in *interp) caseClause(st *state, c *syntax.CaseClause, io ioctx) *state {
	word := in.expandValue(st, c.Word, io)
	root := st.guard
	var branches []*state
	undecided := false
	matched := false
	for i := 0; i < len(c.Items) && !matched; i++ {
		item := c.Items[i]
		m := in.matchAny(st, word, item.Patterns, io)
		if m == stFail {
			continue
		}
		if m == stOK && !undecided {
			// Taken on every path: run it (and what it falls through to).
			return in.caseBody(st, c, i, io)
		}
		b := st.under(&reason{why: whyCase, node: item.Patterns[0], line: item.Pos().Line()})
		branches = append(branches, in.caseBody(b, c, i, io))
		undecided = true
		matched = m == stOK
	}
	if !undecided {
		st.status = stOK
		return st
	}
	if !matched {
		st.guard = &guard{parent: root, possible: true, why: &reason{why: whyCase, node: c.Word, line: c.Case.Line()}}
		st.status = stOK
		branches = append(branches, st)
	}
	return join(root, branches, nil, &reason{why: whyAfter, line: c.Case.Line()})
}

func (in *interp) caseBody(st *state, c *syntax.CaseClause, i int, io ioctx) *state {
	st.status = stOK
	for ; i < len(c.Items); i++ {
		st = in.stmts(st, c.Items[i].Stmts, io)
		if st.flow != flowLive || c.Items[i].Op != syntax.Fallthrough {
			break
		}
	}
	return st
}

// loopSpec describes a loop: it runs concretely while the condition is
// known, once abstractly otherwise. next reports whether another iteration
// starts (and prepares its state); assumeOnce says whether a loop whose
// condition is unknown is taken to run at least once (for-in over an
// unresolved list) or not (while).
type loopSpec struct {
	next       func(st *state, i int) (*state, status)
	do         []*syntax.Stmt
	post       syntax.ArithmExpr // the C-style loop's step
	vars       []string          // loop variables, unknown in the abstract iteration
	assumeOnce bool
	fixpoint   bool // the condition depends only on variables
	why        *reason
}

func (in *interp) loop(st *state, spec loopSpec, io ioctx) *state {
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
		if cur.flow != flowLive || cond == stFail {
			exits = append(exits, cur)
			break
		}
		if cond == stUnknown || i >= maxIterations || in.overBudget() || widen {
			exits = append(exits, in.abstractIteration(cur, spec, cont, cond == stUnknown && (!spec.assumeOnce || i > 0), io)...)
			break
		}
		if spec.fixpoint {
			if prev != nil && sameArgs(prev, cur) && maps.EqualFunc(prev.vars, cur.vars, variable.same) {
				// Nothing changes between iterations: the loop only ends
				// by break or exit.
				break
			}
			prev = cur.clone()
		}
		records := len(in.order)
		if cur = in.iterate(cur, spec, cont, io); cur.flow != flowLive {
			exits = append(exits, cur)
			break
		}
		// Once iterations only run on some paths (after a conditional
		// break) and stop finding new calls, the rest is walked once,
		// abstractly: a 30-attempt retry loop costs a few iterations.
		widen = i >= minConcrete && len(in.order) == records && cur.guard.possibleBelow(root) != nil
	}
	res := join(root, append(brk.states, exits...), []*frame{brk, cont}, &reason{why: whyAfter, line: spec.why.line})
	if res.flow == flowLive {
		res.status = stOK
	}
	return res
}

// abstractIteration runs the body once with the loop variables unknown.
// The state after it merges "not run" and "run", since the loop may repeat.
func (in *interp) abstractIteration(cur *state, spec loopSpec, cont *frame, possible bool, io ioctx) []*state {
	pre := cur.clone()
	for _, n := range spec.vars {
		cur.vars[n] = unknownVar(n)
	}
	if possible {
		cur.guard = &guard{parent: cur.guard, possible: true, why: spec.why}
	}
	it := in.iterate(cur, spec, cont, io)
	if it.flow == flowLive {
		// Values after a loop that may repeat: what they were, or anything
		// the body makes of them.
		m := merge([]*state{it, pre})
		m.guard, it = it.guard, m
	}
	if possible {
		return []*state{pre, it}
	}
	return []*state{it}
}

// iterate runs the body once from cur, joins the paths that continue, and
// runs the step.
func (in *interp) iterate(cur *state, spec loopSpec, cont *frame, io ioctx) *state {
	root := cur.guard
	end := in.stmts(cur, spec.do, io)
	it := join(root, append(cont.states, end), []*frame{cont}, &reason{why: whyAfter, line: spec.why.line})
	cont.states = nil
	if it.flow == flowLive && spec.post != nil {
		in.arith(it, spec.post, io)
	}
	return it
}

func (in *interp) whileClause(st *state, c *syntax.WhileClause, io ioctx) *state {
	return in.loop(st, loopSpec{
		next: func(cur *state, _ int) (*state, status) {
			cur = in.stmts(cur, c.Cond, io)
			if c.Until {
				return cur, cur.status.not()
			}
			return cur, cur.status
		},
		do:       c.Do,
		fixpoint: true,
		why:      &reason{why: whyLoop, node: lastStmt(c.Cond), line: c.WhilePos.Line()},
	}, io)
}

func lastStmt(list []*syntax.Stmt) syntax.Node {
	if len(list) == 0 {
		return nil
	}
	return list[len(list)-1]
}

func (in *interp) forClause(st *state, c *syntax.ForClause, io ioctx) *state {
	why := &reason{why: whyLoop, node: c.Loop, line: c.ForPos.Line()}
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
			do: c.Do, vars: []string{name}, assumeOnce: true, why: why,
		}, io)
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
			do: c.Do, post: l.Post, vars: arithNames(l.Init, l.Cond, l.Post), assumeOnce: true, fixpoint: true, why: why,
		}, io)
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
