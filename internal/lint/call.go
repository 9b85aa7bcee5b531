package lint

import (
	"path"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/sets"
	"mvdan.cc/sh/v3/syntax"
)

// call runs a simple command: assignments, a kubectl invocation, a
// function of the script or a builtin lint understands. Anything else is an
// external command with an unknown status.
func (in *interp) call(st *state, c *syntax.CallExpr, io ioctx) *state {
	if len(c.Args) == 0 {
		st.status = stOK
		for _, a := range c.Assigns {
			in.assign(st, a, io)
		}
		return st
	}
	for _, a := range c.Assigns {
		// VAR=x cmd: the value only reaches cmd's environment, but its
		// expansion may run command substitutions.
		if a.Value != nil {
			in.expandValue(st, a.Value, io)
		}
	}
	alts, unknownCount := in.expandFields(st, c.Args, io)
	var kubectl [][]text
	for _, argv := range alts {
		argv = unwrap(argv)
		if cmd := path.Base(word(argv, 0)); cmd == "kubectl" || cmd == "oc" {
			kubectl = append(kubectl, argv)
		}
		in.notFollowed(c, argv)
	}
	if len(kubectl) > 0 {
		in.kubectl(st, c, kubectl, io)
	}
	name := word(alts[0], 0)
	if len(kubectl) > 0 || name == "" || slices.ContainsFunc(alts, func(argv []text) bool { return word(argv, 0) != name }) {
		st.status, st.out = stUnknown, nil // a command lint does not know, or not the same on every path
		return st
	}
	argv, differ := collapse(alts)
	if fn := in.funcs[name]; fn != nil {
		return in.callFunc(st, fn, name, argv[1:], unknownCount || differ, io)
	}
	return in.builtin(st, name, alts, argv, io, c)
}

// collapse merges alternative argument lists into one: fields that differ
// become unknown. differ reports lists of different lengths.
func collapse(alts [][]text) (argv []text, differ bool) {
	if len(alts) == 1 {
		return alts[0], false
	}
	n := len(alts[0])
	for _, a := range alts[1:] {
		if len(a) != n {
			differ = true
			n = min(n, len(a))
		}
	}
	out := make([]text, n)
	for i := range n {
		out[i] = alts[0][i]
		if slices.ContainsFunc(alts[1:], func(a []text) bool { return a[i].key() != out[i].key() }) {
			out[i] = unknownText("${…}")
		}
	}
	return out, differ
}

// wrappers run the command that follows their own options.
var wrappers = map[string]bool{"sudo": true, "command": true, "exec": true, "env": true, "timeout": true, "nice": true, "nohup": true, "time": true, "stdbuf": true}

// unwrap drops wrapper commands (sudo -E, env A=b, timeout 30, command)
// in front of the real command.
func unwrap(argv []text) []text {
	for depth := 0; depth < 4 && len(argv) > 0; depth++ {
		w, ok := argv[0].exact()
		if !ok || !wrappers[path.Base(w)] {
			return argv
		}
		tool := path.Base(w)
		i := 1
		for i < len(argv) {
			a, ok := argv[i].exact()
			if !ok {
				break
			}
			switch {
			case a == "--":
				i++
			case strings.HasPrefix(a, "-"):
				if tool == "command" && (a == "-v" || a == "-V") {
					return nil // command -v kubectl only looks it up
				}
				i++
				if (tool == "sudo" && (a == "-u" || a == "-g")) || (tool == "timeout" && (a == "-s" || a == "-k")) || (tool == "nice" && a == "-n") {
					i++
				}
				continue
			case tool == "env" && strings.Contains(a, "="):
				i++
				continue
			case tool == "timeout":
				i++ // the duration
			}
			break
		}
		if i >= len(argv) {
			return nil
		}
		argv = argv[i:]
	}
	return argv
}

// callFunc runs a function of the script with its own positional
// parameters and local variables. Recursion is not followed.
func (in *interp) callFunc(st *state, fn *syntax.FuncDecl, name string, args []text, argsUnknown bool, io ioctx) *state {
	if fn.Body == nil || slices.Contains(in.stack, name) || len(in.stack) >= maxCallDepth || in.overBudget() && in.called[fn] {
		st.status, st.out = stUnknown, nil
		return st
	}
	in.called[fn] = true
	root := st.guard
	outerArgs, outerUnknown := st.args, st.argsUnknown
	st.args, st.argsUnknown = args, argsUnknown
	st.locals = append(st.locals[:len(st.locals):len(st.locals)], map[string]saved{})
	f := &frame{kind: frameFunc}
	in.frames = append(in.frames, f)
	in.stack = append(in.stack, name)
	end := in.stmt(st, fn.Body, io)
	in.stack = in.stack[:len(in.stack)-1]
	in.frames = in.frames[:len(in.frames)-1]

	states := f.states
	if end.flow != flowJumped {
		states = append(states, end)
	}
	res := join(root, states, []*frame{f}, &reason{why: whyAfter, line: fn.Position.Line()})
	if res.flow != flowLive {
		return res
	}
	if n := len(res.locals); n > 0 {
		for k, sv := range res.locals[n-1] {
			if sv.set {
				res.vars[k] = sv.v
			} else {
				delete(res.vars, k)
			}
		}
		res.locals = res.locals[:n-1]
	}
	res.args, res.argsUnknown = outerArgs, outerUnknown
	res.out = nil
	return res
}

