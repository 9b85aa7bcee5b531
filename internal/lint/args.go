package lint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
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
	alts, _ := newInterp("--args", &Options{}).expandFields(newState(), words, ioctx{})
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
	i := slices.IndexFunc(argv, func(w string) bool { return path.Base(w) == path.Base(script) })
	if i < 0 {
		i = slices.IndexFunc(argv, func(w string) bool { return strings.HasSuffix(path.Base(w), ".sh") })
	}
	if i >= 0 {
		return argv[i+1:], true
	}
	if i := slices.Index(argv, "-c"); i >= 0 && i+1 < len(argv) {
		if a, err := ParseArgs(argv[i+1]); err == nil {
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
	if len(names) == 0 {
		return nil, fmt.Errorf("%s holds no Pod or workload with containers", name)
	}
	return nil, fmt.Errorf("%s: no container %q (containers: %s)", name, container, strings.Join(names, ", "))
}

func podSpec(js []byte) (corev1.PodSpec, error) {
	var obj struct {
		Kind string `json:"kind"`
		Spec struct {
			corev1.PodSpec
			Template    *corev1.PodTemplateSpec  `json:"template"`
			JobTemplate *batchv1.JobTemplateSpec `json:"jobTemplate"`
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

// FromCluster is the only part of lint that talks to a cluster: it lists
// the RBAC that applies in namespace (its Roles and RoleBindings, every
// ClusterRole and ClusterRoleBinding) and the command line of the dms-init
// container of the first pod (by name) matching podLabelSelector there.
// argv is nil when no such pod or container exists. Errors are the client's,
// wrapped; the caller maps them to exit codes.
func FromCluster(ctx context.Context, c kubernetes.Interface, namespace, podLabelSelector string) (*rbac.Set, []string, error) {
	set := &rbac.Set{}
	roles, err := c.RbacV1().Roles(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("list Roles in %s: %w", namespace, err)
	}
	set.Roles = roles.Items
	rbs, err := c.RbacV1().RoleBindings(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("list RoleBindings in %s: %w", namespace, err)
	}
	set.RoleBindings = rbs.Items
	crs, err := c.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("list ClusterRoles: %w", err)
	}
	set.ClusterRoles = crs.Items
	crbs, err := c.RbacV1().ClusterRoleBindings().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("list ClusterRoleBindings: %w", err)
	}
	set.ClusterRoleBindings = crbs.Items

	pods, err := c.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: podLabelSelector})
	if err != nil {
		return nil, nil, fmt.Errorf("list pods %q in %s: %w", podLabelSelector, namespace, err)
	}
	items := pods.Items
	sort.Slice(items, func(i, j int) bool { return items[i].Name < items[j].Name })
	for _, p := range items {
		if argv, ok := containerArgv(p.Spec, dpf.ContainerDMSInit); ok {
			return set, argv, nil
		}
	}
	return set, nil, nil
}

func containerArgv(spec corev1.PodSpec, name string) ([]string, bool) {
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		if c.Name == name {
			return slices.Concat(c.Command, c.Args), true
		}
	}
	return nil, false
}
