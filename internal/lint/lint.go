// Package lint reads shell scripts, finds every kubectl invocation (through
// variables, functions, pipelines, command substitutions and here-documents)
// and checks the API requests they make against RBAC manifests. It parses
// bash with mvdan.cc/sh and walks the syntax tree with a small abstract
// interpreter that resolves what the script's arguments decide; rule
// matching is the Kubernetes RBAC code, through internal/rbac.
//
// A call is "certain" when every run of the script that completes (does not
// exit with an error) makes it, given the arguments; "possible" when it
// depends on something lint cannot resolve. See docs/lint.md.
package lint

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/policy"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
	rbacv1 "k8s.io/api/rbac/v1"
	"mvdan.cc/sh/v3/syntax"
)

// SchemaVersion identifies the report's JSON layout
// (docs/schema/lint-report.schema.json).
const SchemaVersion = "dpfdoctor.dev/lint/v1alpha1"

// Certainty says whether a call is made on every completing run.
type Certainty string

const (
	Certain  Certainty = "certain"
	Possible Certainty = "possible"
)

// Finding is one API request one kubectl call in a script makes, and the
// RBAC answer for it.
type Finding struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
	// Call is the command as written in the script.
	Call string `json:"call"`
	// Func is the script function the call is in ("" at top level).
	Func    string         `json:"func,omitempty"`
	Request access.Request `json:"request"`
	// NamePattern is set when the object name is not resolved, e.g.
	// "${secret_name}": Request.Name is then empty and the request is
	// checked for any name.
	NamePattern string `json:"namePattern,omitempty"`
	// NamespacePattern is set when the namespace is not resolved; only
	// ClusterRoleBindings count for such a request.
	NamespacePattern string `json:"namespacePattern,omitempty"`
	// UnknownKind is the resource or kind lint has no mapping for.
	UnknownKind string    `json:"unknownKind,omitempty"`
	Certainty   Certainty `json:"certainty"`
	// Why explains a possible call.
	Why string `json:"why,omitempty"`
	// StderrHidden: kubectl's stderr does not reach the script's log
	// (2>/dev/null, captured by $(... 2>&1), piped), so a Forbidden error
	// is invisible there.
	StderrHidden bool `json:"stderrHidden,omitempty"`
	// FailureIgnored: the script discards the call's failure (|| true).
	FailureIgnored bool          `json:"failureIgnored,omitempty"`
	Decision       rbac.Decision `json:"decision"`
	// Suppressed is the configured suppression that matched this denial.
	Suppressed *Suppression `json:"suppressed,omitempty"`

	nameGlob string
}

// Code is the rule a denial breaks (RuleDenied or RulePossiblyDenied);
// "" when the request is allowed.
func (f Finding) Code() string {
	switch {
	case f.Decision.Allowed:
		return ""
	case f.Certainty == Certain:
		return RuleDenied
	}
	return RulePossiblyDenied
}

// Needs renders the request with its unresolved parts:
// "get secrets ${secret_name} in dpf-operator-system".
func (f Finding) Needs() string {
	r := f.Request
	if f.NamePattern != "" {
		r.Name = f.NamePattern
	}
	return r.String()
}

// Warning is something lint could not follow.
type Warning struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Message string `json:"message"`
	// Suppressed is the configured suppression that matched it.
	Suppressed *Suppression `json:"suppressed,omitempty"`
}

// Report is the result of linting scripts against RBAC.
type Report struct {
	SchemaVersion  string         `json:"schemaVersion"`
	Subject        access.Subject `json:"subject"`
	ServiceAccount string         `json:"serviceAccount,omitempty"`
	Scripts        []string       `json:"scripts"`
	// Args are the script arguments lint assumed; nil when unknown.
	Args     []string  `json:"args"`
	Findings []Finding `json:"findings"`
	Warnings []Warning `json:"warnings,omitempty"`
	// Calls is the number of kubectl invocations found.
	Calls int `json:"calls"`
	// Allowed, Denied (certain calls) and Possible (possible calls
	// denied) count findings.
	Allowed  int `json:"allowed"`
	Denied   int `json:"denied"`
	Possible int `json:"possible"`
	// Suppressed counts the denials and warnings a suppression matched;
	// they are not in Denied or Possible.
	Suppressed int `json:"suppressed"`
	// FailOn is the certainty from which a denial fails the run.
	FailOn Certainty `json:"failOn"`
	// Suggestion is least-privilege RBAC YAML for the denied certain
	// calls, when asked for.
	Suggestion string `json:"suggestion,omitempty"`
}

