package lint

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"mvdan.cc/sh/v3/pattern"
	"sigs.k8s.io/yaml"
)

// ConfigFile is the configuration lint reads from the current directory
// when --config is not given.
const ConfigFile = ".dpfdoctor-lint.yaml"

// Config is a lint configuration file (docs/lint.md#suppressions).
type Config struct {
	Suppressions []Suppression `json:"suppressions"`
}

// Suppression accepts the denials of one rule at matching locations. Path
// and Call are shell globs in which * also matches "/"; empty matches any.
type Suppression struct {
	Code   string `json:"code"`
	Path   string `json:"path,omitempty"`
	Line   int    `json:"line,omitempty"`
	Call   string `json:"call,omitempty"`
	Reason string `json:"reason"`
}

// LoadConfig reads and checks a configuration file; unknown fields are
// errors, so a misspelt key does not silently suppress nothing.
func LoadConfig(file string) (*Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read lint config: %w", err)
	}
	var c Config
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	for i := range c.Suppressions {
		s := &c.Suppressions[i]
		bad := func(format string, a ...any) error {
			return fmt.Errorf("%s: suppressions[%d]: %s", file, i, fmt.Sprintf(format, a...))
		}
		if !slices.Contains([]string{RuleDenied, RulePossiblyDenied, RuleNotChecked}, s.Code) {
			return nil, bad("code %q: want %s, %s or %s", s.Code, RuleDenied, RulePossiblyDenied, RuleNotChecked)
		}
		if strings.TrimSpace(s.Reason) == "" {
			return nil, bad("reason is required")
		}
		if s.Line < 0 {
			return nil, bad("line %d: want a positive line number", s.Line)
		}
		for _, g := range []string{s.Path, s.Call} {
			if _, err := glob(g); err != nil {
				return nil, bad("glob %q: %v", g, err)
			}
		}
	}
	return &c, nil
}

// glob compiles a shell pattern that matches entire strings.
func glob(g string) (*regexp.Regexp, error) {
	expr, err := pattern.Regexp(g, pattern.EntireString)
	if err != nil {
		return nil, err
	}
	return regexp.Compile(expr)
}

func (s *Suppression) matches(code, file string, line int, call string) bool {
	path, err1 := glob(cmp.Or(s.Path, "*")) // "" matches anything
	c, err2 := glob(cmp.Or(s.Call, "*"))
	return s.Code == code && (s.Line == 0 || s.Line == line) && err1 == nil && err2 == nil &&
		path.MatchString(strings.TrimPrefix(filepath.ToSlash(file), "./")) && c.MatchString(call)
}

// suppressedBy returns the first suppression that matches, or nil.
func suppressedBy(ss []Suppression, code, file string, line int, call string) *Suppression {
	for i := range ss {
		if ss[i].matches(code, file, line, call) {
			return &ss[i]
		}
	}
	return nil
}
