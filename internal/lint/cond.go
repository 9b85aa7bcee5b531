package lint

import (
	"cmp"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/sets"
	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/pattern"
	"mvdan.cc/sh/v3/syntax"
)

const maxPatternCache = 512

// pattern compiles a shell pattern (as in case and [[ == ]]), nil if it is
// not valid.
func (in *interp) pattern(pat string) *regexp.Regexp {
	if p, ok := in.patterns[pat]; ok {
		return p
	}
	p, _ := glob(pat)
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
		default:
			s, ok := in.partValue(st, p, io, false).exact()
			if !ok {
				return "", false
			}
			if _, dq := p.(*syntax.DblQuoted); dq {
				s = pattern.QuoteMeta(s, 0)
			}
			b.WriteString(s)
		}
	}
	return b.String(), true
}

// agree is the status f gives every one of xs, unknown when they differ
// (or there are none).
func agree[T any](xs []T, f func(T) status) status {
	res := stUnknown
	for i, x := range xs {
		if m := f(x); i == 0 {
			res = m
		} else if res != m {
			return stUnknown
		}
	}
	return res
}

// matchValue matches every alternative of v against a pattern.
func (in *interp) matchValue(v value, pat string, patOK bool) status {
	return agree(v, func(t text) status {
		s, known := t.exact()
		switch {
		case patOK && pat == "*":
			return stOK
		case !known || !patOK:
			return stUnknown
		}
		if re := in.pattern(pat); re != nil {
			return statusOf(re.MatchString(s))
		}
		return stUnknown
	})
}

// matchAny is a case item: does word match one of the patterns?
func (in *interp) matchAny(st *state, word value, patterns []*syntax.Word, io ioctx) status {
	res := stFail
	for _, p := range patterns {
		pat, ok := in.patternOf(st, p, io)
		if res = or3(res, in.matchValue(word, pat, ok)); res == stOK {
			break
		}
	}
	return res
}

