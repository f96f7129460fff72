package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
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
	Limits        map[string]int `yaml:"limits"`
	DefaultLimit  *int           `yaml:"default_limit"`
	Priority      []string       `yaml:"priority"`
	BlockedValues []string       `yaml:"blocked_values"`
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
		return out, fmt.Errorf("config %s: %w", path, err)
	}
	configured, err := overlayAudiences(data)
	if err != nil {
		return out, fmt.Errorf("config %s: %w", path, err)
	}

	out.Rules = file.Identity.apply(out.Rules)
	out.Audiences = audiences.WithBuiltins(configured)
	problems := errors.Join(out.Rules.Validate(), audiences.Validate(out.Audiences))
	if problems != nil {
		return out, fmt.Errorf("config %s has problems:\n  - %s", path,
			strings.ReplaceAll(problems.Error(), "; ", "\n  - "))
	}
	return out, nil
}

// overlayAudiences decodes the file's audiences, each on top of the
// built-in audience of the same name when there is one.
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
	for _, node := range file.Audiences {
		var named struct {
			Name string `yaml:"name"`
		}
		if err := node.Decode(&named); err != nil {
			return nil, err
		}
		def := builtins[named.Name] // a fresh copy: Builtins parses anew
		if err := node.Decode(&def); err != nil {
			return nil, err
		}
		out = append(out, def)
	}
	return out, nil
}

func (c identityConfig) apply(rules resolver.Rules) resolver.Rules {
	for kind, limit := range c.Limits {
		rules.Limits[strings.ToLower(kind)] = limit
	}
	if c.DefaultLimit != nil {
		rules.DefaultLimit = *c.DefaultLimit
	}
	if len(c.Priority) > 0 {
		rules.Priority = c.Priority
	}
	rules.BlockedValues = append(rules.BlockedValues, c.BlockedValues...)
	return rules
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
