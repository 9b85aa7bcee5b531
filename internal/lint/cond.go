package lint

import (
	"cmp"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/sets"
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
	var p *regexp.Regexp
	if expr, err := pattern.Regexp(pat, pattern.EntireString); err == nil {
		p, _ = regexp.Compile(expr)
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
		switch in.matchValue(word, pat, ok) {
		case stOK:
			return stOK
		case stUnknown:
			res = stUnknown
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
		switch x.Op {
		case syntax.AndTest:
			l := in.testExpr(st, x.X, io)
			if l == stFail {
				return stFail
			}
			return and3(l, in.testExpr(st, x.Y, io))
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
