package lint

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
	corev1 "k8s.io/api/core/v1"
	"mvdan.cc/sh/v3/syntax"
)

// Args are a script's positional parameters. A word may be partly unknown
// (--args '--kube-node-ref $NODE'): branches on it are then possible.
type Args struct {
	words []text
}

// ArgsFromArgv takes the arguments as a process receives them.
func ArgsFromArgv(argv []string) *Args {
	a := &Args{words: make([]text, len(argv))}
	for i, s := range argv {
		a.words[i] = lit(s)
	}
	return a
}

// ParseArgs splits a command line with shell quoting rules. $VAR and $(cmd)
// stay unknown.
func ParseArgs(line string) (*Args, error) {
	var words []*syntax.Word
	for w, err := range syntax.NewParser(syntax.Variant(syntax.LangBash)).WordsSeq(strings.NewReader(line)) {
		if err != nil {
			var pe syntax.ParseError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("parse --args: column %d: %s", pe.Pos.Col(), pe.Text)
			}
			return nil, fmt.Errorf("parse --args: %w", err)
		}
		words = append(words, w)
	}
	in := newInterp("--args", &Options{})
	st := newState()
	alts, _ := in.expandFields(st, words, ioctx{})
	return &Args{words: alts[0]}, nil
}

// Strings renders the arguments, unknown parts as placeholders.
func (a *Args) Strings() []string {
	out := make([]string, len(a.words))
	for i, w := range a.words {
		out[i] = w.String()
	}
	return out
}

// ScriptArgv returns the arguments a container command passes to script:
// the words after the first one whose base name is the script's (or, when
// none is, after the first *.sh word). A `bash -c "..."` string is split
// with shell rules first. ok is false when argv does not run a script.
func ScriptArgv(argv []string, script string) ([]string, bool) {
	base := path.Base(script)
	for pass := 0; pass < 2; pass++ {
		for i, w := range argv {
			b := path.Base(w)
			if pass == 0 && b == base || pass == 1 && strings.HasSuffix(b, ".sh") {
				return argv[i+1:], true
			}
		}
	}
	for i, w := range argv {
		if w == "-c" && i+1 < len(argv) {
			a, err := ParseArgs(argv[i+1])
			if err != nil {
				return nil, false
			}
			return ScriptArgv(a.Strings(), script)
		}
	}
	return nil, false
}

// ContainerArgv finds a container (init containers first) in a Pod, or in
// the pod template of a workload, and returns its command followed by its
// args. name is used in errors, which are *rbac.ManifestError for malformed
// input.
func ContainerArgv(name string, data []byte, container string) ([]string, error) {
	var names, argv []string
	found := false
	line, err := eachObject(data, "expected a Pod or a workload object", func(js []byte) error {
		spec, err := podSpec(js)
		if err != nil || found {
			return err
		}
		argv, found = containerArgv(spec, container)
		for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
			names = append(names, c.Name)
		}
		return nil
	})
	switch {
	case found:
		return argv, nil
	case err != nil:
		return nil, &rbac.ManifestError{File: name, Line: line, Err: err}
	}
	return nil, fmt.Errorf("%s: no container %q (containers: %s)", name, container, strings.Join(names, ", "))
}

func podSpec(js []byte) (corev1.PodSpec, error) {
	var obj struct {
		Kind string `json:"kind"`
		Spec struct {
			corev1.PodSpec
			Template *struct {
				Spec corev1.PodSpec `json:"spec"`
			} `json:"template"`
			JobTemplate *struct {
				Spec struct {
					Template struct {
						Spec corev1.PodSpec `json:"spec"`
					} `json:"template"`
				} `json:"spec"`
			} `json:"jobTemplate"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(js, &obj); err != nil {
		return corev1.PodSpec{}, fmt.Errorf("decode %s: %w", obj.Kind, err)
	}
	switch {
	case obj.Spec.Template != nil:
		return obj.Spec.Template.Spec, nil
	case obj.Spec.JobTemplate != nil:
		return obj.Spec.JobTemplate.Spec.Template.Spec, nil
	}
	return obj.Spec.PodSpec, nil
}
