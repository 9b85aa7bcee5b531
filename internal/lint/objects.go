package lint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
)

// object is a Kubernetes object kubectl reads with -f -.
type object struct {
	apiVersion, kind string
	k                dpf.Kind
	known            bool // k comes from the kind table
	name, ns         text
	partial          bool // only in some expansions of the input
}

// objectNeeds calls f for every object `-f -` reads from stdin; other -f
// sources are reported as not followed.
func (k *kubectlCtx) objectNeeds(stdin value, f func(object)) {
	for _, fv := range k.args.flags["filename"] {
		if s, ok := fv.exact(); !ok || s != "-" {
			k.warnf("kubectl %s -f %s reads a file lint does not follow: its objects are not checked", k.args.verb, fv.String())
			continue
		}
		if stdin == nil {
			k.warnf("kubectl %s -f - reads objects from an input lint cannot resolve: they are not checked", k.args.verb)
			continue
		}
		for _, o := range k.in.parseObjects(stdin, k.line) {
			f(o)
		}
	}
}

// objectReq is the request verb makes on o; named says whether it names
// the object (a create does not).
func (k *kubectlCtx) objectReq(o object, verb, sub string, named bool) need {
	ns, name := k.ns, o.name
	if len(o.ns) > 0 {
		ns = o.ns
	}
	if !named {
		name = nil
	}
	n := k.need(o.k, verb, sub, name, ns)
	if !o.known {
		n.unknownKind, n.possible = o.kind, true
	}
	if o.partial && !n.possible {
		n.possible, n.note = true, "only in some expansions of the objects"
	}
	return n
}

// parseObjects reads the objects of every alternative of stdin, warning
// at line about those it cannot read.
func (in *interp) parseObjects(stdin value, line uint) []object {
	var out []object
	var counts []int // how many alternatives hold out[i]
	index := map[string]int{}
	parsed := 0
	for _, alt := range stdin {
		objs, err := in.decodeObjects(alt)
		if err != nil {
			in.warn(line, "cannot read the objects kubectl reads from stdin: "+err.Error())
			continue
		}
		parsed++
		seen := map[string]bool{}
		for _, o := range objs {
			key := strings.Join([]string{o.apiVersion, o.kind, o.name.String(), o.ns.String()}, "\x00")
			if seen[key] {
				continue
			}
			seen[key] = true
			if j, ok := index[key]; ok {
				counts[j]++
				continue
			}
			index[key] = len(out)
			out, counts = append(out, o), append(counts, 1)
		}
	}
	for i := range out {
		out[i].partial = counts[i] < parsed || parsed < len(stdin)
	}
	return out
}

