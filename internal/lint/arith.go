package lint

import (
	"strconv"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

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