func (in *interp) testExpr(st *state, x syntax.TestExpr, io ioctx) status {
	switch x := x.(type) {
	case *syntax.Word:
		return nonEmpty(in.expandValue(st, x, io))
	case *syntax.ParenTest:
		return in.testExpr(st, x.X, io)
	case *syntax.UnaryTest:
		switch x.Op {
		case syntax.TsNot, syntax.TsEmpStr: // a word tests non-empty
			return in.testExpr(st, x.X, io).not()
		case syntax.TsNempStr:
			return in.testExpr(st, x.X, io)
		}
		return stUnknown
	case *syntax.BinaryTest:
		if x.Op == syntax.AndTest || x.Op == syntax.OrTest {
			decides, join := stFail, and3 // the left side's status that skips the right side
			if x.Op == syntax.OrTest {
				decides, join = stOK, or3
			}
			if l := in.testExpr(st, x.X, io); l != decides {
				return join(l, in.testExpr(st, x.Y, io))
			}
			return decides
		}
		lw, lok := x.X.(*syntax.Word)
		rw, rok := x.Y.(*syntax.Word)
		if !lok || !rok {
			return stUnknown
		}
		switch x.Op {
		case syntax.TsEql, syntax.TsNeq, syntax.TsLss, syntax.TsGtr, syntax.TsLeq, syntax.TsGeq:
			// [[ ]] reads both sides as arithmetic expressions.
			i, okI := in.arith(st, lw, io)
			j, okJ := in.arith(st, rw, io)
			if !okI || !okJ {
				return stUnknown
			}
			return intTest(x.Op.String(), i, j)
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

func or3(a, b status) status { return and3(a.not(), b.not()).not() } // De Morgan

func nonEmpty(v value) status {
	return agree(v, func(t text) status {
		if s, ok := t.exact(); ok {
			return statusOf(s != "")
		}
		if hasKnownNonEmpty(t) {
			return stOK
		}
		return stUnknown
	})
}

// compare evaluates a binary test operator on every pair of alternatives.
func compare(op string, l, r value) status {
	return agree(l, func(a text) status {
		return agree(r, func(b text) status { return compare1(op, a, b) })
	})
}

func compare1(op string, a, b text) status {
	x, okA := a.exact()
	y, okB := b.exact()
	want, known := testResults[op]
	if !okA || !okB || !known {
		return stUnknown
	}
	if !strings.HasPrefix(op, "-") {
		return statusOf(slices.Contains(want, strings.Compare(x, y)))
	}
	// test and [ read decimal integers only.
	i, err1 := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
	j, err2 := strconv.ParseInt(strings.TrimSpace(y), 10, 64)
	if err1 != nil || err2 != nil {
		return stUnknown
	}
	return intTest(op, i, j)
}

func intTest(op string, i, j int64) status {
	if want, known := testResults[op]; known {
		return statusOf(slices.Contains(want, cmp.Compare(i, j)))
	}
	return stUnknown
}

// testResults are the results of a comparison (-1, 0, 1) for which a test
// operator succeeds.
var testResults = map[string][]int{"=": {0}, "==": {0}, "!=": {-1, 1}, "<": {-1}, ">": {1},
	"-eq": {0}, "-ne": {-1, 1}, "-lt": {-1}, "-le": {-1, 0}, "-gt": {1}, "-ge": {0, 1}}

var (
	binaryTestOps = sets.New("=", "==", "!=", "<", ">", "-eq", "-ne", "-lt", "-le", "-gt", "-ge", "-nt", "-ot", "-ef", "=~")
	unaryTestOps  = sets.New("-z", "-n", "-e", "-f", "-d", "-r", "-w", "-x", "-s", "-L", "-h", "-b", "-c", "-p", "-S", "-t",
		"-g", "-u", "-k", "-O", "-G", "-N", "-v", "-a", "-o")
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

func (p *testParser) is(s string) bool { return p.i < len(p.args) && isLit(p.args[p.i], s) }

func (p *testParser) or() status  { return p.chain("-o", p.and, or3) }
func (p *testParser) and() status { return p.chain("-a", p.not, and3) }

// chain parses operands joined by a binary operator such as -o.
func (p *testParser) chain(op string, operand func() status, join func(a, b status) status) status {
	s := operand()
	for p.is(op) && p.i+1 < len(p.args) {
		p.i++
		s = join(s, operand())
	}
	return s
}

func (p *testParser) not() status {
	if p.is("!") && p.i+1 < len(p.args) {
		p.i++
		return p.not().not()
	}
	return p.primary()
}

func (p *testParser) primary() status {
	switch rest := p.args[p.i:]; {
	case len(rest) == 0:
		p.bad = true
		return stUnknown
	case p.is("("):
		p.i++
		s := p.or()
		if !p.is(")") {
			p.bad = true
			return stUnknown
		}
		p.i++
		return s
	case len(rest) >= 3 && binaryTestOps.Has(word(rest, 1)):
		p.i += 3
		return compare1(word(rest, 1), rest[0], rest[2]) // unknown for -nt, -ot, -ef and =~
	case len(rest) >= 2 && unaryTestOps.Has(word(rest, 0)):
		p.i += 2
		switch word(rest, 0) {
		case "-z":
			return nonEmpty(value{rest[1]}).not()
		case "-n":
			return nonEmpty(value{rest[1]})
		}
		return stUnknown // file tests depend on the machine
	}
	p.i++
	return nonEmpty(value{p.args[p.i-1]})
}

// arith evaluates an arithmetic expression with expand.Arithm, assigning as
// it goes. ok is false when the expression reads a value lint cannot resolve
// or one bash would reject; every variable it assigns is then unknown.
func (in *interp) arith(st *state, x syntax.ArithmExpr, io ioctx) (int64, bool) {
	e := &arithEnv{in: in, st: st, io: io}
	x, ok := e.operands(x)
	var n int
	var err error
	if ok {
		n, err = expand.Arithm(&expand.Config{Env: e}, x)
	}
	if !ok || err != nil || e.unknown {
		for _, name := range e.assigned {
			st.vars[name] = unknownVar(name)
		}
		return 0, false
	}
	return int64(n), true
}

// arithStatus is the exit status of (( x )): success when x is not 0.
func (in *interp) arithStatus(st *state, x syntax.ArithmExpr, io ioctx) status {
	if n, ok := in.arith(st, x, io); ok {
		return statusOf(n != 0)
	}
	return stUnknown
}

// arithEnv gives expand.Arithm lint's variables. expand reads any string
// that is not a number as 0, so every value it reads is checked here and
// any other makes the result unknown.
type arithEnv struct {
	in       *interp
	st       *state
	io       ioctx
	leaves   []*syntax.Word // operands lint expands itself, read as leafPrefix+i
	assigned []string       // variables assigned, written as targetPrefix+i
	plain    []bool         // assigned by "=", which needs no old value
	reads    int
	unknown  bool
}

// Names of operands and assignment targets in the copy expand evaluates.
const (
	leafPrefix   = "__lint_operand_"
	targetPrefix = "__lint_target_"
)

// synthetic returns i for the name prefix+i, i < n.
func synthetic(name, prefix string, n int) (int, bool) {
	s, ok := strings.CutPrefix(name, prefix)
	i, err := strconv.Atoi(s)
	return i, ok && err == nil && i >= 0 && i < n
}

// operands copies x for expand.Arithm: an operand that is not a literal
// becomes a variable whose value lint expands when it is read, so reads stay
// lazy and in order; a shift count is masked to 0-63 as bash does on
// 64-bit machines. ok is false for a literal bash rejects or an assignment
// to something that is not a name.
func (e *arithEnv) operands(x syntax.ArithmExpr) (syntax.ArithmExpr, bool) {
	switch x := x.(type) {
	case *syntax.Word:
		if l := x.Lit(); l != "" {
			return x, syntax.ValidName(l) && !strings.HasPrefix(l, "__lint_") || bashNumber(l)
		}
		e.leaves = append(e.leaves, x)
		return litWord(leafPrefix + strconv.Itoa(len(e.leaves)-1)), true
	case *syntax.ParenArithm:
		y, ok := e.operands(x.X)
		return &syntax.ParenArithm{X: y}, ok
	case *syntax.UnaryArithm:
		c := *x
		y, ok := e.operands(x.X)
		if x.Op == syntax.Inc || x.Op == syntax.Dec {
			y, ok = e.target(x.X, false, ok)
		}
		c.X = y
		return &c, ok
	case *syntax.BinaryArithm:
		c := *x
		a, okA := e.operands(x.X)
		b, okB := e.operands(x.Y)
		ok := okA && okB
		switch x.Op {
		case syntax.Shl, syntax.Shr, syntax.ShlAssgn, syntax.ShrAssgn:
			b = &syntax.BinaryArithm{Op: syntax.And, X: &syntax.ParenArithm{X: b}, Y: litWord("63")}
		case syntax.TernQuest:
			colon, isColon := x.Y.(*syntax.BinaryArithm)
			ok = ok && isColon && colon.Op == syntax.TernColon
		}
		if x.Op == syntax.Assgn || x.Op >= syntax.AddAssgn && x.Op <= syntax.ShrAssgn {
			a, ok = e.target(x.X, x.Op == syntax.Assgn, ok)
		}
		c.X, c.Y = a, b
		return &c, ok
	}
	return nil, false
}

// target renames an assigned variable. expand reads its old value even for
// "="; for ++, -- and op= that value must be a number, as expand does not
// evaluate a name there the way bash does.
func (e *arithEnv) target(x syntax.ArithmExpr, plain, ok bool) (syntax.ArithmExpr, bool) {
	w, isWord := x.(*syntax.Word)
	if !isWord || !syntax.ValidName(w.Lit()) || strings.HasPrefix(w.Lit(), "__lint_") {
		return x, false
	}
	e.assigned, e.plain = append(e.assigned, w.Lit()), append(e.plain, plain)
	return litWord(targetPrefix + strconv.Itoa(len(e.assigned)-1)), ok
}

func litWord(s string) *syntax.Word {
	return &syntax.Word{Parts: []syntax.WordPart{&syntax.Lit{Value: s}}}
}

func (e *arithEnv) Get(name string) expand.Variable {
	if name == "IFS" { // read by every expand call, not by the expression
		return expand.Variable{}
	}
	var s string
	var ok, number bool
	if i, isLeaf := synthetic(name, leafPrefix, len(e.leaves)); isLeaf {
		s, ok = e.in.expandValue(e.st, e.leaves[i], e.io).exact()
	} else {
		if i, isTarget := synthetic(name, targetPrefix, len(e.assigned)); isTarget {
			if e.plain[i] {
				return expand.Variable{}
			}
			name, number = e.assigned[i], true
		}
		if x, _ := e.in.lookup(e.st, name); !x.isList {
			s, ok = x.v.exact()
		}
	}
	t := strings.TrimSpace(s)
	if syntax.ValidName(t) {
		e.reads++ // bash evaluates a name's value in turn; give up on long chains
		ok = ok && !number && e.reads <= 32
	}
	if !ok || strings.HasPrefix(t, "__lint_") || t != "" && !syntax.ValidName(t) && !bashNumber(t) {
		e.unknown = true
	}
	return expand.Variable{Set: true, Kind: expand.String, Str: s}
}

func (e *arithEnv) Set(name string, vr expand.Variable) error {
	if i, ok := synthetic(name, targetPrefix, len(e.assigned)); ok {
		name = e.assigned[i]
	}
	e.st.vars[name] = variable{val: litValue(vr.Str)}
	return nil
}

func (e *arithEnv) Each(func(string, expand.Variable) bool) {}

// bashNumber reports whether s is an integer constant bash accepts (see
// ARITHMETIC EVALUATION in bash(1)): an optional sign, then decimal, octal
// with a leading 0, hex with 0x, or base#digits for a base from 2 to 64,
// within int64. Go's 0b, 0o and 1_000 forms are not among them.
func bashNumber(s string) bool {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	base, digits := uint64(10), s
	switch {
	case s == "0x" || s == "0X":
		return true // bash reads a bare 0x as 0
	case strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X"):
		base, digits = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, digits = 8, s[1:]
	case strings.Contains(s, "#"):
		b, d, _ := strings.Cut(s, "#")
		n, err := strconv.ParseUint(b, 10, 8)
		if err != nil || n < 2 || n > 64 {
			return false
		}
		base, digits = n, d
	}
	if base <= 36 {
		digits = strings.ToLower(digits) // bash reads both cases alike up to base 36
	}
	var n uint64
	for _, c := range digits {
		d := uint64(strings.IndexRune(bashDigits, c)) // -1 wraps to a value >= base
		if d >= base || n > (math.MaxInt64-d)/base {
			return false
		}
		n = n*base + d
	}
	return digits != ""
}

// bashDigits are the digits of a bash number, by value.
const bashDigits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ@_"
