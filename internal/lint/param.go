package lint

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"mvdan.cc/sh/v3/expand"
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
		if st.status == stUnknown {
			return expansion{v: unknownValue("${?}")}, true
		}
		return expansion{v: litValue(map[status]string{stOK: "0", stFail: "1"}[st.status])}, true
	case "0":
		return expansion{v: litValue(in.file)}, true
	}
	if c := name[0]; c >= '0' && c <= '9' {
		n, err := strconv.Atoi(name)
		switch {
		case err != nil || st.argsUnknown:
			return expansion{v: unknownValue(varPlaceholder(name))}, err == nil
		case n >= 1 && n <= len(st.args):
			return expansion{v: value{st.args[n-1]}}, true
		}
		return expansion{v: litValue("")}, false
	}
	v, ok := st.vars[name]
	if !ok {
		return expansion{v: unknownValue(varPlaceholder(name))}, false
	}
	return expansion{v: v.scalar(name)}, true
}

func (in *interp) param(st *state, pe *syntax.ParamExp, io ioctx) expansion {
	if pe.Param == nil || pe.Excl || pe.Width || pe.IsSet || pe.NestedParam != nil || len(pe.Modifiers) > 0 {
		return expansion{v: unknownValue(in.source(pe))}
	}
	var base expansion
	var set bool
	if pe.Index != nil {
		base, set = in.indexed(st, pe, io)
	} else {
		base, set = in.lookup(st, pe.Param.Value)
	}
	switch {
	case pe.Length && base.isList && base.listUnknown:
		return expansion{v: unknownValue(in.source(pe))}
	case pe.Length && base.isList:
		return expansion{v: litValue(strconv.Itoa(len(base.list)))}
	case pe.Length:
		length := func(s string) (string, bool) { return expandOn(s, syntax.ParamExp{Length: true}) }
		return expansion{v: mapKnown(base.v, in.source(pe), length)}
	case base.isList:
		return base
	case pe.Exp != nil:
		return expansion{v: in.paramOp(st, pe, base.v, set, io)}
	case pe.Repl != nil:
		return expansion{v: in.replace(st, pe, base.v, io)}
	case pe.Slice != nil:
		return expansion{v: in.slice(st, pe, base.v, io)}
	}
	return base
}

// indexed reads ${name[@]} or ${name[i]}; set is false when there is no
// element i.
func (in *interp) indexed(st *state, pe *syntax.ParamExp, io ioctx) (expansion, bool) {
	v, ok := st.vars[pe.Param.Value]
	var elems []text
	unknown := false
	switch {
	case !ok: // Arrays cannot come from the environment: unset is empty.
	case v.isArr:
		elems, unknown = v.arr, v.arrUnknown
	case len(v.val) == 1:
		elems = []text{v.val[0]}
	default:
		unknown = true
	}
	if w, ok := pe.Index.(*syntax.Word); ok && (w.Lit() == "@" || w.Lit() == "*") {
		if unknown {
			return expansion{isList: true, listUnknown: true, list: []text{unknownText(in.source(pe))}}, true
		}
		return expansion{isList: true, list: elems}, true
	}
	i, known := in.arith(st, pe.Index, io)
	switch {
	case unknown || !known:
		return expansion{v: unknownValue(in.source(pe))}, true
	case i < 0 || i >= int64(len(elems)):
		return expansion{v: litValue("")}, false
	}
	return expansion{v: value{elems[i]}}, true
}

// mapKnown applies f to every fully known alternative; any unknown
// alternative makes the result unknown.
func mapKnown(v value, placeholder string, f func(string) (string, bool)) value {
	out := make(value, 0, len(v))
	for _, t := range v {
		s, ok := t.exact()
		if ok {
			s, ok = f(s)
		}
		if !ok {
			return unknownValue(placeholder)
		}
		out = append(out, lit(s))
	}
	return union(placeholder, out)
}

