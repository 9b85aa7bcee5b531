package lint

import (
	"regexp"
	"strconv"
	"strings"

	"mvdan.cc/sh/v3/pattern"
	"mvdan.cc/sh/v3/syntax"
)

// patternRE is a compiled shell pattern.
type patternRE struct{ re *regexp.Regexp }

func (p *patternRE) match(s string) bool { return p.re.MatchString(s) }

const maxPatternCache = 512

// pattern compiles a shell pattern (as in case and [[ == ]]), nil if it is
// not valid.
func (in *interp) pattern(pat string) *patternRE {
	if p, ok := in.patterns[pat]; ok {
		return p
	}
	var p *patternRE
	if expr, err := pattern.Regexp(pat, pattern.EntireString); err == nil {
		if re, err := regexp.Compile(expr); err == nil {
			p = &patternRE{re: re}
		}
	}
	if len(in.patterns) < maxPatternCache {
		in.patterns[pat] = p
	}
	return p
}

// patternOf turns a word into a shell pattern: unquoted parts keep their
// pattern meaning, quoted parts match literally. ok is false when part of
// the pattern is unknown.
func (in *interp) patternOf(st *state, w *syntax.Word, io ioctx) (string, bool) {
	if w == nil {
		return "", true
	}
	var b strings.Builder
	for _, p := range w.Parts {
		switch p := p.(type) {
		case *syntax.Lit:
			b.WriteString(p.Value)
		case *syntax.SglQuoted:
			b.WriteString(pattern.QuoteMeta(p.Value, 0))
		case *syntax.DblQuoted:
			s, ok := in.partValue(st, p, io, false).exact()
			if !ok {
				return "", false
			}
			b.WriteString(pattern.QuoteMeta(s, 0))
		default:
			s, ok := in.partValue(st, p, io, false).exact()
			if !ok {
				return "", false
			}
			b.WriteString(s)
		}
	}
	return b.String(), true
}

// matchValue matches every alternative of v against a pattern.
func (in *interp) matchValue(v value, pat string, patOK bool) status {
	res := stUnknown
	for i, t := range v {
		var m status
		s, known := t.exact()
		switch {
		case patOK && pat == "*":
			m = stOK
		case !known || !patOK:
			m = stUnknown
		default:
			re := in.pattern(pat)
			if re == nil {
				m = stUnknown
			} else {
				m = statusOf(re.match(s))
			}
		}
		if i == 0 {
			res = m
		} else if res != m {
			return stUnknown
		}
	}
	return res
}

// matchAny is a case item: does word match one of the patterns?
func (in *interp) matchAny(st *state, word value, patterns []*syntax.Word, io ioctx) status {
	res := stFail
	for _, p := range patterns {
		pat, ok := in.patternOf(st, p, io)
		switch in.matchValue(word, pat, ok) {
		case stOK:
			return stOK
		case stUnknown:
			res = stUnknown
		}
	}
	return res
}

// testExpr evaluates [[ ... ]].
func (in *interp) testExpr(st *state, x syntax.TestExpr, io ioctx) status {
	switch x := x.(type) {
	case *syntax.Word:
		return nonEmpty(in.expandValue(st, x, io))
	case *syntax.ParenTest:
		return in.testExpr(st, x.X, io)
	case *syntax.UnaryTest:
		switch x.Op {
		case syntax.TsNot:
			return in.testExpr(st, x.X, io).not()
		case syntax.TsEmpStr, syntax.TsNempStr:
			w, ok := x.X.(*syntax.Word)
			if !ok {
				return stUnknown
			}
			s := nonEmpty(in.expandValue(st, w, io))
			if x.Op == syntax.TsEmpStr {
				return s.not()
			}
			return s
		}
		return stUnknown
	case *syntax.BinaryTest:
		switch x.Op {
		case syntax.AndTest:
			l := in.testExpr(st, x.X, io)
			if l == stFail {
				return stFail
			}
			r := in.testExpr(st, x.Y, io)
			return and3(l, r)
		case syntax.OrTest:
			l := in.testExpr(st, x.X, io)
			if l == stOK {
				return stOK
			}
			return or3(l, in.testExpr(st, x.Y, io))
		}
		lw, lok := x.X.(*syntax.Word)
		rw, rok := x.Y.(*syntax.Word)
		if !lok || !rok {
			return stUnknown
		}
		left := in.expandValue(st, lw, io)
		switch x.Op {
		case syntax.TsMatch, syntax.TsMatchShort, syntax.TsNoMatch:
			pat, ok := in.patternOf(st, rw, io)
			m := in.matchValue(left, pat, ok)
			if x.Op == syntax.TsNoMatch {
				return m.not()
			}
			return m
		}
		return compare(x.Op.String(), left, in.expandValue(st, rw, io))
	}
	return stUnknown
}

