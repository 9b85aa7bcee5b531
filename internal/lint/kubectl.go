package lint

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"k8s.io/apimachinery/pkg/util/sets"
	"mvdan.cc/sh/v3/syntax"
)

// need is one API request a kubectl invocation makes.
type need struct {
	req         access.Request
	namePattern string // set when the name is not resolved
	nameGlob    string
	nsPattern   string // set when the namespace is not resolved
	possible    bool   // made only in some cases (apply's patch, ...)
	note        string
	unknownKind string // the kubectl resource word or kind lint does not know
}

// kubectl flags that take a value, by long name; short forms map to them.
var (
	globalValueFlags = sets.New("kubeconfig", "context", "cluster", "user", "token", "server", "request-timeout", "as", "as-group",
		"as-uid", "certificate-authority", "client-certificate", "client-key", "tls-server-name", "cache-dir", "namespace",
		"profile", "profile-output", "log-file", "log-dir", "v", "vmodule", "password", "username", "log-flush-frequency")
	verbValueFlags = sets.New("namespace", "output", "filename", "selector", "field-selector", "subresource", "type", "patch",
		"patch-file", "container", "since", "since-time", "tail", "template", "for", "timeout", "field-manager", "sort-by",
		"label-columns", "grace-period", "cascade", "from-literal", "from-file", "from-env-file", "cert", "key", "image",
		"replicas", "resource-version", "raw", "chunk-size", "max-log-requests", "pod-running-timeout", "kustomize",
		"docker-server", "docker-username", "docker-password", "docker-email", "duration", "audience", "bound-object-kind",
		"bound-object-name", "bound-object-uid", "prune-allowlist", "applyset", "dry-run", "limit-bytes", "show-kind", "columns",
		"output-watch-events", "server-print", "subresource-name")
	shortFlags = map[byte]string{'n': "namespace", 'o': "output", 'f': "filename", 'l': "selector", 'c': "container",
		'p': "patch", 'k': "kustomize", 'L': "label-columns", 's': "server"}
	boolShortFlags = map[byte]string{'A': "all-namespaces", 'w': "watch"}
	// Flags written --flag=value only; bare they are booleans.
	optionalValueFlags = sets.New("dry-run", "server-print", "show-kind", "output-watch-events")
)

// kubectlArgs is a parsed kubectl command line.
type kubectlArgs struct {
	verb  string
	pos   []text
	flags map[string][]text
}

func (k *kubectlArgs) has(name string) bool { return len(k.flags[name]) > 0 }

func (k *kubectlArgs) last(name string) (text, bool) {
	v := k.flags[name]
	if len(v) == 0 {
		return nil, false
	}
	return v[len(v)-1], true
}

func (k *kubectlArgs) flagIs(name, want string) bool {
	t, ok := k.last(name)
	return ok && isLit(t, want)
}

// nameSelector is the name a --field-selector pins with metadata.name=NAME
// (or ==): the API server authorizes such a list or watch as one for that
// name, so RBAC's resourceNames apply. nil when there is none, or when the
// selector is not known.
func (k *kubectlArgs) nameSelector() text {
	t, ok := k.last("field-selector")
	if !ok {
		return nil
	}
	sel, ok := t.exact()
	if !ok {
		return nil
	}
	for term := range strings.SplitSeq(sel, ",") {
		if name, ok := strings.CutPrefix(strings.Replace(term, "==", "=", 1), "metadata.name="); ok {
			return lit(name)
		}
	}
	return nil
}

// parseKubectl splits argv (after "kubectl") into verb, positionals and
// flags. Flags before the verb are global flags.
func parseKubectl(args []text) (*kubectlArgs, string) {
	k := &kubectlArgs{flags: map[string][]text{}}
	for i := 0; i < len(args) && !isLit(args[i], "--"); i++ { // after --: the command kubectl exec runs
		s, ok := args[i].exact()
		switch {
		case !ok && k.verb == "":
			return nil, "the kubectl command is not resolved: " + args[i].String()
		case !ok || !strings.HasPrefix(s, "-") || s == "-":
			if k.verb == "" {
				k.verb = s
			} else {
				k.pos = append(k.pos, args[i])
			}
			continue
		}
		name, val, hasVal := "", lit("true"), false
		if long, ok := strings.CutPrefix(s, "--"); ok {
			name = long
			if n, v, found := strings.Cut(long, "="); found {
				name, val, hasVal = n, lit(v), true
			}
		} else {
			long, known := shortFlags[s[1]]
			if !known || k.verb == "logs" && s[1] == 'p' {
				for _, c := range []byte(s[1:]) {
					if long := boolShortFlags[c]; long != "" {
						k.flags[long] = append(k.flags[long], lit("true"))
					}
				}
				continue
			}
			name = long
			if len(s) > 2 {
				val, hasVal = lit(strings.TrimPrefix(s[2:], "=")), true
			}
		}
		valueFlags := verbValueFlags
		if k.verb == "" {
			valueFlags = globalValueFlags
		}
		if !hasVal && valueFlags.Has(name) && !optionalValueFlags.Has(name) && i+1 < len(args) {
			i++
			val = args[i]
		}
		k.flags[name] = append(k.flags[name], val)
	}
	if k.verb == "" {
		return nil, "kubectl without a command"
	}
	return k, ""
}