func (in *interp) paramOp(st *state, pe *syntax.ParamExp, v value, set bool, io ioctx) value {
	op := pe.Exp.Op
	ph := in.source(pe)
	var w value
	word := func(text) value { // expanded once: it may assign or run commands
		if w == nil {
			w = in.expandValue(st, pe.Exp.Word, io)
		}
		return w
	}
	switch op {
	case syntax.DefaultUnset, syntax.DefaultUnsetOrNull, syntax.AssignUnset, syntax.AssignUnsetOrNull:
		res := v
		switch {
		case !set:
			res = word(nil)
		case op == syntax.DefaultUnsetOrNull || op == syntax.AssignUnsetOrNull:
			res = byEmptiness(v, ph, word, func(t text) value { return value{t} })
		}
		if name := pe.Param.Value; (op == syntax.AssignUnset || op == syntax.AssignUnsetOrNull) && pe.Index == nil && syntax.ValidName(name) {
			st.vars[name] = variable{val: res}
		}
		return res
	case syntax.AlternateUnset, syntax.AlternateUnsetOrNull:
		switch {
		case !set:
			return litValue("")
		case op == syntax.AlternateUnset:
			return word(nil)
		}
		return byEmptiness(v, ph, func(text) value { return litValue("") }, word)
	case syntax.ErrorUnset, syntax.ErrorUnsetOrNull:
		return v
	case syntax.RemSmallSuffix, syntax.RemLargeSuffix, syntax.RemSmallPrefix, syntax.RemLargePrefix,
		syntax.UpperFirst, syntax.UpperAll, syntax.LowerFirst, syntax.LowerAll:
		pat, ok := in.patternOf(st, pe.Exp.Word, io)
		if !ok || in.pattern(pat) == nil {
			return unknownValue(ph)
		}
		x := syntax.ParamExp{Exp: &syntax.Expansion{Op: op, Word: patWord(pat)}}
		return mapKnown(v, ph, func(s string) (string, bool) { return expandOn(s, x) })
	}
	return unknownValue(ph)
}

// byEmptiness maps every alternative t of v to empty(t) when t is "", to
// full(t) when it cannot be "", and to both when lint cannot tell.
func byEmptiness(v value, ph string, empty, full func(text) value) value {
	var parts []value
	for _, t := range v {
		s, ok := t.exact()
		switch {
		case ok && s == "":
			parts = append(parts, empty(t))
		case ok || hasKnownNonEmpty(t):
			parts = append(parts, full(t))
		default:
			parts = append(parts, full(t), empty(t))
		}
	}
	return union(ph, parts...)
}

// hasKnownNonEmpty reports whether some known part of t is non-empty, so t
// cannot expand to "".
func hasKnownNonEmpty(t text) bool {
	return slices.ContainsFunc(t, func(s seg) bool { return !s.unknown && s.s != "" })
}

func (in *interp) replace(st *state, pe *syntax.ParamExp, v value, io ioctx) value {
	ph := in.source(pe)
	pat, ok := in.patternOf(st, pe.Repl.Orig, io)
	if !ok {
		return unknownValue(ph)
	}
	// bash 5.2 puts the match in place of an unquoted & (patsub_replacement),
	// which expand does not.
	with, ok := in.expandValue(st, pe.Repl.With, io).exact()
	if !ok || strings.Contains(with, "&") {
		return unknownValue(ph)
	}
	anchor := ""
	if strings.HasPrefix(pat, "#") || strings.HasPrefix(pat, "%") {
		anchor, pat = pat[:1], pat[1:]
	}
	re := in.pattern(pat)
	if re == nil {
		return unknownValue(ph)
	}
	x := syntax.ParamExp{Repl: &syntax.Replace{All: pe.Repl.All, Orig: patWord(pat), With: patWord(with)}}
	if anchor != "" {
		// expand does not anchor ${x/#p/r} or ${x/%p/r}: remove the longest
		// match at that end instead, and put r in its place if p matched.
		op := map[string]syntax.ParExpOperator{"#": syntax.RemLargePrefix, "%": syntax.RemLargeSuffix}[anchor]
		x = syntax.ParamExp{Exp: &syntax.Expansion{Op: op, Word: patWord(pat)}}
	}
	return mapKnown(v, ph, func(s string) (string, bool) {
		r, ok := expandOn(s, x)
		switch {
		case anchor == "" || r == s && !re.MatchString(""):
		case anchor == "#":
			r = with + r
		default:
			r += with
		}
		return r, ok
	})
}