func and3(a, b status) status {
	switch {
	case a == stFail || b == stFail:
		return stFail
	case a == stOK && b == stOK:
		return stOK
	}
	return stUnknown
}

func or3(a, b status) status {
	switch {
	case a == stOK || b == stOK:
		return stOK
	case a == stFail && b == stFail:
		return stFail
	}
	return stUnknown
}

func nonEmpty(v value) status {
	res := stUnknown
	for i, t := range v {
		var m status
		if s, ok := t.exact(); ok {
			m = statusOf(s != "")
		} else if hasKnownNonEmpty(t) {
			m = stOK
		}
		if i == 0 {
			res = m
		} else if res != m {
			return stUnknown
		}
	}
	return res
}

// compare evaluates a binary test operator on every pair of alternatives.
func compare(op string, l, r value) status {
	res := stUnknown
	first := true
	for _, a := range l {
		for _, b := range r {
			m := compare1(op, a, b)
			if first {
				res, first = m, false
			} else if res != m {
				return stUnknown
			}
		}
	}
	return res
}

func compare1(op string, a, b text) status {
	x, okA := a.exact()
	y, okB := b.exact()
	if !okA || !okB {
		return stUnknown
	}
	switch op {
	case "=", "==":
		return statusOf(x == y)
	case "!=":
		return statusOf(x != y)
	case "<":
		return statusOf(x < y)
	case ">":
		return statusOf(x > y)
	}
	i, err1 := strconv.ParseInt(strings.TrimSpace(x), 0, 64)
	j, err2 := strconv.ParseInt(strings.TrimSpace(y), 0, 64)
	if err1 != nil || err2 != nil {
		return stUnknown
	}
	switch op {
	case "-eq":
		return statusOf(i == j)
	case "-ne":
		return statusOf(i != j)
	case "-lt":
		return statusOf(i < j)
	case "-le":
		return statusOf(i <= j)
	case "-gt":
		return statusOf(i > j)
	case "-ge":
		return statusOf(i >= j)
	}
	return stUnknown
}

var (
	binaryTestOps = map[string]bool{"=": true, "==": true, "!=": true, "<": true, ">": true,
		"-eq": true, "-ne": true, "-lt": true, "-le": true, "-gt": true, "-ge": true,
		"-nt": true, "-ot": true, "-ef": true, "=~": true}
	unaryTestOps = map[string]bool{"-z": true, "-n": true, "-e": true, "-f": true, "-d": true, "-r": true, "-w": true,
		"-x": true, "-s": true, "-L": true, "-h": true, "-b": true, "-c": true, "-p": true, "-S": true, "-t": true,
		"-g": true, "-u": true, "-k": true, "-O": true, "-G": true, "-N": true, "-v": true, "-a": true, "-o": true}
)

// testArgs evaluates the arguments of `test` / `[` (without the "]").
func testArgs(args []text) status {
	p := &testParser{args: args}
	s := p.or()
	if p.bad || p.i != len(args) {
		return stUnknown
	}
	return s
}

type testParser struct {
	args []text
	i    int
	bad  bool
}

func (p *testParser) peek(k int) (string, bool) {
	if p.i+k >= len(p.args) {
		return "", false
	}
	return p.args[p.i+k].exact()
}

func (p *testParser) or() status {
	s := p.and()
	for {
		if w, ok := p.peek(0); !ok || w != "-o" || p.i+1 >= len(p.args) {
			return s
		}
		p.i++
		s = or3(s, p.and())
	}
}

