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

// Definition describes one audience. Exactly one of the rule blocks
// (AbandonedCart, DistanceSincePurchase) is set.
type Definition struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Schedule    string `yaml:"schedule"`
	// Timezone is the IANA zone the schedule reads in (UTC when empty); a
	// schedule may also start with CRON_TZ=Zone itself.
	Timezone string `yaml:"timezone"`
	// RequireEmail keeps only profiles with an email identifier, since the
	// result feeds email tools. Nil means true.
	RequireEmail *bool `yaml:"require_email"`

	// Destinations receive the audience's entries and exits.
	Destinations []Destination `yaml:"destinations"`

	AbandonedCart         *AbandonedCart         `yaml:"abandoned_cart"`
	DistanceSincePurchase *DistanceSincePurchase `yaml:"distance_since_purchase"`
}

// rule is what every kind of audience rule does: name the events it reads,
// decide membership for one profile, and name the attributes it yields.
type rule interface {
	events() []string
	evaluate(history []Event, now time.Time) (map[string]any, bool)
	attributes() []string
	validate(prefix string) []string
}

func (d Definition) rule() rule {
	switch {
	case d.AbandonedCart != nil:
		return d.AbandonedCart
	case d.DistanceSincePurchase != nil:
		return d.DistanceSincePurchase
	}
	return nil
}

// Attributes names the per-member attributes the audience yields, in the
// order exports list them.
func (d Definition) Attributes() []string {
	if r := d.rule(); r != nil {
		return r.attributes()
	}
	return nil
}

// NeedsEmail reports whether members must have an email identifier.
func (d Definition) NeedsEmail() bool {
	return d.RequireEmail == nil || *d.RequireEmail
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
			"letters, digits and underscores", prefix, d.Name))
	}
	if d.Timezone != "" && strings.Contains(d.Schedule, "TZ=") {
		problems = append(problems, fmt.Sprintf("%s: give the time zone either as "+
			"timezone or as CRON_TZ= in the schedule, not both", prefix))
	}
	if _, err := time.LoadLocation(d.Timezone); err != nil {
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

	rules := 0
	if d.AbandonedCart != nil {
		rules++
	}
	if d.DistanceSincePurchase != nil {
		rules++
	}
	if rules != 1 {
		problems = append(problems, fmt.Sprintf("%s needs exactly one rule: "+
			"abandoned_cart or distance_since_purchase", prefix))
		return problems
	}
	return append(problems, d.rule().validate(prefix)...)
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
