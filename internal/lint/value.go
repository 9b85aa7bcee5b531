package lint

import (
	"slices"
	"strings"

	"mvdan.cc/sh/v3/pattern"
)

// seg is a run of an expanded string. An unknown segment stands for text
// lint cannot resolve; s then holds its placeholder, such as "${node}".
type seg struct {
	s       string
	unknown bool
}

// text is one way a word may expand.
type text []seg

func lit(s string) text { return text{{s: s}} }

// unknownText is a text lint cannot resolve, shown as placeholder.
func unknownText(placeholder string) text { return text{{s: placeholder, unknown: true}} }

// varPlaceholder is how an unresolved variable is shown: "${name}".
func varPlaceholder(name string) string { return "${" + name + "}" }

func (t text) known() bool { return !slices.ContainsFunc(t, func(s seg) bool { return s.unknown }) }

func (t text) exact() (string, bool) {
	if !t.known() {
		return "", false
	}
	return t.String(), true
}

func (t text) String() string {
	if len(t) == 1 {
		return t[0].s
	}
	var b strings.Builder
	for _, s := range t {
		b.WriteString(s.s)
	}
	return b.String()
}

// empty reports whether t is known to be "".
func (t text) empty() bool {
	return !slices.ContainsFunc(t, func(s seg) bool { return s.unknown || s.s != "" })
}

func (t text) wholeUnknown() bool { return len(t) == 1 && t[0].unknown }

// concat returns t followed by u, merging adjacent known segments. It never
// modifies t or u.
func (t text) concat(u text) text {
	if u.empty() {
		return t
	}
	if t.empty() {
		return u
	}
	out := make(text, 0, len(t)+len(u))
	out = append(out, t...)
	for _, s := range u {
		if s.s == "" && !s.unknown {
			continue
		}
		if last := len(out) - 1; !s.unknown && !out[last].unknown {
			out[last] = seg{s: out[last].s + s.s}
			continue
		}
		out = append(out, s)
	}
	return out
}

// key identifies t for comparisons.
func (t text) key() string {
	if len(t) == 1 && !t[0].unknown {
		return t[0].s
	}
	var b strings.Builder
	for _, s := range t {
		if s.unknown {
			b.WriteString("\x00")
		}
		b.WriteString(s.s)
		b.WriteString("\x01")
	}
	return b.String()
}

// joinTexts joins ts with spaces, as "$*" and echo do.
func joinTexts(ts []text) text {
	var t text
	for i, x := range ts {
		if i > 0 {
			t = t.concat(lit(" "))
		}
		t = t.concat(x)
	}
	return t
}

// glob turns t into a shell pattern that matches every string t may stand
// for: known parts quoted, unknown parts "*".
func (t text) glob() string {
	var b strings.Builder
	for _, s := range t {
		if s.unknown {
			b.WriteByte('*')
		} else {
			b.WriteString(pattern.QuoteMeta(s.s, 0))
		}
	}
	return b.String()
}

// maxAlts bounds how many alternative expansions lint tracks per value.
const maxAlts = 8

// value is every way something may expand: one text per alternative (at
// least one). A value of several alternatives comes from branches lint could
// not decide, such as kubectl_cmd being "kubectl" or "kubectl --kubeconfig x".
//
// This lattice (known and unknown parts, alternatives, unknown arguments) is
// lint's own because mvdan.cc/sh/v3/expand and interp compute one concrete
// string and would have to guess every value lint cannot resolve; lint hands
// them only fully known values (arith.go, param.go).
type value []text

func litValue(s string) value { return value{lit(s)} }

func unknownValue(placeholder string) value { return value{unknownText(placeholder)} }

// single returns the only alternative, or an unknown text when there are
// several.
func (v value) single(placeholder string) text {
	if len(v) == 1 {
		return v[0]
	}
	return unknownText(placeholder)
}

func (v value) exact() (string, bool) {
	if len(v) != 1 {
		return "", false
	}
	return v[0].exact()
}

// same reports whether v and w are the same alternatives, cheaply when they
// share storage.
func (v value) same(w value) bool {
	if len(v) != len(w) {
		return false
	}
	return len(v) == 0 || &v[0] == &w[0] || sameTexts(v, w)
}

// union merges alternatives, dropping duplicates. Past maxAlts the result
// collapses to one unknown text.
func union(placeholder string, vs ...value) value {
	var out value
	seen := map[string]bool{}
	for _, v := range vs {
		for _, t := range v {
			if k := t.key(); !seen[k] {
				seen[k] = true
				out = append(out, t)
			}
		}
	}
	if len(out) > maxAlts {
		return unknownValue(placeholder)
	}
	return out
}

// concatValues is every alternative of v followed by every alternative of w.
func concatValues(v, w value, placeholder string) value {
	if len(v) == 1 && len(w) == 1 {
		return value{v[0].concat(w[0])}
	}
	if len(v)*len(w) > maxAlts {
		return unknownValue(placeholder)
	}
	out := make(value, 0, len(v)*len(w))
	for _, a := range v {
		for _, b := range w {
			out = append(out, a.concat(b))
		}
	}
	return out
}