func (p *testParser) and() status {
	s := p.not()
	for {
		if w, ok := p.peek(0); !ok || w != "-a" || p.i+1 >= len(p.args) {
			return s
		}
		p.i++
		s = and3(s, p.not())
	}
}

func (p *testParser) not() status {
	if w, ok := p.peek(0); ok && w == "!" && p.i+1 < len(p.args) {
		p.i++
		return p.not().not()
	}
	return p.primary()
}

func (p *testParser) primary() status {
	if p.i >= len(p.args) {
		p.bad = true
		return stUnknown
	}
	if w, ok := p.peek(0); ok && w == "(" {
		p.i++
		s := p.or()
		if c, ok := p.peek(0); ok && c == ")" {
			p.i++
			return s
		}
		p.bad = true
		return stUnknown
	}
	if op, ok := p.peek(1); ok && binaryTestOps[op] && p.i+2 < len(p.args) {
		l, r := p.args[p.i], p.args[p.i+2]
		p.i += 3
		if op == "-nt" || op == "-ot" || op == "-ef" || op == "=~" {
			return stUnknown
		}
		return compare1(op, l, r)
	}
	if op, ok := p.peek(0); ok && unaryTestOps[op] && p.i+1 < len(p.args) {
		arg := p.args[p.i+1]
		p.i += 2
		switch op {
		case "-z":
			return nonEmpty(value{arg}).not()
		case "-n":
			return nonEmpty(value{arg})
		}
		return stUnknown // file tests depend on the machine
	}
	arg := p.args[p.i]
	p.i++
	return nonEmpty(value{arg})
}

// arith evaluates an arithmetic expression, assigning as it goes.
func (in *interp) arith(st *state, x syntax.ArithmExpr, io ioctx) (int64, bool) {
	switch x := x.(type) {
	case *syntax.Word:
		if l := x.Lit(); l != "" {
			if isName(l) {
				return in.arithVar(st, l, 0)
			}
			return parseInt(l)
		}
		s, ok := in.expandValue(st, x, io).exact()
		if !ok {
			return 0, false
		}
		if isName(strings.TrimSpace(s)) {
			return in.arithVar(st, strings.TrimSpace(s), 1)
		}
		return parseInt(s)
	case *syntax.ParenArithm:
		return in.arith(st, x.X, io)
	case *syntax.UnaryArithm:
		return in.unaryArith(st, x, io)
	case *syntax.BinaryArithm:
		return in.binaryArith(st, x, io)
	}
	return 0, false
}

func parseInt(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, true
	}
	n, err := strconv.ParseInt(s, 0, 64)
	return n, err == nil
}

// arithVar reads a variable as a number (recursively, as bash does, to a
// small depth).
func (in *interp) arithVar(st *state, name string, depth int) (int64, bool) {
	if depth > 4 {
		return 0, false
	}
	e, set := in.lookup(st, name)
	if !set || e.isList {
		return 0, false
	}
	s, ok := e.v.exact()
	if !ok {
		return 0, false
	}
	s = strings.TrimSpace(s)
	if isName(s) {
		return in.arithVar(st, s, depth+1)
	}
	return parseInt(s)
}

func arithName(x syntax.ArithmExpr) string {
	if w, ok := x.(*syntax.Word); ok {
		if l := w.Lit(); isName(l) {
			return l
		}
	}
	return ""
}

func (in *interp) setArith(st *state, name string, n int64, ok bool) {
	if name == "" {
		return
	}
	if ok {
		st.setVar(name, variable{val: litValue(strconv.FormatInt(n, 10))})
	} else {
		st.setVar(name, variable{val: unknownValue(varPlaceholder(name))})
	}
}

func (in *interp) unaryArith(st *state, x *syntax.UnaryArithm, io ioctx) (int64, bool) {
	switch x.Op {
	case syntax.Inc, syntax.Dec:
		name := arithName(x.X)
		n, ok := in.arith(st, x.X, io)
		d := int64(1)
		if x.Op == syntax.Dec {
			d = -1
		}
		in.setArith(st, name, n+d, ok)
		if x.Post {
			return n, ok
		}
		return n + d, ok
	}
	n, ok := in.arith(st, x.X, io)
	switch x.Op {
	case syntax.Not:
		if n == 0 {
			return 1, ok
		}
		return 0, ok
	case syntax.BitNegation:
		return ^n, ok
	case syntax.Minus:
		return -n, ok
	}
	return n, ok
}

