package lint

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"mvdan.cc/sh/v3/syntax"
)

// lookup reads a parameter. set is false for a variable the script never
// assigned (the environment might have it).
func (in *interp) lookup(st *state, name string) (e expansion, set bool) {
	switch name {
	case "@", "*":
		if st.argsUnknown {
			return expansion{isList: true, listUnknown: true, list: []text{unknownText(varPlaceholder(name))}}, true
		}
		return expansion{isList: true, list: st.args}, true
	case "#":
		if st.argsUnknown {
			return expansion{v: unknownValue("${#}")}, true
		}
		return expansion{v: litValue(strconv.Itoa(len(st.args)))}, true
	case "?":
		switch st.status {
		case stOK:
			return expansion{v: litValue("0")}, true
		case stFail:
			return expansion{v: litValue("1")}, true
		}
		return expansion{v: unknownValue("${?}")}, true
	case "0":
		return expansion{v: litValue(in.file)}, true
	}
	if c := name[0]; c >= '0' && c <= '9' {
		n, err := strconv.Atoi(name)
		if err != nil {
			return expansion{v: unknownValue(varPlaceholder(name))}, false
		}
		if st.argsUnknown {
			return expansion{v: unknownValue(varPlaceholder(name))}, true
		}
		if n >= 1 && n <= len(st.args) {
			return expansion{v: value{st.args[n-1]}}, true
		}
		return expansion{v: litValue("")}, false
	}
	v, ok := st.vars.get(name)
	if !ok {
		return expansion{v: unknownValue(varPlaceholder(name))}, false
	}
	return expansion{v: v.scalar(name)}, true
}

// param expands ${...}.
func (in *interp) param(st *state, pe *syntax.ParamExp, io ioctx) expansion {
	if pe.Param == nil || pe.Excl || pe.Width || pe.IsSet || pe.NestedParam != nil || len(pe.Modifiers) > 0 {
		return expansion{v: unknownValue(in.source(pe))}
	}
	name := pe.Param.Value
	if pe.Index != nil {
		return in.indexed(st, pe, name, io)
	}
	base, set := in.lookup(st, name)
	if pe.Length {
		if base.isList {
			if base.listUnknown {
				return expansion{v: unknownValue(in.source(pe))}
			}
			return expansion{v: litValue(strconv.Itoa(len(base.list)))}
		}
		return expansion{v: mapKnown(base.v, in.source(pe), func(s string) (string, bool) {
			return strconv.Itoa(utf8.RuneCountInString(s)), true
		})}
	}
	if base.isList {
		return base
	}
	v := base.v
	switch {
	case pe.Exp != nil:
		return expansion{v: in.paramOp(st, pe, name, v, set, io)}
	case pe.Repl != nil:
		return expansion{v: in.replace(st, pe, v, io)}
	case pe.Slice != nil:
		return expansion{v: in.slice(st, pe, v, io)}
	}
	return expansion{v: v}
}

func (in *interp) indexed(st *state, pe *syntax.ParamExp, name string, io ioctx) expansion {
	all := false
	if w, ok := pe.Index.(*syntax.Word); ok {
		l := w.Lit()
		all = l == "@" || l == "*"
	}
	v, ok := st.vars.get(name)
	var elems []text
	unknown := false
	switch {
	case !ok:
		// Arrays cannot come from the environment: unset is empty.
	case v.isArr:
		elems, unknown = v.arr, v.arrUnknown
	default:
		if len(v.val) == 1 {
			elems = []text{v.val[0]}
		} else {
			unknown = true
		}
	}
	if all {
		if pe.Length {
			if unknown {
				return expansion{v: unknownValue(in.source(pe))}
			}
			return expansion{v: litValue(strconv.Itoa(len(elems)))}
		}
		if unknown {
			return expansion{isList: true, listUnknown: true, list: []text{unknownText(in.source(pe))}}
		}
		return expansion{isList: true, list: elems}
	}
	i, known := in.arith(st, pe.Index, io)
	if unknown || !known {
		return expansion{v: unknownValue(in.source(pe))}
	}
	if i < 0 || i >= int64(len(elems)) {
		return expansion{v: litValue("")}
	}
	if pe.Length {
		return expansion{v: mapKnown(value{elems[i]}, in.source(pe), func(s string) (string, bool) {
			return strconv.Itoa(utf8.RuneCountInString(s)), true
		})}
	}
	return expansion{v: value{elems[i]}}
}