// Failed reports whether a certain call is denied, or with FailOn
// Possible a possible one, not counting suppressed denials.
func (r *Report) Failed() bool { return r.Denied > 0 || r.FailOn == Possible && r.Possible > 0 }

// Options configure a lint run.
type Options struct {
	// Kinds maps kubectl resource words and object kinds; nil means
	// dpf.Kinds().
	Kinds []dpf.Kind
	// Args are the script's arguments; nil means unknown (every branch
	// they decide is possible).
	Args *Args
	// DefaultNamespace is the namespace of calls without -n: kubectl in a
	// pod uses its ServiceAccount's namespace. "" means "default".
	DefaultNamespace string
	// Subject is who runs the script.
	Subject access.Subject
	// ServiceAccount is shown in reports ("ns/name").
	ServiceAccount string
	// FailOn is Certain ("" means Certain) or Possible.
	FailOn Certainty
	// Suppress are the suppressions of the configuration file.
	Suppress []Suppression
}

// Script is a parsed shell script.
type Script struct {
	Name string
	file *syntax.File
}

// ScriptError is a script lint cannot parse. Line and Col are 1-based.
type ScriptError struct {
	File      string
	Line, Col int
	Err       error
}

func (e *ScriptError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %v", e.File, e.Line, e.Col, e.Err)
}
func (e *ScriptError) Unwrap() error { return e.Err }

// ParseScript parses a bash script; name is used in findings and errors.
func ParseScript(name string, src []byte) (s *Script, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, &ScriptError{File: name, Line: 1, Col: 1, Err: fmt.Errorf("cannot parse: %v", r)}
		}
	}()
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(bytes.NewReader(src), name)
	if err != nil {
		var pe syntax.ParseError
		var le syntax.LangError
		switch {
		case errors.As(err, &pe):
			return nil, &ScriptError{File: name, Line: int(pe.Pos.Line()), Col: int(pe.Pos.Col()), Err: errors.New(pe.Text)}
		case errors.As(err, &le):
			return nil, &ScriptError{File: name, Line: int(le.Pos.Line()), Col: int(le.Pos.Col()), Err: fmt.Errorf("%s is not bash", le.Feature)}
		}
		return nil, &ScriptError{File: name, Line: 1, Col: 1, Err: err}
	}
	return &Script{Name: name, file: f}, nil
}

// LoadScript reads and parses a script file.
func LoadScript(path string) (*Script, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read script: %w", err)
	}
	return ParseScript(path, src)
}

// Lint analyses the scripts and checks every request they need against
// set, for o.Subject.
func Lint(scripts []*Script, set *rbac.Set, o Options) *Report {
	if o.Kinds == nil {
		o.Kinds = dpf.Kinds()
	}
	r := &Report{SchemaVersion: SchemaVersion, Subject: o.Subject, ServiceAccount: o.ServiceAccount, Findings: []Finding{}, FailOn: cmp.Or(o.FailOn, Certain)}
	if o.Args != nil {
		r.Args = o.Args.Strings()
	}
	for _, s := range scripts {
		r.Scripts = append(r.Scripts, s.Name)
		fs, ws, calls := analyze(s, &o)
		r.Findings = append(r.Findings, fs...)
		r.Warnings = append(r.Warnings, ws...)
		r.Calls += calls
	}
	ev := &evaluator{set: set, subj: o.Subject, names: set.ResourceNames(), namespaces: set.BindingNamespaces(), memo: map[string]rbac.Decision{}}
	for i := range r.Findings {
		f := &r.Findings[i]
		ev.evaluate(f)
		if !f.Decision.Allowed {
			f.Suppressed = suppressedBy(o.Suppress, f.Code(), f.File, f.Line, f.Call)
		}
		switch {
		case f.Suppressed != nil:
			r.Suppressed++
		case f.Decision.Allowed:
			r.Allowed++
		case f.Certainty == Certain:
			r.Denied++
		default:
			r.Possible++
		}
	}
	for i := range r.Warnings {
		w := &r.Warnings[i]
		if w.Suppressed = suppressedBy(o.Suppress, RuleNotChecked, w.File, w.Line, ""); w.Suppressed != nil {
			r.Suppressed++
		}
	}
	return r
}