type objectHeader struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// eachObject calls fn with every object of a YAML or JSON stream, the items
// of a List (nested at most 4 deep) in place of the List; empty documents
// are skipped. notObject is the error for a document that is not an object.
// line is the document an error is in.
func eachObject(data []byte, notObject string, fn func(js []byte) error) (line int, err error) {
	var visit func(js []byte, depth int) error
	visit = func(js []byte, depth int) error {
		js = bytes.TrimSpace(js)
		if len(js) == 0 || bytes.Equal(js, []byte("null")) {
			return nil
		}
		if js[0] != '{' || depth > 4 {
			return errors.New(notObject)
		}
		var list struct {
			Kind  string            `json:"kind"`
			Items []json.RawMessage `json:"items"`
		}
		if json.Unmarshal(js, &list) != nil || list.Items == nil || !strings.HasSuffix(list.Kind, "List") {
			return fn(js) // fn reports a decoding error in its own words
		}
		for _, it := range list.Items {
			if err := visit(it, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	for _, d := range rbac.SplitDocuments(data) {
		js, line, err := d.JSON()
		if err == nil {
			err = visit(js, 0)
		}
		if err != nil {
			return line, err
		}
	}
	return 0, nil
}

// unknownMark is the first of the private-use characters that stand for
// the unknown parts of a stream while it is decoded.
const unknownMark = '\U000F0000'

// decodeObjects reads a YAML or JSON stream of objects, one alternative of
// kubectl's stdin. Its unknown parts are written as marks for the decoder
// and read back as unknown parts of names and namespaces.
func (in *interp) decodeObjects(alt text) ([]object, error) {
	var b strings.Builder
	for i, s := range alt {
		if s.unknown {
			b.WriteRune(unknownMark + rune(i))
		} else {
			b.WriteString(s.s)
		}
	}
	isMark := func(r rune) bool { return r >= unknownMark && int(r-unknownMark) < len(alt) }
	back := func(s string) text {
		var t text
		for i := strings.IndexFunc(s, isMark); i >= 0; i = strings.IndexFunc(s, isMark) {
			r, n := utf8.DecodeRuneInString(s[i:])
			t = t.concat(lit(s[:i])).concat(text{alt[r-unknownMark]})
			s = s[i+n:]
		}
		return t.concat(lit(s))
	}
	var out []object
	line, err := eachObject([]byte(b.String()), "not a Kubernetes object", func(js []byte) error {
		var h objectHeader
		if err := json.Unmarshal(js, &h); err != nil {
			return err
		}
		if h.Kind == "" || h.APIVersion == "" {
			return fmt.Errorf("an object without apiVersion or kind")
		}
		if strings.ContainsFunc(h.APIVersion+h.Kind, isMark) {
			return fmt.Errorf("an object whose apiVersion or kind is not resolved (%s %s)", back(h.APIVersion), back(h.Kind))
		}
		o := object{apiVersion: h.APIVersion, kind: h.Kind, name: back(h.Metadata.Name), ns: back(h.Metadata.Namespace)}
		o.k, o.known = dpf.KindByGVK(in.opts.Kinds, h.APIVersion, h.Kind)
		if !o.known {
			o.k = guessKind(h.Kind)
			o.k.Group = ""
			if i := strings.LastIndex(h.APIVersion, "/"); i >= 0 {
				o.k.Group = h.APIVersion[:i]
			}
		}
		out = append(out, o)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("line %d of the input: %w", line, err)
	}
	return out, nil
}

// LoadKinds reads CustomResourceDefinitions from files and directories
// (*.yaml, *.yml, *.json, walked recursively) and returns their kinds ahead
// of the built-in ones (dpf.Kinds()), so a CRD overrides a built-in kind of
// the same group. Malformed input is an *rbac.ManifestError.
func LoadKinds(paths ...string) ([]dpf.Kind, error) {
	var kinds []dpf.Kind
	for _, p := range paths {
		files, err := rbac.ManifestFiles(p)
		if err != nil {
			return nil, fmt.Errorf("read CRDs: %w", err)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("read CRDs: %w", err)
			}
			ks, err := ParseCRDs(f, data)
			if err != nil {
				return nil, err
			}
			kinds = append(kinds, ks...)
		}
	}
	return append(kinds, dpf.Kinds()...), nil
}

type crd struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Spec       struct {
		Group string `json:"group"`
		Scope string `json:"scope"`
		Names struct {
			Kind       string   `json:"kind"`
			Plural     string   `json:"plural"`
			Singular   string   `json:"singular"`
			ShortNames []string `json:"shortNames"`
		} `json:"names"`
		Version  string `json:"version"`
		Versions []struct {
			Name    string `json:"name"`
			Storage bool   `json:"storage"`
		} `json:"versions"`
	} `json:"spec"`
}

// ParseCRDs reads the CustomResourceDefinitions of one YAML or JSON stream;
// other kinds are ignored.
func ParseCRDs(name string, data []byte) ([]dpf.Kind, error) {
	var out []dpf.Kind
	line, err := eachObject(data, "expected a CustomResourceDefinition", func(js []byte) error {
		var c crd
		if err := json.Unmarshal(js, &c); err != nil {
			return fmt.Errorf("decode CustomResourceDefinition: %w", err)
		}
		if c.Kind != "CustomResourceDefinition" {
			return nil
		}
		n := c.Spec.Names
		if c.Spec.Group == "" || n.Kind == "" || n.Plural == "" {
			return fmt.Errorf("CustomResourceDefinition without spec.group, names.kind or names.plural")
		}
		k := dpf.Kind{Kind: n.Kind, Group: c.Spec.Group, Version: c.Spec.Version, Resource: n.Plural,
			Namespaced: c.Spec.Scope != "Cluster", ShortNames: append([]string(nil), n.ShortNames...)}
		for _, v := range c.Spec.Versions {
			if k.Version == "" || v.Storage {
				k.Version = v.Name
			}
		}
		if n.Singular != "" && n.Singular != strings.ToLower(n.Kind) {
			k.ShortNames = append(k.ShortNames, n.Singular)
		}
		out = append(out, k)
		return nil
	})
	if err != nil {
		return nil, &rbac.ManifestError{File: name, Line: line, Err: err}
	}
	return out, nil
}