// kubectlCtx resolves what one invocation touches.
type kubectlCtx struct {
	in    *interp
	line  uint // of the call, for warnings
	args  *kubectlArgs
	ns    text
	allNS bool
	needs []need
}

// kubectl records the requests of a kubectl invocation, one alternative
// argv at a time.
func (in *interp) kubectl(st *state, c *syntax.CallExpr, alts [][]text, io ioctx) {
	for _, argv := range alts {
		args, problem := parseKubectl(argv[1:])
		if problem != "" {
			in.warn(c.Pos().Line(), problem)
			continue
		}
		ns, ok := args.last("namespace")
		if !ok {
			ns = lit(cmp.Or(in.opts.DefaultNamespace, "default"))
		}
		k := &kubectlCtx{in: in, line: c.Pos().Line(), args: args, ns: ns, allNS: args.has("all-namespaces")}
		k.verbNeeds(io.stdin)
		for _, n := range k.needs {
			in.record(st, c, n, io)
		}
	}
}

func (k *kubectlCtx) warnf(format string, a ...any) {
	k.in.warn(k.line, fmt.Sprintf(format, a...))
}

// targets walks "TYPE[,TYPE] NAME..." or "TYPE/NAME..." arguments. named is
// called per name, collection per type given without names. Requests on a
// type lint does not know use a guessed resource and are possible.
func (k *kubectlCtx) targets(pos []text, named func(dpf.Kind, text), collection func(dpf.Kind)) {
	if len(pos) == 0 {
		k.warnf("kubectl %s without a resource type", k.args.verb)
		return
	}
	if _, _, slash := cutText(pos[0], "/"); slash {
		for _, p := range pos {
			typ, name, ok := cutText(p, "/")
			if !ok {
				k.warnf("kubectl %s mixes TYPE/NAME and other arguments: %s", k.args.verb, p.String())
				continue
			}
			k.each(typ, func(kind dpf.Kind) { named(kind, name) })
		}
		return
	}
	names := pos[1:]
	k.each(pos[0], func(kind dpf.Kind) {
		if len(names) == 0 && collection != nil {
			collection(kind)
		}
		for _, n := range names {
			if !n.empty() { // kubectl rejects an empty name before any request
				named(kind, n)
			}
		}
	})
}

// each resolves a comma-separated type list. A type lint does not know
// gets a guessed resource; the requests made for it are marked possible.
func (k *kubectlCtx) each(types text, f func(dpf.Kind)) {
	s, ok := types.exact()
	if !ok {
		k.warnf("kubectl %s of an unresolved resource type: %s", k.args.verb, types.String())
		return
	}
	for _, word := range strings.Split(s, ",") {
		switch kind, known := dpf.LookupKind(k.in.opts.Kinds, word); {
		case word == "":
		case word == "all":
			k.warnf("kubectl %s all is not expanded: its requests are not checked", k.args.verb)
		case known:
			f(kind)
		default:
			start := len(k.needs)
			f(guessKind(word))
			for i := start; i < len(k.needs); i++ {
				k.needs[i].unknownKind, k.needs[i].possible = word, true
			}
		}
	}
}

// guessKind is what lint assumes for a resource word it does not know:
// a namespaced resource named like the word's plural.
func guessKind(word string) dpf.Kind {
	res, group, _ := strings.Cut(strings.ToLower(word), ".")
	return dpf.Kind{Kind: word, Group: group, Resource: plural(res), Namespaced: true}
}

// resourceWords drops label/annotate arguments (key=value, key-).
func resourceWords(pos []text) []text {
	for i, p := range pos {
		if s := p.String(); i > 0 && (strings.Contains(s, "=") || strings.HasSuffix(s, "-")) {
			return pos[:i]
		}
	}
	return pos
}

// want adds the requests of verbs on a kind (its subresource sub) and a
// name (nil: no name) in the invocation's namespace.
func (k *kubectlCtx) want(kind dpf.Kind, sub string, name text, verbs ...string) {
	for _, verb := range verbs {
		k.add(k.need(kind, verb, sub, name, k.ns))
	}
}

