// Package audiences computes who belongs to each audience on a schedule,
// keeps the last complete result of every audience, and exports it as CSV
// or JSON. It reads events and identities that the resolver stored and
// knows nothing of HTTP.
package audiences

import (
	_ "embed"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"

	"github.com/knit-cdp/knit/resolver"
)

//go:embed builtin.yaml
var builtinYAML []byte

// DefaultSchedule is when an audience is computed unless its definition
// says otherwise: every 15 minutes.
const DefaultSchedule = "*/15 * * * *"

// Definition describes one audience: who belongs (Condition), what each
// member carries (the attributes its leaves name), when it is computed and
// where its changes go.
type Definition struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Schedule    string `yaml:"schedule"`
	// Timezone is the IANA zone the schedule reads in (UTC when empty); a
	// schedule may also start with CRON_TZ=Zone itself.
	Timezone string `yaml:"timezone"`
	// IncludeAnonymous admits profiles with neither a user_id nor an email;
	// by default members need one of them.
	IncludeAnonymous bool `yaml:"include_anonymous"`
	// RequireEmail keeps only profiles with an email identifier, for
	// audiences that feed email tools. Nil means false.
	RequireEmail *bool `yaml:"require_email"`

	// Destinations receive the audience's entries and exits.
	Destinations []Destination `yaml:"destinations"`

	Condition *Condition `yaml:"condition"`
}

// Attributes names the per-member attributes the audience yields, in the
// order exports list them: leaf by leaf as the definition reads.
func (d Definition) Attributes() []string {
	var names []string
	d.Condition.walk(func(c *Condition) {
		for _, a := range c.Attributes {
			names = append(names, a.Name)
		}
	})
	return names
}

// Audiences names the other audiences the definition's conditions read.
func (d Definition) Audiences() []string {
	var names []string
	d.Condition.walk(func(c *Condition) {
		if c.InAudience != "" {
			names = append(names, c.InAudience)
		}
	})
	return names
}

// NeedsEmail reports whether members must have an email identifier.
func (d Definition) NeedsEmail() bool {
	return d.RequireEmail != nil && *d.RequireEmail
}

// validate lists every problem with one definition, each naming its key.
func (d Definition) validate(index int) []string {
	prefix := fmt.Sprintf("audiences[%d]", index)
	if d.Name != "" {
		prefix = "audiences." + d.Name
	}

	var problems []string
	if !validName(d.Name) {
		problems = append(problems, fmt.Sprintf("%s.name %q must be lower-case "+
			"letters, digits, underscores and hyphens", prefix, d.Name))
	}
	if d.Timezone != "" && strings.Contains(d.Schedule, "TZ=") {
		problems = append(problems, fmt.Sprintf("%s: give the time zone either as "+
			"timezone or as CRON_TZ= in the schedule, not both", prefix))
	}
	if zone, spec, _ := strings.Cut(d.scheduleSpec(), " "); strings.Contains(zone, "TZ=") &&
		strings.TrimSpace(spec) == "" {
		// The cron parser panics on a zone without a schedule.
		problems = append(problems, fmt.Sprintf("%s.schedule %q names a time zone but "+
			"no times, such as CRON_TZ=Europe/Paris 0 9 * * *", prefix, d.Schedule))
	} else if _, err := time.LoadLocation(d.Timezone); err != nil {
		problems = append(problems, fmt.Sprintf("%s.timezone %q is not a time zone "+
			"such as Europe/Paris", prefix, d.Timezone))
	} else if _, err := cron.ParseStandard(d.scheduleSpec()); err != nil {
		problems = append(problems, fmt.Sprintf("%s.schedule %q: %v",
			prefix, d.Schedule, err))
	}

	for i, dest := range d.Destinations {
		key := fmt.Sprintf("%s.destinations[%d]", prefix, i)
		if u, err := url.Parse(dest.URL); err != nil || u.Host == "" ||
			(u.Scheme != "http" && u.Scheme != "https") {
			problems = append(problems, fmt.Sprintf("%s.url %q must be an http:// or "+
				"https:// URL with a host", key, dest.URL))
		}
		if dest.GiveUpAfter < 0 {
			problems = append(problems, key+".give_up_after must not be negative")
		}
		if dest.Style != "" && dest.Style != "identify" && dest.Style != "track" {
			problems = append(problems, fmt.Sprintf("%s.style %q is not identify or track",
				key, dest.Style))
		}
	}

	if d.Condition == nil {
		return append(problems, prefix+".condition is required: who belongs, "+
			"such as performed: {event: Order Completed}")
	}
	problems = append(problems, d.Condition.validate(prefix+".condition", false)...)
	problems = append(problems, d.validateAttributeNames(prefix)...)
	if leaves := d.leafCount(); leaves > maxLeaves {
		problems = append(problems, fmt.Sprintf("%s.condition combines %d conditions; "+
			"at most %d fit in one query", prefix, leaves, maxLeaves))
	}
	if len(problems) == 0 {
		// Whatever the checks above miss, compiling finds before a run does.
		if _, err := compile(d, time.Unix(0, 0), sqliteDialect{}); err != nil {
			problems = append(problems, fmt.Sprintf("%s.condition: %v", prefix, err))
		}
	}
	return problems
}

