package rbac

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// ManifestError is a manifest dpfdoctor cannot read: malformed YAML or JSON,
// or an RBAC object of the wrong shape. Line is 1-based.
type ManifestError struct {
	File string
	Line int
	Err  error
}

func (e *ManifestError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }
func (e *ManifestError) Unwrap() error { return e.Err }

// LoadManifests reads RBAC objects from files and directories. Directories
// are walked recursively for *.yaml, *.yml and *.json files; a file named
// explicitly is read whatever its extension. Every file may hold a
// multi-document stream (Helm or kustomize output included) and `kind: List`
// objects; kinds other than the four RBAC kinds are ignored.
func LoadManifests(paths ...string) (*Set, error) {
	s := &Set{}
	for _, p := range paths {
		files, err := ManifestFiles(p)
		if err != nil {
			return nil, fmt.Errorf("read RBAC manifests: %w", err)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("read RBAC manifests: %w", err)
			}
			one, err := ParseManifests(f, data)
			if err != nil {
				return nil, err
			}
			s.Merge(one)
		}
	}
	return s, nil
}

// ManifestFiles lists the manifest files a path names: the file itself, or
// every *.yaml, *.yml and *.json below a directory, in walk order.
func ManifestFiles(path string) ([]string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".yaml", ".yml", ".json":
			if !d.IsDir() {
				files = append(files, p)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk %s: %w", path, err)
	}
	return files, nil
}

// ParseManifests reads RBAC objects from one YAML or JSON stream; name is
// used in errors.
func ParseManifests(name string, data []byte) (*Set, error) {
	s := &Set{}
	for _, d := range SplitDocuments(data) {
		js, line, err := d.JSON()
		if err == nil {
			err = decodeObject(js, s, 0)
		}
		if err != nil {
			return nil, &ManifestError{File: name, Line: line, Err: err}
		}
	}
	return s, nil
}

// Document is one document of a YAML stream and the 1-based line it starts on.
type Document struct {
	Line int
	Data []byte
}

// SplitDocuments cuts a YAML stream at its "---" separators ("..." ends a
// document too), keeping each document's first line number so errors can
// point into the original file.
func SplitDocuments(data []byte) []Document {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var docs []Document
	start, off, docLine := 0, 0, 1
	for i, l := range bytes.SplitAfter(data, []byte("\n")) {
		if isSeparator(bytes.TrimSuffix(l, []byte("\n"))) {
			docs = append(docs, Document{Line: docLine, Data: data[start:off]})
			start, docLine = off+len(l), i+2
		}
		off += len(l)
	}
	return append(docs, Document{Line: docLine, Data: data[start:]})
}

func isSeparator(line []byte) bool {
	line = bytes.TrimRight(line, " \t\r")
	if bytes.Equal(line, []byte("...")) {
		return true
	}
	if !bytes.HasPrefix(line, []byte("---")) {
		return false
	}
	return len(line) == 3 || line[3] == ' ' || line[3] == '\t' // "--- # comment"
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// JSON converts the document to JSON. line is where an error points: the
// line the YAML parser names, or else the document's first content line.
// The YAML library has panicked on hostile input in the past; a panic
// becomes an error here, never a crash.
func (d Document) JSON() (js []byte, line int, err error) {
	line = d.Line + contentOffset(d.Data)
	defer func() {
		if r := recover(); r != nil {
			js, err = nil, fmt.Errorf("malformed YAML: %v", r)
		}
	}()
	js, err = yaml.YAMLToJSON(d.Data)
	if err != nil {
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			if n, convErr := strconv.Atoi(m[1]); convErr == nil && n > 0 {
				line = d.Line + n - 1
			}
		}
		return nil, line, err
	}
	return js, line, nil
}

// contentOffset is the number of lines before the first line that is not
// blank or a comment.
func contentOffset(data []byte) int {
	for n, l := range bytes.Split(data, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			return n
		}
	}
	return 0
}

const maxListDepth = 8

type header struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Items      []json.RawMessage `json:"items"`
}

func decodeObject(js []byte, s *Set, depth int) error {
	js = bytes.TrimSpace(js)
	if len(js) == 0 || bytes.Equal(js, []byte("null")) {
		return nil
	}
	if depth > maxListDepth {
		return errors.New("lists nested too deeply")
	}
	switch js[0] {
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(js, &items); err != nil {
			return fmt.Errorf("decode list: %w", err)
		}
		return decodeItems(items, s, depth)
	case '{':
	default:
		return fmt.Errorf("expected a Kubernetes object (a mapping), got %s", preview(js))
	}
	var h header
	if err := json.Unmarshal(js, &h); err != nil {
		return fmt.Errorf("decode object header: %w", err)
	}
	if h.Items != nil && strings.HasSuffix(h.Kind, "List") {
		return decodeItems(h.Items, s, depth)
	}
	group, _, _ := strings.Cut(h.APIVersion, "/")
	if group != rbacv1.GroupName {
		return nil
	}
	obj, ok := NewObject(h.Kind)
	if !ok {
		return nil
	}
	// Strictly: an unknown field is an error.
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return fmt.Errorf("decode %s: %w", h.Kind, err)
	}
	if crb, ok := obj.(*rbacv1.ClusterRoleBinding); ok {
		// The API server refuses it (a RoleBinding's namespace stands in
		// only for a RoleBinding's subjects), so it would grant nothing.
		for i, sub := range crb.Subjects {
			if sub.Kind == rbacv1.ServiceAccountKind && sub.Namespace == "" {
				return fmt.Errorf("ClusterRoleBinding %s: subjects[%d]: a ServiceAccount subject needs a namespace (the API server refuses it without one)", crb.Name, i)
			}
		}
	}
	return s.Add(obj)
}

func decodeItems(items []json.RawMessage, s *Set, depth int) error {
	for i, it := range items {
		if err := decodeObject(it, s, depth+1); err != nil {
			return fmt.Errorf("item %d: %w", i, err)
		}
	}
	return nil
}

func preview(b []byte) string {
	const max = 40
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}
