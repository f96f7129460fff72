package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/knit-cdp/knit/audiences"
	"github.com/knit-cdp/knit/resolver"
)

// fileConfig is the YAML configuration file: identity rules and audiences.
type fileConfig struct {
	Identity  identityConfig         `yaml:"identity"`
	Audiences []audiences.Definition `yaml:"audiences"`
}

// identityConfig overrides Segment's default identity rules.
type identityConfig struct {
	Types          map[string]typeConfig `yaml:"types"`
	Limits         map[string]int        `yaml:"limits"` // shorthand for types.X.limit
	DefaultLimit   *int                  `yaml:"default_limit"`
	Priority       []string              `yaml:"priority"`
	Blocked        []string              `yaml:"blocked"`
	BlockedValues  []string              `yaml:"blocked_values"` // exact values only
	AliasMerges    *bool                 `yaml:"alias_merges"`
	MaxMerges      *int                  `yaml:"max_merges"`
	MaxIdentifiers *int                  `yaml:"max_identifiers"`
}

// typeConfig is the rule of one identifier type. keys makes it a custom
// type read from those trait and property keys.
type typeConfig struct {
	Limit      *int     `yaml:"limit"`
	Frequency  string   `yaml:"frequency"`
	Blocked    []string `yaml:"blocked"`
	Keys       []string `yaml:"keys"`
	Normaliser string   `yaml:"normaliser"`
}

// settings is everything knit reads from the configuration file.
type settings struct {
	Rules     resolver.Rules
	Audiences []audiences.Definition
}

// loadSettings reads the YAML file at path, or returns the built-in
// defaults when path is "". Every problem is reported at once, each naming
// its key.
func loadSettings(path string) (settings, error) {
	out := settings{Rules: resolver.DefaultRules(), Audiences: audiences.WithBuiltins(nil)}
	if path == "" {
		return out, nil
	}

	data, err := os.ReadFile(path)
	if err != nil {
		return out, fmt.Errorf("read config: %w", err)
	}
	// A strict pass names unknown keys; the second lays each audience over
	// the built-in of the same name, so an override needs only what changes.
	var file fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil && !errors.Is(err, io.EOF) {
		return out, fmt.Errorf("config %s: %w", path, plainYAMLError(err))
	}
	configured, err := overlayAudiences(data)
	if err != nil {
		return out, fmt.Errorf("config %s: %w", path, err)
	}

	var problems []string
	out.Rules, problems = file.Identity.apply(out.Rules)
	out.Audiences = audiences.WithBuiltins(configured)
	for _, err := range []error{out.Rules.Validate(), audiences.Validate(out.Audiences)} {
		if err != nil {
			problems = append(problems, strings.Split(resolver.ErrorMessage(err), "; ")...)
		}
	}
	if len(problems) > 0 {
		return out, fmt.Errorf("config %s has problems:\n  - %s", path,
			strings.Join(problems, "\n  - "))
	}
	return out, nil
}

// plainYAMLError rewrites the YAML decoder's word for a misspelt key,
// which names knit's Go types ("field colour not found in type
// audiences.Definition"), in the file's own terms: `unknown key
// "colour"`, still after its line number. Other errors pass unchanged.
func plainYAMLError(err error) error {
	var typeErr *yaml.TypeError
	if !errors.As(err, &typeErr) {
		return err
	}
	unknownKey := regexp.MustCompile(`field (\S+) not found in type \S+`)
	plain := make([]string, len(typeErr.Errors))
	for i, line := range typeErr.Errors {
		plain[i] = unknownKey.ReplaceAllString(line, `unknown key "$1"`)
	}
	return errors.New(strings.Join(plain, "; "))
}

// overlayAudiences decodes the file's audiences, each on top of the
// built-in audience of the same name when there is one: the keys given
// replace the built-in's, and the others are kept.
func overlayAudiences(data []byte) ([]audiences.Definition, error) {
	var file struct {
		Audiences []yaml.Node `yaml:"audiences"`
	}
	if err := yaml.Unmarshal(data, &file); err != nil {
		return nil, err
	}

	builtins := map[string]audiences.Definition{}
	for _, d := range audiences.Builtins() {
		builtins[d.Name] = d
	}
	var out []audiences.Definition
	seen := map[string]int{}
	for _, node := range file.Audiences {
		var named struct {
			Name      string `yaml:"name"`
			Condition any    `yaml:"condition"`
		}
		if err := node.Decode(&named); err != nil {
			return nil, err
		}
		if line, twice := seen[named.Name]; twice {
			return nil, fmt.Errorf("line %d: audience %q is already defined on line %d",
				node.Line, named.Name, line)
		}
		seen[named.Name] = node.Line
		def := builtins[named.Name] // a fresh copy: Builtins parses anew
		if named.Condition != nil {
			// A condition given replaces the built-in's whole, so that a
			// new kind of condition is not mixed with the old one.
			def.Condition = nil
		}
		if err := node.Decode(&def); err != nil {
			return nil, err
		}
		out = append(out, def)
	}
	return out, nil
}