// slice is ${x:offset:length}. bash fails when a negative length ends
// before the offset; expand does not, so that is unknown here.
func (in *interp) slice(st *state, pe *syntax.ParamExp, v value, io ioctx) value {
	ph := in.source(pe)
	off, ok := in.arith(st, pe.Slice.Offset, io)
	if !ok {
		return unknownValue(ph)
	}
	x := syntax.ParamExp{Slice: &syntax.Slice{Offset: litWord(strconv.FormatInt(off, 10))}}
	length := int64(0)
	if pe.Slice.Length != nil {
		if length, ok = in.arith(st, pe.Slice.Length, io); !ok {
			return unknownValue(ph)
		}
		x.Slice.Length = litWord(strconv.FormatInt(length, 10))
	}
	return mapKnown(v, ph, func(s string) (string, bool) {
		n, o := int64(utf8.RuneCountInString(s)), off
		if off < 0 {
			o += n
		}
		if length < 0 && o <= n && n+length < o {
			return "", false
		}
		return expandOn(s, x)
	})
}

// expandOn runs the parameter operation x, whose words are literal, on the
// fully known value s with mvdan.cc/sh/v3/expand.
func expandOn(s string, x syntax.ParamExp) (string, bool) {
	x.Param = &syntax.Lit{Value: "x"}
	r, err := expand.Literal(&expand.Config{Env: expand.ListEnviron("x=" + s)}, &syntax.Word{Parts: []syntax.WordPart{&x}})
	return r, err == nil
}

// patWord is a word that expands to s as it stands: an unquoted pattern
// keeps its meaning, and the empty quotes first stop tilde expansion.
func patWord(s string) *syntax.Word {
	return &syntax.Word{Parts: []syntax.WordPart{&syntax.SglQuoted{}, &syntax.Lit{Value: s}}}
}

// decl runs local, declare, typeset, export and readonly.
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
				st.vars[name] = variable{val: litValue("")}
			}
			continue
		}
		in.assign(st, a, io)
	}
	return st
}

func (in *interp) assign(st *state, a *syntax.Assign, io ioctx) {
	if a.Name == nil {
		return
	}
	name := a.Name.Value
	old, had := st.vars[name]
	switch {
	case a.Array != nil:
		var elems []text
		unknown := false
		for _, e := range a.Array.Elems {
			if e.Value != nil {
				alts, unknownCount := in.expandFields(st, []*syntax.Word{e.Value}, io)
				unknown = unknown || e.Index != nil || len(alts) != 1 || unknownCount
				elems = append(elems, alts[0]...) // not read when unknown
			}
		}
		if a.Append && had {
			unknown = unknown || !old.isArr || old.arrUnknown
			elems = append(slices.Clone(old.arr), elems...)
		}
		st.vars[name] = variable{isArr: true, arr: elems, arrUnknown: unknown}
	case a.Index != nil:
		v := in.expandValue(st, a.Value, io)
		i, ok := in.arith(st, a.Index, io)
		setElem(st, name, old, ok && had, i, v)
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
			setElem(st, name, old, true, 0, v) // x=v on an array sets element 0
			return
		}
		st.vars[name] = variable{val: named(v, name)}
	}
}

// setElem assigns element i (at most one past the end) of the array old;
// ok false, an index out of range, or a value lint cannot follow makes the
// array unknown.
func setElem(st *state, name string, old variable, ok bool, i int64, v value) {
	if !ok || !old.isArr || old.arrUnknown || len(v) != 1 || i < 0 || i > int64(len(old.arr)) {
		st.vars[name] = variable{isArr: true, arrUnknown: true}
		return
	}
	// Replace sets element i, or appends when i is one past the end.
	arr := slices.Replace(slices.Clone(old.arr), int(i), min(int(i)+1, len(old.arr)), v[0])
	st.vars[name] = variable{isArr: true, arr: arr}
}

// named gives a wholly unknown value the name of the variable holding it, so
// that "$(kubectl get ...)" assigned to secret_name shows as
// ${secret_name}. Values already named after a variable keep their name.
func named(v value, name string) value {
	if len(v) != 1 || len(v[0]) != 1 || !v[0][0].unknown {
		return v
	}
	p := v[0][0].s
	inner, braced := strings.CutPrefix(p, "${")
	inner, closed := strings.CutSuffix(inner, "}")
	_, err := strconv.Atoi(inner)
	positional := braced && closed && (inner == "@" || inner == "*" || err == nil)
	if strings.HasPrefix(p, "$(") || strings.HasPrefix(p, "`") || positional {
		return unknownValue(varPlaceholder(name))
	}
	return v
}