// need builds a request; ns is ignored for cluster-scoped kinds and with
// --all-namespaces.
func (k *kubectlCtx) need(kind dpf.Kind, verb, sub string, name, ns text) need {
	n := need{req: access.Request{Verb: verb, Group: kind.Group, Resource: kind.Resource, Subresource: sub}}
	if s, ok := name.exact(); ok {
		n.req.Name = s
	} else {
		n.namePattern, n.nameGlob = name.String(), name.glob()
	}
	if kind.Namespaced && !k.allNS {
		n.req.Namespace = ns.String()
		if !ns.known() {
			n.nsPattern = n.req.Namespace
		}
	}
	return n
}

func plural(s string) string {
	switch {
	case strings.HasSuffix(s, "s"):
		return s
	case strings.HasSuffix(s, "y") && len(s) > 1 && !strings.ContainsRune("aeiou", rune(s[len(s)-2])):
		return s[:len(s)-1] + "ies"
	}
	return s + "s"
}

// cutText splits t at the first sep inside a known part.
func cutText(t text, sep string) (before, after text, found bool) {
	for i, s := range t {
		if s.unknown {
			continue
		}
		if j := strings.Index(s.s, sep); j >= 0 {
			before = append(append(text(nil), t[:i]...), seg{s: s.s[:j]})
			after = append(text{{s: s.s[j+len(sep):]}}, t[i+1:]...)
			return clean(before), clean(after), true
		}
	}
	return t, nil, false
}

func clean(t text) text {
	out := slices.DeleteFunc(t, func(s seg) bool { return s.s == "" && !s.unknown })
	if len(out) == 0 {
		return lit("")
	}
	return out
}

// verbNeeds maps a kubectl verb to the API requests it makes.
func (k *kubectlCtx) verbNeeds(stdin value) {
	a := k.args
	switch a.verb {
	case "get", "describe":
		if raw, ok := a.last("raw"); ok {
			k.nonResource("get", raw)
			return
		}
		k.readNeeds(stdin)
	case "create":
		k.create(stdin)
	case "apply":
		k.apply(stdin)
	case "replace":
		force := a.has("force")
		k.objectNeeds(stdin, func(o object) {
			if force {
				k.add(k.objectReq(o, "delete", "", true))
				k.add(k.objectReq(o, "create", "", false))
				return
			}
			k.add(k.objectReq(o, "update", "", true))
		})
	case "patch":
		verb := "patch"
		if a.flagIs("dry-run", "client") {
			verb = "get"
		}
		s, _ := a.last("subresource")
		sub := s.String()
		if a.has("filename") {
			k.objectNeeds(stdin, func(o object) { k.add(k.objectReq(o, verb, sub, true)) })
			return
		}
		// A named target is read (its subresource, if given) before the
		// PATCH: cli-runtime's builder retrieves objects it was not given.
		k.targets(a.pos, func(kind dpf.Kind, name text) {
			if verb != "get" {
				k.want(kind, sub, name, "get")
			}
			k.want(kind, sub, name, verb)
		}, nil)
	case "delete":
		if a.has("filename") {
			k.objectNeeds(stdin, func(o object) { k.add(k.objectReq(o, "delete", "", true)) })
			return
		}
		k.targets(a.pos, func(kind dpf.Kind, name text) { k.want(kind, "", name, "delete") }, func(kind dpf.Kind) {
			if a.has("selector") || a.has("all") || a.has("field-selector") {
				k.want(kind, "", nil, "list")
				k.want(kind, "", unknownText("${each}"), "delete")
			}
		})
	case "label", "annotate":
		pos := resourceWords(a.pos)
		k.targets(pos, func(kind dpf.Kind, name text) { k.want(kind, "", name, "get", "patch") }, func(kind dpf.Kind) {
			k.want(kind, "", nil, "list")
			k.want(kind, "", unknownText("${each}"), "patch")
		})
	case "wait":
		// Each object is read, then listed and watched with a
		// metadata.name field selector: RBAC sees its name.
		k.targets(a.pos, func(kind dpf.Kind, name text) { k.want(kind, "", name, "get", "list", "watch") }, func(kind dpf.Kind) {
			k.want(kind, "", a.nameSelector(), "list")
			k.want(kind, "", unknownText("${each}"), "get", "list", "watch")
		})
	case "logs", "attach", "exec", "port-forward":
		k.podNeeds()
	case "version":
		if !a.has("client") {
			k.nonResource("get", lit("/version"))
		}
	case "api-resources", "api-versions":
		k.nonResource("get", lit("/api"))
		k.nonResource("get", lit("/apis"))
	case "auth":
		k.auth()
	case "config", "completion", "help", "plugin", "kustomize", "explain", "options", "alpha":
	default:
		k.warnf("kubectl %s is not modelled: its requests are not checked", a.verb)
	}
}

