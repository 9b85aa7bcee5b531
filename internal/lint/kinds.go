package lint

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
)

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
