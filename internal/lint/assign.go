package lint

import (
	"strconv"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

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

// assign performs one assignment.
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
	arr := append([]text(nil), old.arr...)
	if int(i) == len(arr) {
		arr = append(arr, v[0])
	} else {
		arr[i] = v[0]
	}
	st.vars[name] = variable{isArr: true, arr: arr}
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