// evaluator answers findings, once per distinct request.
type evaluator struct {
	set               *rbac.Set
	subj              access.Subject
	names, namespaces []string
	memo              map[string]rbac.Decision
}

func (e *evaluator) decide(r access.Request) rbac.Decision {
	k := r.Key()
	if d, ok := e.memo[k]; ok {
		return d
	}
	d := e.set.Evaluate(e.subj, r)
	e.memo[k] = d
	return d
}

// evaluate answers a finding. A request whose name (or namespace) is not
// resolved is checked for any name; when that is denied but some name the
// RBAC lists would be allowed, the denial is only possible.
func (e *evaluator) evaluate(f *Finding) {
	f.Decision = e.decide(f.Request)
	if f.Decision.Allowed {
		return
	}
	if f.UnknownKind != "" {
		f.Decision.Reason = fmt.Sprintf("%s; %q is not a known resource (checked as %q): pass its CustomResourceDefinition with --crds",
			f.Decision.Reason, f.UnknownKind, f.Request.GroupResource())
	}
	if f.Certainty != Certain {
		return
	}
	if f.NamePattern != "" {
		var ok []string
		re, err := glob(f.nameGlob)
		for _, n := range e.names {
			r := f.Request
			r.Name = n
			if err == nil && re.MatchString(n) && e.decide(r).Allowed {
				ok = append(ok, n)
			}
		}
		if len(ok) > 0 {
			f.Certainty = Possible
			f.Why = fmt.Sprintf("the name %s is not resolved; allowed only if it is %s", f.NamePattern, strings.Join(ok, " or "))
			return
		}
	}
	if f.NamespacePattern != "" {
		for _, ns := range e.namespaces {
			r := f.Request
			r.Namespace = ns
			if e.decide(r).Allowed {
				f.Certainty = Possible
				f.Why = fmt.Sprintf("the namespace %s is not resolved; allowed if it is %s", f.NamespacePattern, ns)
				return
			}
		}
	}
}

// Suggest renders least-privilege RBAC for the denied certain calls, with
// the generator `dpfdoctor fix` uses. Requests whose namespace or kind is not
// resolved are left out; unresolved names are granted for every name. What
// fix's policy would never grant (Secret lists, RBAC, wildcards, …) is left
// out too, and named in a comment at the top.
func Suggest(r *Report, subject rbacv1.Subject) ([]byte, error) {
	var grants []rbac.Grant
	var refused []string
	for _, f := range r.Findings {
		if f.Code() != RuleDenied || f.Suppressed != nil || f.NamespacePattern != "" || f.UnknownKind != "" {
			continue
		}
		at := fmt.Sprintf("%s:%d", filepath.Base(f.File), f.Line)
		if why := policy.RefuseRequest(f.Request); why != "" {
			refused = append(refused, fmt.Sprintf("# - %s (%s): %s", f.Request, at, why))
			continue
		}
		grants = append(grants, rbac.Grant{Request: f.Request, Reason: at + " " + f.Needs()})
	}
	var out []byte
	if len(refused) > 0 {
		out = fmt.Appendf(nil, "# Not suggested: dpfdoctor's policy never grants these; change the calls instead:\n%s\n",
			strings.Join(slices.Compact(refused), "\n"))
	}
	if len(grants) == 0 {
		return out, nil
	}
	objs, err := rbac.Render(grants, rbac.RenderOptions{Subject: subject})
	if err != nil {
		return nil, fmt.Errorf("suggest RBAC: %w", err)
	}
	y, err := rbac.ToYAML(objs)
	return append(out, y...), err
}

// analyze walks one script and returns its findings (without decisions),
// warnings and the number of kubectl invocations.
func analyze(s *Script, o *Options) ([]Finding, []Warning, int) {
	in := newInterp(s.Name, o)
	st := newState()
	if o.Args == nil {
		st.argsUnknown = true
	} else {
		st.args = o.Args.words
	}
	end := in.stmts(st, s.file.Stmts, ioctx{})
	if end.flow == flowDead && end.exitFail && end.exitLine > 0 {
		in.warn(uint(end.exitLine), "with these arguments every run ends in a failing exit here; calls after it are not checked")
	}
	in.walkUncalled(s.file, end)
	return in.findings(), in.warnings, len(in.calls)
}