// builtin runs the shell builtins and simple tools lint models. alts are
// the alternative argument lists, argv their collapsed form.
func (in *interp) builtin(st *state, name string, alts [][]text, argv []text, io ioctx, c *syntax.CallExpr) *state {
	st.status, st.out = stUnknown, nil
	switch name {
	case "true", ":", "local", "declare", "typeset", "export", "readonly":
		// The declarations are DeclClauses in bash; here only for other dialects.
		st.status = stOK
	case "false":
		st.status = stFail
	case "[", "test":
		st.status = agree(alts, func(a []text) status {
			args := a[1:]
			if name == "[" {
				if len(args) == 0 || !isLit(args[len(args)-1], "]") {
					return stUnknown
				}
				args = args[:len(args)-1]
			}
			return testArgs(args)
		})
	case "echo":
		st.status, st.out = stOK, echo(argv[1:])
	case "printf":
		st.status, st.out = stOK, printf(argv[1:])
	case "cat":
		if (len(argv) == 1 || len(argv) == 2 && isLit(argv[1], "-")) && io.stdin != nil {
			st.status, st.out = stOK, io.stdin
		}
	case "seq":
		st.status, st.out = seq(argv[1:])
	case "basename", "dirname":
		if s, ok := argv[len(argv)-1].exact(); ok && len(argv) == 2 {
			out := path.Base(s)
			if name == "dirname" {
				out = path.Dir(s)
			}
			st.status, st.out = stOK, litValue(out+"\n")
		}
	case "exit":
		return in.exit(st, argv, c)
	case "return":
		st.status = exitStatus(argv, st.status)
		if f := in.findFrame(frameFunc, 1); f != nil {
			return in.jump(st, f)
		}
		st.status = stFail // return outside a function is an error
	case "break", "continue":
		kind, n := frameBreak, 1
		if name == "continue" {
			kind = frameCont
		}
		if v, err := strconv.Atoi(word(argv, 1)); err == nil && v > 0 {
			n = v
		}
		st.status = stOK
		if f := in.findFrame(kind, n); f != nil {
			return in.jump(st, f)
		}
	case "shift":
		n, err := strconv.Atoi(word(argv, 1))
		switch {
		case len(argv) > 1 && !argv[1].known():
			st.args, st.argsUnknown = nil, true
		case st.argsUnknown:
		case err != nil:
			n = 1
			fallthrough
		default:
			st.status = statusOf(n >= 0 && n <= len(st.args))
			if st.status == stOK {
				st.args = st.args[n:]
			}
		}
	case "set":
		if i := slices.IndexFunc(argv, func(a text) bool { return isLit(a, "--") }); i > 0 {
			st.args, st.argsUnknown = slices.Clone(argv[i+1:]), false
		}
		st.status = stOK
	case "unset":
		for _, a := range argv[1:] {
			if s, ok := a.exact(); ok && syntax.ValidName(s) {
				st.vars[s] = variable{val: litValue("")}
			}
		}
		st.status = stOK
	case "read", "getopts", "mapfile", "readarray":
		in.readVars(st, name, argv)
	case "eval", "source", ".":
		in.warn(c.Pos().Line(), name+" is not followed: kubectl calls it runs are not checked")
	}
	return st
}

// notFollowed warns about code a command runs later or elsewhere, which
// lint does not walk (a trap handler, an alias, a -c string, an xargs
// command line), when it may call kubectl. argv is unwrapped (sudo, env,
// timeout, …).
func (in *interp) notFollowed(c *syntax.CallExpr, argv []text) {
	what := path.Base(word(argv, 0))
	args := argv[min(1, len(argv)):]
	switch what {
	case "trap":
		what = "a trap handler"
	case "alias", "xargs", "parallel":
	case "bash", "sh", "dash", "ksh", "zsh":
		// -c, or a cluster of short options with c in it (-ec, -lc).
		if !slices.ContainsFunc(args, func(a text) bool {
			s, _ := a.exact()
			return len(s) > 1 && s[0] == '-' && s[1] != '-' && strings.ContainsRune(s[1:], 'c')
		}) {
			return
		}
		what += " -c"
	default:
		return
	}
	if slices.ContainsFunc(args, in.mayRunKubectl) {
		in.warn(c.Pos().Line(), what+" is not followed: kubectl calls it runs are not checked")
	}
}