// mapKnown applies f to every fully known alternative; any unknown
// alternative makes the result unknown.
func mapKnown(v value, placeholder string, f func(string) (string, bool)) value {
	out := make(value, 0, len(v))
	for _, t := range v {
		s, ok := t.exact()
		if !ok {
			return unknownValue(placeholder)
		}
		r, ok := f(s)
		if !ok {
			return unknownValue(placeholder)
		}
		out = append(out, lit(r))
	}
	return union(placeholder, out)
}

func (in *interp) paramOp(st *state, pe *syntax.ParamExp, name string, v value, set bool, io ioctx) value {
	op := pe.Exp.Op
	ph := in.source(pe)
	word := func() value { return in.expandValue(st, pe.Exp.Word, io) }
	switch op {
	case syntax.DefaultUnset, syntax.DefaultUnsetOrNull, syntax.AssignUnset, syntax.AssignUnsetOrNull:
		orNull := op == syntax.DefaultUnsetOrNull || op == syntax.AssignUnsetOrNull
		var res value
		switch {
		case !set:
			res = word()
		case orNull:
			res = orDefault(v, word, ph)
		default:
			res = v
		}
		if (op == syntax.AssignUnset || op == syntax.AssignUnsetOrNull) && isName(name) {
			st.setVar(name, variable{val: res})
		}
		return res
	case syntax.AlternateUnset, syntax.AlternateUnsetOrNull:
		if !set {
			return litValue("")
		}
		if op == syntax.AlternateUnset {
			return word()
		}
		var parts []value
		for _, t := range v {
			s, ok := t.exact()
			switch {
			case ok && s == "":
				parts = append(parts, litValue(""))
			case ok:
				parts = append(parts, word())
			default:
				parts = append(parts, litValue(""), word())
			}
		}
		return union(ph, parts...)
	case syntax.ErrorUnset, syntax.ErrorUnsetOrNull:
		return v
	case syntax.RemSmallSuffix, syntax.RemLargeSuffix, syntax.RemSmallPrefix, syntax.RemLargePrefix:
		pat, ok := in.patternOf(st, pe.Exp.Word, io)
		if !ok {
			return unknownValue(ph)
		}
		re := in.pattern(pat)
		if re == nil {
			return unknownValue(ph)
		}
		return mapKnown(v, ph, func(s string) (string, bool) { return trimPattern(s, re, op), len(s) <= maxPatternSubject })
	case syntax.UpperFirst, syntax.UpperAll, syntax.LowerFirst, syntax.LowerAll:
		if pe.Exp.Word != nil && pe.Exp.Word.Lit() != "" && pe.Exp.Word.Lit() != "?" {
			return unknownValue(ph) // ${x^^[a-c]}: only some characters
		}
		return mapKnown(v, ph, func(s string) (string, bool) { return changeCase(s, op), true })
	}
	return unknownValue(ph)
}

func orDefault(v value, word func() value, ph string) value {
	var parts []value
	var w value
	def := func() value {
		if w == nil {
			w = word()
		}
		return w
	}
	for _, t := range v {
		s, ok := t.exact()
		switch {
		case ok && s == "":
			parts = append(parts, def())
		case ok || hasKnownNonEmpty(t):
			parts = append(parts, value{t})
		default:
			parts = append(parts, value{t}, def())
		}
	}
	return union(ph, parts...)
}

// hasKnownNonEmpty reports whether some known part of t is non-empty, so t
// cannot expand to "".
func hasKnownNonEmpty(t text) bool {
	for _, s := range t {
		if !s.unknown && s.s != "" {
			return true
		}
	}
	return false
}