func (in *interp) binaryArith(st *state, x *syntax.BinaryArithm, io ioctx) (int64, bool) {
	switch x.Op {
	case syntax.Assgn:
		n, ok := in.arith(st, x.Y, io)
		in.setArith(st, arithName(x.X), n, ok)
		return n, ok
	case syntax.AndArit:
		a, ok := in.arith(st, x.X, io)
		if ok && a == 0 {
			return 0, true
		}
		b, okB := in.arith(st, x.Y, io)
		return boolInt(a != 0 && b != 0), ok && okB
	case syntax.OrArit:
		a, ok := in.arith(st, x.X, io)
		if ok && a != 0 {
			return 1, true
		}
		b, okB := in.arith(st, x.Y, io)
		return boolInt(a != 0 || b != 0), ok && okB
	case syntax.TernQuest:
		c, ok := in.arith(st, x.X, io)
		colon, isColon := x.Y.(*syntax.BinaryArithm)
		if !ok || !isColon || colon.Op != syntax.TernColon {
			return 0, false
		}
		if c != 0 {
			return in.arith(st, colon.X, io)
		}
		return in.arith(st, colon.Y, io)
	case syntax.Comma:
		in.arith(st, x.X, io)
		return in.arith(st, x.Y, io)
	}
	if op, ok := compoundAssign[x.Op]; ok {
		a, okA := in.arith(st, x.X, io)
		b, okB := in.arith(st, x.Y, io)
		n, okN := applyArith(op, a, b)
		ok := okA && okB && okN
		in.setArith(st, arithName(x.X), n, ok)
		return n, ok
	}
	a, okA := in.arith(st, x.X, io)
	b, okB := in.arith(st, x.Y, io)
	n, ok := applyArith(x.Op, a, b)
	return n, okA && okB && ok
}

var compoundAssign = map[syntax.BinAritOperator]syntax.BinAritOperator{
	syntax.AddAssgn: syntax.Add, syntax.SubAssgn: syntax.Sub, syntax.MulAssgn: syntax.Mul,
	syntax.QuoAssgn: syntax.Quo, syntax.RemAssgn: syntax.Rem, syntax.AndAssgn: syntax.And,
	syntax.OrAssgn: syntax.Or, syntax.XorAssgn: syntax.Xor, syntax.ShlAssgn: syntax.Shl, syntax.ShrAssgn: syntax.Shr,
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func applyArith(op syntax.BinAritOperator, a, b int64) (int64, bool) {
	switch op {
	case syntax.Add:
		return a + b, true
	case syntax.Sub:
		return a - b, true
	case syntax.Mul:
		return a * b, true
	case syntax.Quo:
		if b == 0 || a == -1<<63 && b == -1 {
			return 0, false
		}
		return a / b, true
	case syntax.Rem:
		if b == 0 || a == -1<<63 && b == -1 {
			return 0, false
		}
		return a % b, true
	case syntax.Pow:
		if b < 0 || b > 63 {
			return 0, false
		}
		n := int64(1)
		for i := int64(0); i < b; i++ {
			n *= a
		}
		return n, true
	case syntax.Eql:
		return boolInt(a == b), true
	case syntax.Neq:
		return boolInt(a != b), true
	case syntax.Lss:
		return boolInt(a < b), true
	case syntax.Gtr:
		return boolInt(a > b), true
	case syntax.Leq:
		return boolInt(a <= b), true
	case syntax.Geq:
		return boolInt(a >= b), true
	case syntax.And:
		return a & b, true
	case syntax.Or:
		return a | b, true
	case syntax.Xor:
		return a ^ b, true
	case syntax.Shl:
		if b < 0 || b > 63 {
			return 0, false
		}
		return a << uint(b), true
	case syntax.Shr:
		if b < 0 || b > 63 {
			return 0, false
		}
		return a >> uint(b), true
	}
	return 0, false
}
