package lint

import (
	"math"
	"strconv"
	"strings"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

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