// apply lays the configuration over rules and lists the problems it finds
// on the way (frequencies and patterns), each naming its key.
func (c identityConfig) apply(rules resolver.Rules) (resolver.Rules, []string) {
	var problems []string
	for kind, limit := range c.Limits {
		rules.Limits[strings.ToLower(kind)] = limit
	}
	seen := map[string]string{}
	for _, name := range sortedNames(c.Types) {
		kind := strings.ToLower(name)
		if other, twice := seen[kind]; twice {
			problems = append(problems, fmt.Sprintf("identity.types names %q and %q, "+
				"which are one type", other, name))
		}
		seen[kind] = name
		if _, both := c.Limits[kind]; both && c.Types[name].Limit != nil {
			problems = append(problems, fmt.Sprintf("identity.limits.%s and "+
				"identity.types.%s.limit are both set; keep one", kind, name))
		}
		problems = append(problems, applyType(&rules, kind, c.Types[name])...)
	}
	if c.DefaultLimit != nil {
		rules.DefaultLimit = *c.DefaultLimit
	}
	if len(c.Priority) > 0 {
		rules.Priority = c.Priority
	}
	rules.BlockedValues = append(rules.BlockedValues, c.BlockedValues...)
	values, patterns, bad := splitBlocked("identity.blocked", c.Blocked)
	rules.BlockedValues = append(rules.BlockedValues, values...)
	rules.BlockedPatterns = append(rules.BlockedPatterns, patterns...)
	problems = append(problems, bad...)

	setIf(&rules.AliasMerges, c.AliasMerges)
	setIf(&rules.MaxMerges, c.MaxMerges)
	setIf(&rules.MaxIdentifiers, c.MaxIdentifiers)
	return rules, problems
}

func applyType(rules *resolver.Rules, kind string, t typeConfig) []string {
	var problems []string
	key := "identity.types." + kind
	if t.Limit != nil {
		rules.Limits[kind] = *t.Limit
	}
	if t.Frequency != "" {
		window, ok := resolver.Frequency(t.Frequency)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s.frequency %q is not one of "+
				"ever, annually, monthly, weekly, daily", key, t.Frequency))
		}
		rules.Windows[kind] = window
	}
	values, patterns, bad := splitBlocked(key+".blocked", t.Blocked)
	rules.BlockedByType[kind] = append(rules.BlockedByType[kind], values...)
	if len(patterns) > 0 {
		if rules.BlockedPatternsByType == nil {
			rules.BlockedPatternsByType = map[string][]*regexp.Regexp{}
		}
		rules.BlockedPatternsByType[kind] = append(rules.BlockedPatternsByType[kind], patterns...)
	}
	if len(t.Keys) > 0 || t.Normaliser != "" {
		rules.Custom = append(rules.Custom, resolver.CustomType{
			Type: kind, Keys: t.Keys, Normaliser: t.Normaliser,
		})
	}
	return append(problems, bad...)
}

// splitBlocked separates exact values from /regular expressions/ and names
// each expression that does not compile.
func splitBlocked(key string, entries []string) ([]string, []*regexp.Regexp, []string) {
	var values []string
	var patterns []*regexp.Regexp
	var problems []string
	for i, entry := range entries {
		body, isPattern := strings.CutPrefix(entry, "/")
		if body, isPattern = strings.CutSuffix(body, "/"); !isPattern || len(entry) < 2 {
			values = append(values, entry)
			continue
		}
		pattern, err := regexp.Compile(body)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s[%d] %q does not compile: %v",
				key, i, entry, err))
			continue
		}
		patterns = append(patterns, pattern)
	}
	return values, patterns, problems
}

func setIf[T any](dest *T, value *T) {
	if value != nil {
		*dest = *value
	}
}

// clock returns knit's clock: the real time, or, when start is set (the
// --clock flag), a clock that begins at start and then runs at real speed.
// Replays and tests use it to evaluate audiences at a chosen moment.
func clock(start string) (func() time.Time, error) {
	if start == "" {
		return time.Now, nil
	}
	at, ok := resolver.ParseTime(start)
	if !ok {
		return nil, fmt.Errorf("--clock %q is not an ISO-8601 time", start)
	}
	began := time.Now()
	return func() time.Time { return at.Add(time.Since(began)) }, nil
}

func sortedNames(types map[string]typeConfig) []string {
	names := make([]string, 0, len(types))
	for name := range types {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