// readNeeds: get/describe TYPE [NAME...] | TYPE/NAME... | -f.
func (k *kubectlCtx) readNeeds(stdin value) {
	a := k.args
	watch := a.has("watch") || a.has("watch-only")
	if a.has("filename") {
		k.objectNeeds(stdin, func(o object) { k.add(k.objectReq(o, "get", "", true)) })
		return
	}
	// A named object is watched with a metadata.name field selector, which
	// RBAC reads as its name; so is a type listed with one.
	k.targets(a.pos, func(kind dpf.Kind, name text) {
		k.want(kind, "", name, "get")
		if watch {
			k.want(kind, "", name, "watch")
		}
	}, func(kind dpf.Kind) {
		name := a.nameSelector()
		k.want(kind, "", name, "list")
		if watch {
			k.want(kind, "", name, "watch")
		}
	})
}

func (k *kubectlCtx) create(stdin value) {
	a := k.args
	if a.flagIs("dry-run", "client") {
		return
	}
	if a.has("filename") {
		k.objectNeeds(stdin, func(o object) { k.add(k.objectReq(o, "create", "", false)) })
		return
	}
	if len(a.pos) == 0 {
		k.warnf("kubectl create without -f or a resource type")
		return
	}
	word, ok := a.pos[0].exact()
	if !ok {
		k.warnf("kubectl create of an unresolved type: %s", a.pos[0].String())
		return
	}
	if word == "token" {
		sa := unknownText("${serviceaccount}")
		if len(a.pos) > 1 {
			sa = a.pos[1]
		}
		kind, _ := dpf.LookupKind(dpf.Kinds(), "serviceaccounts")
		k.want(kind, "token", sa, "create")
		return
	}
	k.each(a.pos[0], func(kind dpf.Kind) { k.want(kind, "", nil, "create") })
}

// apply: client-side apply GETs each object, then CREATEs it when absent
// or PATCHes it when present. get and create are needed whenever the call
// runs; patch only when the object already exists, so it is possible.
// --server-side sends one PATCH (apply patch), which also creates.
func (k *kubectlCtx) apply(stdin value) {
	a := k.args
	if a.has("kustomize") {
		k.warnf("kubectl apply -k is not followed: its objects are not checked")
		return
	}
	serverSide := a.has("server-side") && !a.flagIs("server-side", "false")
	clientDry := a.flagIs("dry-run", "client")
	k.objectNeeds(stdin, func(o object) {
		if serverSide {
			k.add(k.objectReq(o, "patch", "", true))
			return
		}
		k.add(k.objectReq(o, "get", "", true))
		if clientDry {
			return
		}
		k.add(k.objectReq(o, "create", "", false))
		n := k.objectReq(o, "patch", "", true)
		n.possible, n.note = true, "only when the object already exists"
		k.add(n)
	})
}

func (k *kubectlCtx) podNeeds() {
	a := k.args
	pod, _ := dpf.LookupKind(dpf.Kinds(), "pods") // core pods, whatever CRDs are loaded
	sub := map[string]string{"logs": "log", "attach": "attach", "exec": "exec", "port-forward": "portforward"}[a.verb]
	verb := "create"
	if a.verb == "logs" {
		verb = "get"
	}
	if a.verb == "logs" && a.has("selector") {
		k.want(pod, "", nil, "list")
		k.want(pod, sub, unknownText("${each}"), verb)
		return
	}
	if len(a.pos) == 0 {
		k.warnf("kubectl %s without a pod", a.verb)
		return
	}
	name := a.pos[0]
	if typ, n, found := cutText(name, "/"); found {
		word, ok := typ.exact()
		if !ok {
			k.warnf("kubectl %s of an unresolved type: %s", a.verb, typ.String())
			return
		}
		if kind, ok := dpf.LookupKind(k.in.opts.Kinds, word); ok && kind.Resource != "pods" {
			k.want(kind, "", n, "get")
			k.want(pod, "", nil, "list")
			name = unknownText("${pod}")
		} else {
			name = n
		}
	}
	if a.verb != "logs" {
		k.want(pod, "", name, "get")
	}
	k.want(pod, sub, name, verb)
}

func (k *kubectlCtx) auth() {
	if len(k.args.pos) == 0 {
		return
	}
	switch k.args.pos[0].String() {
	case "can-i":
		k.add(need{req: access.Request{Verb: "create", Group: "authorization.k8s.io", Resource: "selfsubjectaccessreviews"}})
	case "whoami":
		k.add(need{req: access.Request{Verb: "create", Group: "authentication.k8s.io", Resource: "selfsubjectreviews"}})
	default:
		k.warnf("kubectl auth %s is not modelled: its requests are not checked", k.args.pos[0].String())
	}
}

func (k *kubectlCtx) nonResource(verb string, url text) {
	s, ok := url.exact()
	if !ok {
		k.warnf("kubectl request to an unresolved URL: %s", url.String())
		return
	}
	k.add(need{req: access.Request{Verb: verb, NonResourceURL: s}})
}

func (k *kubectlCtx) add(n need) { k.needs = append(k.needs, n) }
