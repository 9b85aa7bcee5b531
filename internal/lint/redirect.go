package lint

import (
	"strconv"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

func (in *interp) redirect(st *state, redirs []*syntax.Redirect, io ioctx) ioctx {
	for _, r := range redirs {
		fd := -1
		if r.N != nil {
			if n, err := strconv.Atoi(r.N.Value); err == nil {
				fd = n
			}
		}
		switch r.Op {
		case syntax.RdrOut, syntax.AppOut, syntax.RdrClob, syntax.AppClob:
			if fd < 0 {
				fd = 1
			}
			setFD(&io, fd, in.target(st, r.Word, io))
		case syntax.RdrAll, syntax.AppAll, syntax.RdrAllClob, syntax.AppAllClob:
			t := in.target(st, r.Word, io)
			io.stdout, io.stderr = t, t
		case syntax.DplOut:
			if fd < 0 {
				fd = 1
			}
			w := ""
			if r.Word != nil {
				w = r.Word.Lit()
			}
			switch w {
			case "1":
				setFD(&io, fd, io.stdout)
			case "2":
				setFD(&io, fd, io.stderr)
			case "-":
				setFD(&io, fd, sinkNull)
			default:
				if _, err := strconv.Atoi(w); err != nil && fd == 1 && r.N == nil {
					t := in.target(st, r.Word, io) // >& file
					io.stdout, io.stderr = t, t
				}
			}
		case syntax.RdrIn:
			if fd < 0 || fd == 0 {
				io.stdin = nil
				if r.Word != nil && r.Word.Lit() == "/dev/null" {
					io.stdin = litValue("")
				}
			}
		case syntax.Hdoc, syntax.DashHdoc:
			io.stdin = in.heredoc(st, r, io)
		case syntax.WordHdoc:
			if r.Word != nil {
				io.stdin = concatValues(in.expandValue(st, r.Word, io), litValue("\n"), "$(…)")
			}
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
	if w == nil {
		return sinkFile
	}
	if s, ok := in.expandValue(st, w, io).exact(); ok && s == "/dev/null" {
		return sinkNull
	}
	return sinkFile
}

// heredoc expands a here-document body: variables and command
// substitutions when the delimiter is unquoted, nothing when it is quoted.
// <<- strips leading tabs.
func (in *interp) heredoc(st *state, r *syntax.Redirect, io ioctx) value {
	if r.Hdoc == nil {
		return litValue("")
	}
	quoted := false
	if r.Word != nil {
		for _, p := range r.Word.Parts {
			switch p.(type) {
			case *syntax.SglQuoted, *syntax.DblQuoted:
				quoted = true
			}
		}
		if strings.ContainsRune(r.Word.Lit(), '\\') {
			quoted = true
		}
	}
	var v value
	if quoted {
		var b strings.Builder
		for _, p := range r.Hdoc.Parts {
			if l, ok := p.(*syntax.Lit); ok {
				b.WriteString(l.Value)
			}
		}
		v = litValue(b.String())
	} else {
		v = in.expandHeredoc(st, r.Hdoc, io)
	}
	if r.Op == syntax.DashHdoc {
		out := make(value, len(v))
		for i, t := range v {
			out[i] = stripTabs(t)
		}
		v = out
	}
	return v
}

func stripTabs(t text) text {
	out := make(text, 0, len(t))
	atLineStart := true
	for _, s := range t {
		if s.unknown {
			out = append(out, s)
			atLineStart = false
			continue
		}
		var b strings.Builder
		for i := 0; i < len(s.s); i++ {
			c := s.s[i]
			if atLineStart && c == '\t' {
				continue
			}
			atLineStart = c == '\n'
			b.WriteByte(c)
		}
		out = out.concat(lit(b.String()))
	}
	return out
}