// maxLeaves bounds the leaf conditions of one audience: each is a table of
// the audience's query, and SQLite joins at most 64.
const maxLeaves = 60

// leafCount counts the leaf conditions: every node but and, or and not.
func (d Definition) leafCount() int {
	n := 0
	d.Condition.walk(func(c *Condition) {
		if c.And == nil && c.Or == nil && c.Not == nil {
			n++
		}
	})
	return n
}

// exportColumns are the columns CSV layouts write besides attributes; an
// attribute may not take their names.
var exportColumns = []string{"profile_id", "email", "user_id", "external_ids",
	"traits", "attributes"}

// validateAttributeNames refuses two attributes of one name.
func (d Definition) validateAttributeNames(prefix string) []string {
	var problems []string
	seen := map[string]bool{}
	for _, name := range d.Attributes() {
		if contains(exportColumns, name) {
			problems = append(problems, fmt.Sprintf("%s: attribute %q is the name of "+
				"an export column (%s); choose another", prefix, name,
				strings.Join(exportColumns, ", ")))
		}
		if seen[name] {
			problems = append(problems, fmt.Sprintf("%s: attribute %q is named twice",
				prefix, name))
		}
		seen[name] = true
	}
	return problems
}

func (d Definition) scheduleSpec() string {
	spec := strings.TrimSpace(d.Schedule)
	if spec == "" {
		spec = DefaultSchedule
	}
	if d.Timezone != "" && !strings.HasPrefix(spec, "CRON_TZ=") && !strings.HasPrefix(spec, "TZ=") {
		spec = "CRON_TZ=" + d.Timezone + " " + spec
	}
	return spec
}

// NextRun returns when the schedule next fires after t, in t's instant.
func (d Definition) NextRun(t time.Time) (time.Time, error) {
	schedule, err := cron.ParseStandard(d.scheduleSpec())
	if err != nil {
		return time.Time{}, fmt.Errorf("schedule of %s: %w", d.Name, err)
	}
	return schedule.Next(t), nil
}

func validName(name string) bool {
	if name == "" || len(name) > 100 {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Validate checks a set of definitions and reports every problem at once.
func Validate(defs []Definition) error {
	var problems []string
	seen := map[string]bool{}
	for i, d := range defs {
		problems = append(problems, d.validate(i)...)
		if seen[d.Name] {
			problems = append(problems, fmt.Sprintf("audiences: %q is defined twice", d.Name))
		}
		seen[d.Name] = true
	}
	problems = append(problems, checkReferences(defs)...)
	if len(problems) > 0 {
		return resolver.Errorf(resolver.EInvalid, "%s", strings.Join(problems, "; "))
	}
	return nil
}

// Builtins returns the audiences knit ships with, read from the embedded
// builtin.yaml. A configuration may override any of their settings by
// defining an audience of the same name.
func Builtins() []Definition {
	var file struct {
		Audiences []Definition `yaml:"audiences"`
	}
	if err := yaml.Unmarshal(builtinYAML, &file); err != nil {
		// builtin.yaml is compiled in and covered by tests.
		panic(fmt.Sprintf("audiences: embedded builtin.yaml: %v", err))
	}
	return file.Audiences
}

// WithBuiltins returns the built-in audiences with configured ones laid
// over them: a configured audience replaces a built-in of the same name, and
// new names are added. The result is sorted by name.
func WithBuiltins(configured []Definition) []Definition {
	byName := map[string]Definition{}
	for _, d := range Builtins() {
		byName[d.Name] = d
	}
	for _, d := range configured {
		byName[d.Name] = d
	}

	out := make([]Definition, 0, len(byName))
	for _, d := range byName {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
