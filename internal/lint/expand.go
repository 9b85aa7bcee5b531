package lint

import (
	"bytes"
	"slices"
	"strconv"
	"strings"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// builder accumulates the fields of one alternative expansion of a
// command's words.
type builder struct {
	fields []text
	cur    text
	open   bool
}

func (b *builder) add(t text) {
	b.cur = b.cur.concat(t)
	b.open = true
}

func (b *builder) flush() {
	if b.open {
		b.fields = append(b.fields, b.cur)
	}
	b.cur, b.open = nil, false
}

// ifs is the default IFS: the characters that separate fields.
const ifs = " \t\n"

// addText appends t; unquoted, whitespace in it separates fields.
func (b *builder) addText(t text, quoted bool) {
	if quoted {
		b.add(t)
		return
	}
	for _, s := range t {
		if s.unknown {
			b.add(text{s})
			continue
		}
		rest := s.s
		for i := strings.IndexAny(rest, ifs); i >= 0; i = strings.IndexAny(rest, ifs) {
			if i > 0 {
				b.add(lit(rest[:i]))
			}
			b.flush()
			rest = rest[i+1:]
		}
		if rest != "" {
			b.add(lit(rest))
		}
	}
}

// expansion is what one word part expands to: a value, or a list of fields
// ("$@", "${arr[@]}").
type expansion struct {
	v           value
	list        []text
	isList      bool
	listUnknown bool
}

// expandFields expands command words to fields, with word splitting of
// unquoted expansions. It returns one field list per alternative, and
// whether the number of fields is unknown ("$@" of unknown arguments, an
// unresolved array, a glob).
func (in *interp) expandFields(st *state, words []*syntax.Word, io ioctx) ([][]text, bool) {
	bs := []builder{{}}
	unknownCount := false
	for _, w := range words {
		for _, p := range w.Parts {
			bs = in.expandPart(st, p, io, bs, false, &unknownCount)
		}
		for i := range bs {
			bs[i].flush()
		}
	}
	out := make([][]text, len(bs))
	for i, b := range bs {
		out[i] = b.fields
	}
	return out, unknownCount
}

func (in *interp) expandPart(st *state, p syntax.WordPart, io ioctx, bs []builder, quoted bool, unknownCount *bool) []builder {
	switch p := p.(type) {
	case *syntax.Lit, *syntax.SglQuoted:
		if l, ok := p.(*syntax.Lit); ok && !quoted && strings.ContainsAny(unescape(l.Value, false), "*?[") {
			*unknownCount = true // a glob may match any number of paths
		}
		return addValue(bs, in.partValue(st, p, io, quoted), true) // literal text is not split
	case *syntax.DblQuoted:
		for i := range bs {
			bs[i].open = true
		}
		for _, q := range p.Parts {
			bs = in.expandPart(st, q, io, bs, true, unknownCount)
		}
		return bs
	case *syntax.ParamExp:
		e := in.param(st, p, io)
		if e.isList {
			return in.addList(bs, e, quoted, unknownCount)
		}
		return addValue(bs, e.v, quoted)
	case *syntax.ProcSubst:
		pio := io
		if p.Op == syntax.CmdIn {
			pio.stdout = sinkPipe
		}
		in.subshell(st, pio, func(sub *state, io ioctx) *state { return in.stmts(sub, p.Stmts, io) })
	}
	return addValue(bs, in.partValue(st, p, io, quoted), quoted)
}

// addValue appends a value to every builder; several alternatives multiply
// the builders (up to maxAlts, then the value becomes one unknown text).
func addValue(bs []builder, v value, quoted bool) []builder {
	if len(v) == 0 {
		return bs
	}
	if len(bs)*len(v) > maxAlts {
		v = value{v.single("${…}")}
	}
	out := make([]builder, 0, len(bs)*len(v))
	for _, b := range bs {
		for j, t := range v {
			c := b
			if j > 0 {
				c.fields = slices.Clone(b.fields) // the first alternative keeps b's
			}
			c.addText(t, quoted)
			out = append(out, c)
		}
	}
	return out
}

func (in *interp) addList(bs []builder, e expansion, quoted bool, unknownCount *bool) []builder {
	if e.listUnknown {
		*unknownCount = true
		for i := range bs {
			bs[i].add(e.list[0])
		}
		return bs
	}
	for i := range bs {
		for j, t := range e.list {
			if j > 0 {
				bs[i].flush()
				bs[i].open = quoted
			}
			bs[i].addText(t, quoted)
		}
		if len(e.list) == 0 && quoted && len(bs[i].cur) == 0 {
			bs[i].open = false // "$@" with no arguments expands to no field at all
		}
	}
	return bs
}

// expandValue expands a word without field splitting, as in an assignment,
// a case word, a redirection target or a [[ ]] operand.
func (in *interp) expandValue(st *state, w *syntax.Word, io ioctx) value {
	if w == nil {
		return litValue("")
	}
	return in.partsValue(st, w.Parts, io, false)
}

func (in *interp) partsValue(st *state, parts []syntax.WordPart, io ioctx, quoted bool) value {
	v := litValue("")
	for _, p := range parts {
		v = concatValues(v, in.partValue(st, p, io, quoted), "${…}")
	}
	return v
}

func (in *interp) partValue(st *state, p syntax.WordPart, io ioctx, quoted bool) value {
	switch p := p.(type) {
	case *syntax.Lit:
		return litValue(unescape(p.Value, quoted))
	case *syntax.SglQuoted:
		if p.Dollar {
			s, _ := expand.Literal(&expand.Config{}, &syntax.Word{Parts: []syntax.WordPart{p}}) // decodes the escapes
			return litValue(s)
		}
		return litValue(p.Value)
	case *syntax.DblQuoted:
		return in.partsValue(st, p.Parts, io, true)
	case *syntax.ParamExp:
		e := in.param(st, p, io)
		if !e.isList {
			return e.v
		}
		if e.listUnknown {
			return value{e.list[0]}
		}
		return value{joinTexts(e.list)}
	case *syntax.CmdSubst:
		return in.cmdSubst(st, p, io)
	case *syntax.ArithmExp:
		if n, ok := in.arith(st, p.X, io); ok {
			return litValue(strconv.FormatInt(n, 10))
		}
	}
	return unknownValue(in.source(p))
}

// unescape removes the backslashes the shell removes: every one outside
// quotes, and before $ ` " \ or a newline inside double quotes.
func unescape(s string, quoted bool) string {
	if !strings.ContainsRune(s, '\\') {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		n := s[i+1]
		switch {
		case n == '\n':
			i++
		case !quoted || strings.IndexByte("$`\"\\", n) >= 0:
			b.WriteByte(n)
			i++
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// source is a node's shell source on one line, used as a placeholder.
func (in *interp) source(n syntax.Node) string {
	var b bytes.Buffer
	if err := in.printer.Print(&b, n); err != nil {
		return "${…}"
	}
	s := strings.Join(strings.Fields(b.String()), " ")
	const max = 60
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

// cmdSubst runs $(...) in a subshell and returns its output when lint can
// compute it (echo, printf, cat of a here-document, seq), else an unknown
// placeholder. $? afterwards is the substitution's status.
func (in *interp) cmdSubst(st *state, cs *syntax.CmdSubst, io ioctx) value {
	sio := io
	sio.stdout = sinkCapture
	res := in.subshell(st, sio, func(sub *state, io ioctx) *state { return in.stmts(sub, cs.Stmts, io) })
	st.status = res.status
	if res.out != nil && len(cs.Stmts) == 1 {
		out := make(value, len(res.out))
		for i, t := range res.out { // without the trailing newlines
			if n := len(t) - 1; n >= 0 && !t[n].unknown {
				t = t[:n:n].concat(lit(strings.TrimRight(t[n].s, "\n")))
			}
			out[i] = t
		}
		return out
	}
	return unknownValue(in.source(cs))
}

func (in *interp) redirect(st *state, redirs []*syntax.Redirect, io ioctx) ioctx {
	for _, r := range redirs {
		fd := 1 // output operators' default
		if r.N != nil {
			fd, _ = strconv.Atoi(r.N.Value) // {varname}> opens a new fd: 0 leaves 1 and 2 alone
		}
		switch r.Op {
		case syntax.RdrOut, syntax.AppOut, syntax.RdrClob, syntax.AppClob:
			setFD(&io, fd, in.target(st, r.Word, io))
		case syntax.RdrAll, syntax.AppAll, syntax.RdrAllClob, syntax.AppAllClob:
			t := in.target(st, r.Word, io)
			io.stdout, io.stderr = t, t
		case syntax.DplOut:
			switch w := r.Word.Lit(); w {
			case "1":
				setFD(&io, fd, io.stdout)
			case "2":
				setFD(&io, fd, io.stderr)
			case "-":
				setFD(&io, fd, sinkNull)
			default:
				if _, err := strconv.Atoi(w); err != nil && r.N == nil {
					t := in.target(st, r.Word, io) // >& file
					io.stdout, io.stderr = t, t
				}
			}
		case syntax.RdrIn:
			if r.N == nil || fd == 0 {
				io.stdin = nil
				if r.Word.Lit() == "/dev/null" {
					io.stdin = litValue("")
				}
			}
		case syntax.Hdoc, syntax.DashHdoc:
			io.stdin = in.heredoc(st, r, io)
		case syntax.WordHdoc:
			io.stdin = concatValues(in.expandValue(st, r.Word, io), litValue("\n"), "$(…)")
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
	if s, ok := in.expandValue(st, w, io).exact(); ok && s == "/dev/null" {
		return sinkNull
	}
	return sinkFile
}

// heredoc expands a here-document body: variables and command
// substitutions when the delimiter is unquoted, nothing when it is quoted.
// Its literal parts lose the tabs <<- strips (those that start a line)
// and, unquoted, are unescaped by expand.Document (\$, \` and \\).
func (in *interp) heredoc(st *state, r *syntax.Redirect, io ioctx) value {
	if r.Hdoc == nil {
		return litValue("")
	}
	quoted := strings.ContainsRune(r.Word.Lit(), '\\') || slices.ContainsFunc(r.Word.Parts, func(p syntax.WordPart) bool {
		switch p.(type) {
		case *syntax.SglQuoted, *syntax.DblQuoted:
			return true
		}
		return false
	})
	parts := slices.Clone(r.Hdoc.Parts)
	for i, p := range parts {
		l, ok := p.(*syntax.Lit)
		if !ok {
			continue
		}
		s := l.Value
		if r.Op == syntax.DashHdoc {
			lines := strings.Split(s, "\n")
			for j := range lines {
				if i == 0 || j > 0 {
					lines[j] = strings.TrimLeft(lines[j], "\t")
				}
			}
			s = strings.Join(lines, "\n")
		}
		if !quoted {
			s, _ = expand.Document(&expand.Config{}, &syntax.Word{Parts: []syntax.WordPart{&syntax.Lit{Value: s}}})
		}
		parts[i] = &syntax.SglQuoted{Value: s} // literal text from here on
	}
	return in.partsValue(st, parts, io, true)
}