// mayRunKubectl reports whether a word that names code to run later may
// call kubectl: it is not known, or it mentions kubectl (also as part of a
// name: $KUBECTL, $kubectl_cmd) or a function of the script.
func (in *interp) mayRunKubectl(t text) bool {
	s, ok := t.exact()
	if !ok || strings.Contains(strings.ToLower(s), "kubectl") {
		return true
	}
	return slices.ContainsFunc(strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(" \t\n;&|()=`$\"'{}", r) }), func(w string) bool {
		return in.funcs[w] != nil
	})
}

// word is argv[i] when it is known, else "".
func word(argv []text, i int) string {
	if i >= len(argv) {
		return ""
	}
	s, _ := argv[i].exact()
	return s
}

func isLit(t text, s string) bool {
	v, ok := t.exact()
	return ok && v == s
}

func exitStatus(argv []text, last status) status {
	if len(argv) < 2 {
		return last
	}
	n, err := strconv.Atoi(word(argv, 1))
	if err != nil {
		return stUnknown
	}
	return statusOf(n == 0)
}

// exit ends the script, or the innermost subshell.
func (in *interp) exit(st *state, argv []text, c *syntax.CallExpr) *state {
	st.status = exitStatus(argv, st.status)
	if f := in.findFrame(frameSub, 1); f != nil {
		return in.jump(st, f)
	}
	st.flow = flowDead
	st.exitLine = int(c.Pos().Line())
	st.exitFail = st.status != stOK
	return st
}

// readOptions are the options of read, mapfile and readarray that take a
// value.
var readOptions = sets.New("-d", "-n", "-N", "-p", "-t", "-u", "-i", "-C", "-c", "-O", "-s")

// readVars makes the variables read, getopts and mapfile assign unknown.
func (in *interp) readVars(st *state, name string, argv []text) {
	array := name == "mapfile" || name == "readarray"
	var names []string
	for i := 1; i < len(argv); i++ {
		s, ok := argv[i].exact()
		switch {
		case !ok:
		case s == "-a":
			array = true
		case readOptions.Has(s) && (name == "read" || s != "-t"): // mapfile -t takes none
			i++
		case !strings.HasPrefix(s, "-"):
			names = append(names, s)
		}
	}
	switch {
	case name == "getopts" && len(names) > 1:
		names = names[1:2]
	case len(names) == 0 && name == "read":
		names = []string{"REPLY"}
	case len(names) == 0 && array:
		names = []string{"MAPFILE"}
	}
	for _, n := range names {
		switch {
		case !syntax.ValidName(n):
		case array:
			st.vars[n] = variable{isArr: true, arrUnknown: true}
		default:
			st.vars[n] = unknownVar(n)
		}
	}
}

// echo models echo's output (-n drops the newline; -e escapes are kept).
func echo(args []text) value {
	newline := true
	for len(args) > 0 {
		s, ok := args[0].exact()
		if !ok || !strings.HasPrefix(s, "-") || strings.Trim(s[1:], "neE") != "" || len(s) < 2 {
			break
		}
		if strings.Contains(s, "n") {
			newline = false
		}
		args = args[1:]
	}
	t := joinTexts(args)
	if newline {
		t = t.concat(lit("\n"))
	}
	if len(t) == 0 {
		t = lit("")
	}
	return value{t}
}

// printf models the formats scripts use to print data: none, or %s.
func printf(args []text) value {
	if len(args) == 0 || !args[0].known() {
		return nil
	}
	f := strings.NewReplacer(`\n`, "\n", `\t`, "\t").Replace(args[0].String())
	rest := args[1:]
	if !strings.Contains(f, "%") {
		return litValue(f)
	}
	if strings.Count(f, "%") != 1 || !strings.Contains(f, "%s") {
		return nil
	}
	pre, post, _ := strings.Cut(f, "%s")
	if len(rest) == 0 {
		rest = []text{lit("")}
	}
	var t text
	for _, a := range rest {
		t = t.concat(lit(pre)).concat(a).concat(lit(post))
	}
	return value{t}
}

// seq models `seq [first] last`.
func seq(args []text) (status, value) {
	if len(args) == 0 || len(args) > 2 {
		return stUnknown, nil
	}
	var nums []int64
	if len(args) == 1 {
		nums = []int64{1} // seq LAST starts at 1
	}
	for i := range args {
		n, err := strconv.ParseInt(word(args, i), 10, 64)
		if err != nil {
			return stUnknown, nil
		}
		nums = append(nums, n)
	}
	first, last := nums[0], nums[1]
	if last-first > maxIterations {
		return stOK, nil
	}
	var b strings.Builder
	for i := first; i <= last; i++ {
		b.WriteString(strconv.FormatInt(i, 10))
		b.WriteByte('\n')
	}
	return stOK, litValue(b.String())
}
