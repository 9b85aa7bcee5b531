package lint

import (
	"strconv"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
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
	kinds    []dpf.Kind
	funcs    map[string]*syntax.FuncDecl
	called   map[*syntax.FuncDecl]bool
	stack    []string
	frames   []*frame
	recs     map[recKey]*record
	order    []*record
	warnings []Warning
	warned   map[string]bool
	steps    int
	callText map[*syntax.CallExpr]string
	printer  *syntax.Printer
	patterns map[string]*patternRE
	calls    map[*syntax.CallExpr]bool
}

func (in *interp) warn(line uint, msg string) {
	k := strconv.FormatUint(uint64(line), 10) + msg
	if in.warned[k] {
		return
	}
	in.warned[k] = true
	in.warnings = append(in.warnings, Warning{File: in.file, Line: int(line), Message: msg})
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
	if s.Cmd == nil {
		io = in.redirect(st, s.Redirs, io)
		return st
	}
	io = in.redirect(st, s.Redirs, io)
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
		return st
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
		return st
	case *syntax.DeclClause:
		return in.decl(st, c, io)
	case *syntax.TestClause:
		st.status = in.testExpr(st, c.X, io)
		return st
	case *syntax.ArithmCmd:
		n, ok := in.arith(st, c.X, io)
		st.status = stUnknown
		if ok {
			st.status = statusOf(n != 0)
		}
		return st
	case *syntax.LetClause:
		st.status = stUnknown
		for _, x := range c.Exprs {
			if n, ok := in.arith(st, x, io); ok {
				st.status = statusOf(n != 0)
			} else {
				st.status = stUnknown
			}
		}
		return st
	case *syntax.TimeClause:
		if c.Stmt != nil {
			return in.stmt(st, c.Stmt, io)
		}
		return st
	case *syntax.CoprocClause:
		if c.Stmt != nil {
			in.subshell(st, io, func(sub *state, io ioctx) *state { return in.stmt(sub, c.Stmt, io) })
		}
		st.status = stOK
		return st
	}
	st.status = stUnknown
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
	states := append(f.states, end)
	res := join(st.guard, states, []*frame{f}, &reason{kind: "after"})
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
	for i := len(in.frames) - 1; i >= 0; i-- {
		f := in.frames[i]
		switch k {
		case frameBreak, frameCont:
			if f.kind == frameFunc || f.kind == frameSub {
				return nil
			}
			if f.kind == k {
				if n <= 1 {
					return f
				}
				n--
			}
		case frameFunc:
			if f.kind == frameFunc || f.kind == frameSub {
				return f
			}
		case frameSub:
			if f.kind == frameSub {
				return f
			}
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
	cond := st.status
	switch cond {
	case stOK:
		return in.stmts(st, c.Then, io)
	case stFail:
		if c.Else == nil {
			st.status = stOK
			return st
		}
		return in.ifClause(st, c.Else, io)
	}
	root := st.guard
	why := &reason{kind: "if", node: condNode(c), line: c.Position.Line()}
	thenSt := st.clone()
	thenSt.guard = &guard{parent: root, possible: true, why: why}
	thenEnd := in.stmts(thenSt, c.Then, io)
	elseSt := st
	elseSt.guard = &guard{parent: root, possible: true, why: &reason{kind: "else", node: condNode(c), line: c.Position.Line()}}
	elseSt.status = stOK
	var elseEnd *state
	if c.Else != nil {
		elseEnd = in.ifClause(elseSt, c.Else, io)
	} else {
		elseEnd = elseSt
	}
	return join(root, []*state{thenEnd, elseEnd}, nil, &reason{kind: "after", line: c.Position.Line()})
}

func condNode(c *syntax.IfClause) syntax.Node {
	if len(c.Cond) == 1 {
		return c.Cond[0]
	}
	if len(c.Cond) > 0 {
		return c.Cond[len(c.Cond)-1]
	}
	return nil
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
	and := c.Op == syntax.AndStmt
	xio := io
	if !and && isTrue(c.Y) {
		xio.ignored = true
	}
	st = in.stmt(st, c.X, xio)
	if st.flow != flowLive {
		return st
	}
	runY := stOK
	if !and {
		runY = stFail
	}
	switch st.status {
	case runY:
		return in.stmt(st, c.Y, io)
	case runY.not():
		return st
	}
	root := st.guard
	kind := "&&"
	if !and {
		kind = "||"
	}
	why := &reason{kind: kind, node: c.X, line: c.OpPos.Line()}
	ySt := st.clone()
	ySt.guard = &guard{parent: root, possible: true, why: why}
	yEnd := in.stmt(ySt, c.Y, io)
	skip := st
	skip.guard = &guard{parent: root, possible: true, why: why}
	skip.status = runY.not()
	return join(root, []*state{yEnd, skip}, nil, &reason{kind: "after", line: c.OpPos.Line()})
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
	word := in.expandString(st, c.Word, io)
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
		b := st.clone()
		b.guard = &guard{parent: root, possible: true, why: &reason{kind: "case", node: item.Patterns[0], line: item.Pos().Line()}}
		branches = append(branches, in.caseBody(b, c, i, io))
		undecided = true
		matched = m == stOK
	}
	if !undecided {
		st.status = stOK
		return st
	}
	if !matched {
		rest := st
		rest.guard = &guard{parent: root, possible: true, why: &reason{kind: "case", node: c.Word, line: c.Case.Line()}}
		rest.status = stOK
		branches = append(branches, rest)
	}
	return join(root, branches, nil, &reason{kind: "after", line: c.Case.Line()})
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
		iterRoot := cur.guard
		records := len(in.order)
		end := spec.body(cur)
		cur = join(iterRoot, append(cont.states, end), []*frame{cont}, &reason{kind: "after", line: spec.why.line})
		cont.states = nil
		if cur.flow == flowLive && spec.post != nil {
			cur = spec.post(cur)
		}
		if cur.flow != flowLive {
			exits = append(exits, cur)
			break
		}
		// Once iterations only run on some paths (after a conditional
		// break) and stop finding new calls, the rest is walked once,
		// abstractly: a 30-attempt retry loop costs a few iterations.
		widen = i >= minConcrete && len(in.order) == records && possibleSince(cur.guard, root)
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
	iterRoot := body.guard
	if possible {
		body.guard = &guard{parent: iterRoot, possible: true, why: spec.why}
	}
	bodyRoot := body.guard
	end := spec.body(body)
	it := join(bodyRoot, append(cont.states, end), []*frame{cont}, &reason{kind: "after", line: spec.why.line})
	cont.states = nil
	if it.flow == flowLive && spec.post != nil {
		it = spec.post(it)
	}
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

// possibleSince reports whether a possible guard lies between g and root.
func possibleSince(g, root *guard) bool {
	for x := g; x != nil && x != root; x = x.parent {
		if x.possible {
			return true
		}
	}
	return false
}

// sameState reports whether two loop iterations start alike.
func sameState(a, b *state) bool {
	return sameArgs(a, b) && sameVars(a.vars, b.vars)
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
		var items []text
		unknownList := false
		if l.InPos.IsValid() {
			alts, unknownCount := in.expandFields(st, l.Items, io)
			if len(alts) == 1 && !unknownCount {
				items = alts[0]
			} else {
				unknownList = true
			}
		} else if st.argsUnknown {
			unknownList = true
		} else {
			items = st.args
		}
		return in.loop(st, loopSpec{
			next: func(cur *state, i int) (*state, status) {
				if unknownList {
					return cur, stUnknown
				}
				if i >= len(items) {
					return cur, stFail
				}
				cur.setVar(name, variable{val: value{items[i]}})
				return cur, stOK
			},
			body:       body,
			abstract:   func(cur *state) { cur.setVar(name, variable{val: unknownValue(varPlaceholder(name))}) },
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
				n, ok := in.arith(cur, l.Cond, io)
				if !ok {
					return cur, stUnknown
				}
				return cur, statusOf(n != 0)
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
					cur.setVar(n, variable{val: unknownValue(varPlaceholder(n))})
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
				if l := n.Lit(); l != "" && isName(l) {
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

func isName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

func (in *interp) decl(st *state, c *syntax.DeclClause, io ioctx) *state {
	variant := ""
	if c.Variant != nil {
		variant = c.Variant.Value
	}
	local := variant == "local" || (variant == "declare" || variant == "typeset") && len(st.locals) > 0
	defer func() { st.status = stOK }() // local x=$(false) succeeds
	for _, a := range c.Args {
		if a.Name == nil {
			continue // an option such as -a, -r, -x
		}
		name := a.Name.Value
		if local {
			st.declareLocal(name)
		}
		if a.Naked && a.Value == nil && a.Array == nil {
			if local {
				st.setVar(name, variable{val: litValue("")})
			}
			continue
		}
		in.assign(st, a, io)
	}
	return st
}

// assign performs one assignment.
func (in *interp) assign(st *state, a *syntax.Assign, io ioctx) {
	if a.Name == nil {
		return
	}
	name := a.Name.Value
	old, had := st.vars.get(name)
	switch {
	case a.Array != nil:
		var elems []text
		unknown := false
		for _, e := range a.Array.Elems {
			if e.Value == nil {
				continue
			}
			if e.Index != nil {
				unknown = true
			}
			alts, unknownCount := in.expandFields(st, []*syntax.Word{e.Value}, io)
			if len(alts) != 1 || unknownCount {
				unknown = true
				continue
			}
			elems = append(elems, alts[0]...)
		}
		if a.Append && had {
			if !old.isArr || old.arrUnknown {
				unknown = true
			} else {
				elems = append(append([]text(nil), old.arr...), elems...)
			}
		}
		st.setVar(name, variable{isArr: true, arr: elems, arrUnknown: unknown})
	case a.Index != nil:
		v := in.expandValue(st, a.Value, io)
		i, ok := in.arith(st, a.Index, io)
		if !ok || !had || !old.isArr || old.arrUnknown || len(v) != 1 || i < 0 || i > int64(len(old.arr)) {
			st.setVar(name, variable{isArr: true, arrUnknown: true})
			return
		}
		arr := append([]text(nil), old.arr...)
		if int(i) == len(arr) {
			arr = append(arr, v[0])
		} else {
			arr[i] = v[0]
		}
		st.setVar(name, variable{isArr: true, arr: arr})
	default:
		v := in.expandValue(st, a.Value, io)
		if a.Append {
			base := unknownValue(varPlaceholder(name))
			if had {
				base = old.scalar(name)
			}
			v = concatValues(base, v, varPlaceholder(name))
		}
		if had && old.isArr && !a.Append {
			// x=v on an array sets element 0.
			if old.arrUnknown || len(v) != 1 {
				st.setVar(name, variable{isArr: true, arrUnknown: true})
				return
			}
			arr := append([]text(nil), old.arr...)
			if len(arr) == 0 {
				arr = append(arr, v[0])
			} else {
				arr[0] = v[0]
			}
			st.setVar(name, variable{isArr: true, arr: arr})
			return
		}
		st.setVar(name, variable{val: named(v, name)})
	}
}

// named gives a wholly unknown value the name of the variable holding it, so
// that "$(kubectl get ...)" assigned to secret_name shows as
// ${secret_name}. Values already named after a variable keep their name.
func named(v value, name string) value {
	if len(v) != 1 || !v[0].wholeUnknown() {
		return v
	}
	p := v[0][0].s
	if strings.HasPrefix(p, "$(") || strings.HasPrefix(p, "`") || isPositionalPlaceholder(p) {
		return unknownValue(varPlaceholder(name))
	}
	return v
}

func isPositionalPlaceholder(p string) bool {
	if !strings.HasPrefix(p, "${") || !strings.HasSuffix(p, "}") {
		return false
	}
	inner := p[2 : len(p)-1]
	if inner == "@" || inner == "*" {
		return true
	}
	_, err := strconv.Atoi(inner)
	return err == nil
}

func (in *interp) redirect(st *state, redirs []*syntax.Redirect, io ioctx) ioctx {
	for _, r := range redirs {
		fd := -1
		if r.N != nil {
			if n, err := strconv.Atoi(r.N.Value); err == nil {
				fd = n
			}
		}
		switch r.Op {
		case syntax.RdrOut, syntax.AppOut, syntax.RdrClob, syntax.AppClob:
			if fd < 0 {
				fd = 1
			}
			setFD(&io, fd, in.target(st, r.Word, io))
		case syntax.RdrAll, syntax.AppAll, syntax.RdrAllClob, syntax.AppAllClob:
			t := in.target(st, r.Word, io)
			io.stdout, io.stderr = t, t
		case syntax.DplOut:
			if fd < 0 {
				fd = 1
			}
			w := ""
			if r.Word != nil {
				w = r.Word.Lit()
			}
			switch w {
			case "1":
				setFD(&io, fd, io.stdout)
			case "2":
				setFD(&io, fd, io.stderr)
			case "-":
				setFD(&io, fd, sinkNull)
			default:
				if _, err := strconv.Atoi(w); err != nil && fd == 1 && r.N == nil {
					t := in.target(st, r.Word, io) // >& file
					io.stdout, io.stderr = t, t
				}
			}
		case syntax.RdrIn:
			if fd < 0 || fd == 0 {
				io.stdin = nil
				if r.Word != nil && r.Word.Lit() == "/dev/null" {
					io.stdin = litValue("")
				}
			}
		case syntax.Hdoc, syntax.DashHdoc:
			io.stdin = in.heredoc(st, r, io)
		case syntax.WordHdoc:
			if r.Word != nil {
				io.stdin = concatValues(in.expandValue(st, r.Word, io), litValue("\n"), "$(…)")
			}
		}
	}
	return io
}

func setFD(io *ioctx, fd int, s sink) {
	switch fd {
	case 1:
		io.stdout = s
	case 2:
		io.stderr = s
	}
}

func (in *interp) target(st *state, w *syntax.Word, io ioctx) sink {
	if w == nil {
		return sinkFile
	}
	if s, ok := in.expandValue(st, w, io).exact(); ok && s == "/dev/null" {
		return sinkNull
	}
	return sinkFile
}

// heredoc expands a here-document body: variables and command
// substitutions when the delimiter is unquoted, nothing when it is quoted.
// <<- strips leading tabs.
func (in *interp) heredoc(st *state, r *syntax.Redirect, io ioctx) value {
	if r.Hdoc == nil {
		return litValue("")
	}
	quoted := false
	if r.Word != nil {
		for _, p := range r.Word.Parts {
			switch p.(type) {
			case *syntax.SglQuoted, *syntax.DblQuoted:
				quoted = true
			}
		}
		if strings.ContainsRune(r.Word.Lit(), '\\') {
			quoted = true
		}
	}
	var v value
	if quoted {
		var b strings.Builder
		for _, p := range r.Hdoc.Parts {
			if l, ok := p.(*syntax.Lit); ok {
				b.WriteString(l.Value)
			}
		}
		v = litValue(b.String())
	} else {
		v = in.expandHeredoc(st, r.Hdoc, io)
	}
	if r.Op == syntax.DashHdoc {
		out := make(value, len(v))
		for i, t := range v {
			out[i] = stripTabs(t)
		}
		v = out
	}
	return v
}

func stripTabs(t text) text {
	out := make(text, 0, len(t))
	atLineStart := true
	for _, s := range t {
		if s.unknown {
			out = append(out, s)
			atLineStart = false
			continue
		}
		var b strings.Builder
		for i := 0; i < len(s.s); i++ {
			c := s.s[i]
			if atLineStart && c == '\t' {
				continue
			}
			atLineStart = c == '\n'
			b.WriteByte(c)
		}
		out = out.concat(lit(b.String()))
	}
	return out
}
