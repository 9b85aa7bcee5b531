package lint

import (
	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
)

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
		sub := ""
		if s, ok := a.last("subresource"); ok {
			sub = s.String()
		}
		if a.has("filename") {
			k.objectNeeds(stdin, func(o object) { k.add(k.objectReq(o, verb, sub, true)) })
			return
		}
		// A named target is read (its subresource, if given) before the
		// PATCH: cli-runtime's builder retrieves objects it was not given.
		k.targets(a.pos, func(kind dpf.Kind, name text) {
			if verb != "get" {
				k.want(kind, "get", sub, name)
			}
			k.want(kind, verb, sub, name)
		}, nil)
	case "delete":
		if a.has("filename") {
			k.objectNeeds(stdin, func(o object) { k.add(k.objectReq(o, "delete", "", true)) })
			return
		}
		k.targets(a.pos, func(kind dpf.Kind, name text) { k.want(kind, "delete", "", name) }, func(kind dpf.Kind) {
			if a.has("selector") || a.has("all") || a.has("field-selector") {
				k.want(kind, "list", "", nil)
				k.want(kind, "delete", "", unknownText("${each}"))
			}
		})
	case "label", "annotate":
		pos := resourceWords(a.pos)
		k.targets(pos, func(kind dpf.Kind, name text) {
			k.want(kind, "get", "", name)
			k.want(kind, "patch", "", name)
		}, func(kind dpf.Kind) {
			k.want(kind, "list", "", nil)
			k.want(kind, "patch", "", unknownText("${each}"))
		})
	case "wait":
		listWatch := func(kind dpf.Kind) {
			k.want(kind, "list", "", nil)
			k.want(kind, "watch", "", nil)
		}
		k.targets(a.pos, func(kind dpf.Kind, _ text) { listWatch(kind) }, listWatch)
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
	k.targets(a.pos, func(kind dpf.Kind, name text) {
		k.want(kind, "get", "", name)
		if watch {
			k.want(kind, "list", "", nil)
			k.want(kind, "watch", "", nil)
		}
	}, func(kind dpf.Kind) {
		k.want(kind, "list", "", nil)
		if watch {
			k.want(kind, "watch", "", nil)
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
		kind := dpf.Kind{Kind: "ServiceAccount", Version: "v1", Resource: "serviceaccounts", Namespaced: true}
		k.want(kind, "create", "token", sa)
		return
	}
	k.each(a.pos[0], func(kind dpf.Kind) { k.want(kind, "create", "", nil) })
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
	pod, ok := dpf.LookupKind(k.in.opts.Kinds, "pods")
	if !ok {
		pod = dpf.Kind{Kind: "Pod", Version: "v1", Resource: "pods", Namespaced: true}
	}
	sub := map[string]string{"logs": "log", "attach": "attach", "exec": "exec", "port-forward": "portforward"}[a.verb]
	verb := "create"
	if a.verb == "logs" {
		verb = "get"
	}
	if a.verb == "logs" && a.has("selector") {
		k.want(pod, "list", "", nil)
		k.want(pod, verb, sub, unknownText("${each}"))
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
			k.want(kind, "get", "", n)
			k.want(pod, "list", "", nil)
			name = unknownText("${pod}")
		} else {
			name = n
		}
	}
	if a.verb != "logs" {
		k.want(pod, "get", "", name)
	}
	k.want(pod, verb, sub, name)
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