func trimPattern(s string, re *patternRE, op syntax.ParExpOperator) string {
	switch op {
	case syntax.RemSmallPrefix:
		for i := 0; i <= len(s); i++ {
			if re.match(s[:i]) {
				return s[i:]
			}
		}
	case syntax.RemLargePrefix:
		for i := len(s); i >= 0; i-- {
			if re.match(s[:i]) {
				return s[i:]
			}
		}
	case syntax.RemSmallSuffix:
		for i := len(s); i >= 0; i-- {
			if re.match(s[i:]) {
				return s[:i]
			}
		}
	case syntax.RemLargeSuffix:
		for i := 0; i <= len(s); i++ {
			if re.match(s[i:]) {
				return s[:i]
			}
		}
	}
	return s
}

func changeCase(s string, op syntax.ParExpOperator) string {
	switch op {
	case syntax.UpperAll:
		return strings.ToUpper(s)
	case syntax.LowerAll:
		return strings.ToLower(s)
	}
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	if op == syntax.UpperFirst {
		return string(unicode.ToUpper(r)) + s[n:]
	}
	return string(unicode.ToLower(r)) + s[n:]
}

func (in *interp) replace(st *state, pe *syntax.ParamExp, v value, io ioctx) value {
	ph := in.source(pe)
	pat, ok := in.patternOf(st, pe.Repl.Orig, io)
	if !ok {
		return unknownValue(ph)
	}
	with, ok := in.expandValue(st, pe.Repl.With, io).exact()
	if !ok {
		return unknownValue(ph)
	}
	anchor := ""
	if strings.HasPrefix(pat, "#") || strings.HasPrefix(pat, "%") {
		anchor, pat = pat[:1], pat[1:]
	}
	re := in.pattern(pat)
	if re == nil || pat == "" {
		return unknownValue(ph)
	}
	return mapKnown(v, ph, func(s string) (string, bool) {
		return replacePattern(s, re, with, pe.Repl.All, anchor), len(s) <= maxPatternSubject
	})
}

// maxPatternSubject bounds the strings pattern operations run on; longer
// ones become unknown rather than slow.
const maxPatternSubject = 256

// replacePattern replaces the longest match of re, like ${s/pat/with},
// ${s//pat/with}, ${s/#pat/with} and ${s/%pat/with}.
func replacePattern(s string, re *patternRE, with string, all bool, anchor string) string {
	switch anchor {
	case "#":
		for j := len(s); j >= 0; j-- {
			if re.match(s[:j]) {
				return with + s[j:]
			}
		}
		return s
	case "%":
		for j := 0; j <= len(s); j++ {
			if re.match(s[j:]) {
				return s[:j] + with
			}
		}
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		end := -1
		for j := len(s); j > i; j-- {
			if re.match(s[i:j]) {
				end = j
				break
			}
		}
		if end < 0 {
			b.WriteByte(s[i])
			i++
			continue
		}
		b.WriteString(with)
		i = end
		if !all {
			b.WriteString(s[i:])
			return b.String()
		}
	}
	return b.String()
}

func (in *interp) slice(st *state, pe *syntax.ParamExp, v value, io ioctx) value {
	ph := in.source(pe)
	off, ok := in.arith(st, pe.Slice.Offset, io)
	if !ok {
		return unknownValue(ph)
	}
	length := int64(-1)
	if pe.Slice.Length != nil {
		if length, ok = in.arith(st, pe.Slice.Length, io); !ok {
			return unknownValue(ph)
		}
	}
	return mapKnown(v, ph, func(s string) (string, bool) {
		n, o := int64(len(s)), off
		if o < 0 {
			o += n
		}
		if o < 0 || o > n {
			return "", true
		}
		end := n
		switch {
		case length >= 0 && o+length < n:
			end = o + length
		case length < 0 && pe.Slice.Length != nil:
			end = n + length
		}
		if end < o {
			return "", true
		}
		return s[o:end], true
	})
}