func newInterp(name string, o *Options) *interp {
	return &interp{
		file:     name,
		opts:     o,
		funcs:    map[string]*syntax.FuncDecl{},
		called:   map[*syntax.FuncDecl]bool{},
		recs:     map[recKey]*record{},
		printer:  syntax.NewPrinter(syntax.SingleLine(true)),
		patterns: map[string]*regexp.Regexp{},
		calls:    map[*syntax.CallExpr]bool{},
	}
}

// walkUncalled runs the functions no path called, with unknown arguments:
// their calls are possible.
func (in *interp) walkUncalled(f *syntax.File, end *state) {
	base := newState()
	if end.flow == flowLive {
		base = end.clone()
	}
	base.locals = nil
	syntax.Walk(f, func(n syntax.Node) bool {
		fd, ok := n.(*syntax.FuncDecl)
		if !ok || fd.Name == nil || in.called[fd] {
			return true
		}
		name := fd.Name.Value
		if _, ok := in.funcs[name]; !ok {
			in.funcs[name] = fd
		}
		st := base.clone()
		st.flow, st.status = flowLive, stOK
		st.guard = &guard{possible: true, why: &reason{why: whyUncalled, fn: name, line: fd.Position.Line()}}
		in.callFunc(st, fd, name, nil, true, ioctx{})
		return true
	})
}

type recKey struct {
	pos                 uint
	req, name, ns, kind string
	possible            bool
}

type record struct {
	f        Finding
	guards   []*guard
	possible bool
	note     string
}

// record notes one request of a kubectl call reached under st's guard.
func (in *interp) record(st *state, c *syntax.CallExpr, n need, io ioctx) {
	in.calls[c] = true
	key := recKey{pos: c.Pos().Offset(), req: n.req.Key(), name: n.namePattern, ns: n.nsPattern, kind: n.unknownKind, possible: n.possible}
	hidden := io.stderr != sinkTerminal
	r := in.recs[key]
	if r == nil {
		fn := ""
		if len(in.stack) > 0 {
			fn = in.stack[len(in.stack)-1]
		}
		r = &record{f: Finding{
			File: in.file, Line: int(c.Pos().Line()), Col: int(c.Pos().Col()), Call: in.callSource(c), Func: fn,
			Request: n.req, NamePattern: n.namePattern, NamespacePattern: n.nsPattern, UnknownKind: n.unknownKind,
			StderrHidden: hidden, FailureIgnored: io.ignored, nameGlob: n.nameGlob,
		}, possible: n.possible, note: n.note}
		in.recs[key] = r
		in.order = append(in.order, r)
	} else {
		r.f.StderrHidden = r.f.StderrHidden && hidden
		r.f.FailureIgnored = r.f.FailureIgnored && io.ignored
	}
	if !slices.Contains(r.guards, st.guard) && len(r.guards) < maxGuardsPerAt {
		r.guards = append(r.guards, st.guard)
	}
}

func (in *interp) callSource(c *syntax.CallExpr) string {
	var b bytes.Buffer
	if err := in.printer.Print(&b, c); err != nil {
		return ""
	}
	return strings.TrimSpace(b.String())
}

func (in *interp) findings() []Finding {
	out := make([]Finding, 0, len(in.order))
	for _, r := range in.order {
		f := r.f
		f.Certainty, f.Why = Possible, r.note
		switch {
		case r.possible:
		case slices.ContainsFunc(r.guards, (*guard).certain):
			f.Certainty = Certain
		case len(r.guards) > 0:
			f.Why = in.explain(r.guards[0].possibleBelow(nil).why)
		}
		out = append(out, f)
	}
	slices.SortStableFunc(out, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col),
			cmp.Compare(a.Request.Key()+a.NamePattern, b.Request.Key()+b.NamePattern))
	})
	return out
}

func (in *interp) explain(r *reason) string {
	if r == nil {
		return "depends on values lint cannot resolve"
	}
	src := ""
	if r.node != nil {
		src = in.source(r.node)
	}
	return fmt.Sprintf(r.why, src, r.line, r.fn)
}
