package audiences

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Condition is one node of an audience definition. Exactly one of its kinds
// is set: a combination (And, Or, Not) or a leaf (Performed, NotPerformed,
// ThenNot, Aggregate, Trait, InAudience). docs/audiences.md describes each.
type Condition struct {
	And []Condition `yaml:"and"`
	Or  []Condition `yaml:"or"`
	Not *Condition  `yaml:"not"`

	Performed    *Performed `yaml:"performed"`
	NotPerformed *Performed `yaml:"not_performed"`
	ThenNot      *Sequence  `yaml:"then_not"`
	Aggregate    *Aggregate `yaml:"aggregate"`
	Trait        *Filter    `yaml:"trait"`
	InAudience   string     `yaml:"in_audience"`

	// Attributes names what a leaf yields for each member, in export order:
	// attribute name -> source, such as "last_at" or "value".
	Attributes Attributes `yaml:"attributes"`
}

// Selector picks events: those named Event whose properties pass every
// filter in Where.
type Selector struct {
	Event string   `yaml:"event"`
	Where []Filter `yaml:"where"`
}

// Window limits events to a span before the evaluation time: Within the
// last D, or Between D1 and D2 ago (in either order). Neither set means all
// time.
type Window struct {
	Within  Duration   `yaml:"within"`
	Between []Duration `yaml:"between"`
}

// Counts compares how many times something happened; at most one is set,
// and none means "at least once".
type Counts struct {
	AtLeast *int64 `yaml:"at_least"`
	Exactly *int64 `yaml:"exactly"`
	AtMost  *int64 `yaml:"at_most"`
}

// Performed holds when a person did the selected event a number of times
// within the window.
type Performed struct {
	Selector `yaml:",inline"`
	Window   `yaml:",inline"`
	Counts   `yaml:",inline"`
}

// Sequence is "did First, then did not do any of NotFollowedBy": per value
// of First's key, the latest First event lies in the window and no
// follow-up event with the same key came at or after it (within Within of
// it, when set).
type Sequence struct {
	First         KeyedSelector   `yaml:"first"`
	NotFollowedBy []KeyedSelector `yaml:"not_followed_by"`
	Between       []Duration      `yaml:"between"`
	Within        Duration        `yaml:"within"`
}

// KeyedSelector is a Selector whose events are matched with others on the
// value at Key, such as a product id.
type KeyedSelector struct {
	Selector `yaml:",inline"`
	Key      Path `yaml:"key"`
}

// Aggregate computes Function over the numeric Property of the selected
// events, within the window or since the latest SinceLatest event, and
// compares the result.
type Aggregate struct {
	Selector    `yaml:",inline"`
	Window      `yaml:",inline"`
	Property    Path      `yaml:"property"`
	Function    string    `yaml:"function"`
	Units       *Units    `yaml:"units"`
	SinceLatest *Selector `yaml:"since_latest"`
	Compare     Compare   `yaml:",inline"`
	// Round is how many decimals the value attribute keeps (2 when unset).
	Round *int `yaml:"round"`
}

// Units converts each value before it is aggregated: the unit is read from
// Property, and a value whose unit is a key of Factors (compared without
// regard to case) is multiplied by its factor. Other values are kept.
type Units struct {
	Property Path               `yaml:"property"`
	Factors  map[string]float64 `yaml:"factors"`
}

// Compare bounds a number; every bound set must hold.
type Compare struct {
	GreaterThan *float64 `yaml:"greater_than"`
	AtLeast     *float64 `yaml:"at_least"`
	LessThan    *float64 `yaml:"less_than"`
	AtMost      *float64 `yaml:"at_most"`
}

// aggregateFunctions are the functions Aggregate.Function may name.
var aggregateFunctions = []string{"count", "sum", "avg", "min", "max", "distinct_count"}

// kinds lists which kinds of the node are set, by their YAML key.
func (c *Condition) kinds() []string {
	var set []string
	add := func(key string, present bool) {
		if present {
			set = append(set, key)
		}
	}
	add("and", c.And != nil)
	add("or", c.Or != nil)
	add("not", c.Not != nil)
	add("performed", c.Performed != nil)
	add("not_performed", c.NotPerformed != nil)
	add("then_not", c.ThenNot != nil)
	add("aggregate", c.Aggregate != nil)
	add("trait", c.Trait != nil)
	add("in_audience", c.InAudience != "")
	return set
}

const conditionKinds = "and, or, not, performed, not_performed, then_not, " +
	"aggregate, trait or in_audience"

// validate lists the problems of the node and its children, each naming
// its key under prefix. negated is true under a not, where attributes mean
// nothing.
func (c *Condition) validate(prefix string, negated bool) []string {
	kinds := c.kinds()
	if len(kinds) != 1 {
		return []string{fmt.Sprintf("%s needs exactly one of %s (found %d)",
			prefix, conditionKinds, len(kinds))}
	}
	kind := kinds[0]
	var problems []string
	if len(c.Attributes) > 0 {
		problems = append(problems, c.validateAttributes(prefix, kind, negated)...)
	}

	switch kind {
	case "and", "or":
		children := c.And
		if kind == "or" {
			children = c.Or
		}
		if len(children) == 0 {
			problems = append(problems, fmt.Sprintf("%s.%s needs at least one condition",
				prefix, kind))
		}
		for i := range children {
			key := fmt.Sprintf("%s.%s[%d]", prefix, kind, i)
			problems = append(problems, children[i].validate(key, negated)...)
		}
	case "not":
		problems = append(problems, c.Not.validate(prefix+".not", true)...)
	default:
		problems = append(problems, c.validateLeaf(prefix+"."+kind, kind)...)
	}
	return problems
}

func (c *Condition) validateLeaf(key, kind string) []string {
	switch kind {
	case "performed":
		return c.Performed.validate(key)
	case "not_performed":
		return c.NotPerformed.validateNot(key)
	case "then_not":
		return c.ThenNot.validate(key)
	case "aggregate":
		return c.Aggregate.validate(key)
	case "trait":
		return c.Trait.validateTrait(key)
	}
	if !validName(c.InAudience) {
		return []string{fmt.Sprintf("%s %q is not an audience name", key, c.InAudience)}
	}
	return nil
}

func (c *Condition) validateAttributes(prefix, kind string, negated bool) []string {
	if negated || kind == "not" || kind == "not_performed" {
		return []string{prefix + ".attributes: a condition that must not hold " +
			"has nothing to report; move attributes to a condition that holds"}
	}
	sources, ok := attributeSources[kind]
	if !ok {
		return []string{fmt.Sprintf("%s.attributes: a %s condition has no attributes; "+
			"put them on its leaves", prefix, kind)}
	}

	var problems []string
	for _, a := range c.Attributes {
		if !validName(a.Name) {
			problems = append(problems, fmt.Sprintf("%s.attributes: %q must be lower-case "+
				"letters, digits, underscores and hyphens", prefix, a.Name))
		}
		if !sources.allows(a.Source) {
			problems = append(problems, fmt.Sprintf("%s.attributes.%s: %q is not one of %s",
				prefix, a.Name, a.Source, sources))
		}
	}
	if kind == "aggregate" && c.Aggregate.SinceLatest == nil {
		for _, a := range c.Attributes {
			if strings.HasPrefix(a.Source, "anchor") {
				problems = append(problems, fmt.Sprintf("%s.attributes.%s: %s needs "+
					"aggregate.since_latest", prefix, a.Name, a.Source))
			}
		}
	}
	if kind == "then_not" && c.ThenNot.First.Key == "" {
		for _, a := range c.Attributes {
			if a.Source == "keys" {
				problems = append(problems, fmt.Sprintf("%s.attributes.%s: keys needs "+
					"then_not.first.key", prefix, a.Name))
			}
		}
	}
	return problems
}

func (s Selector) validate(key string) []string {
	var problems []string
	if strings.TrimSpace(s.Event) == "" {
		problems = append(problems, key+".event is required")
	}
	for i, f := range s.Where {
		problems = append(problems, f.validateProperty(fmt.Sprintf("%s.where[%d]", key, i))...)
	}
	return problems
}

func (w Window) validate(key string) []string {
	if w.Within < 0 {
		return []string{key + ".within must not be negative"}
	}
	if w.Within != 0 && w.Between != nil {
		return []string{key + ": give within or between, not both"}
	}
	return validateBetween(key, w.Between)
}

func validateBetween(key string, between []Duration) []string {
	if between == nil {
		return nil
	}
	if len(between) != 2 || between[0] < 0 || between[1] < 0 ||
		between[0] == between[1] {
		return []string{key + ".between needs two different durations ago, " +
			"such as [7d, 1h]"}
	}
	return nil
}

func (c Counts) validate(key string) []string {
	set := 0
	for _, n := range []*int64{c.AtLeast, c.Exactly, c.AtMost} {
		if n != nil {
			set++
			if *n < 0 {
				return []string{key + ": a count must not be negative"}
			}
		}
	}
	if set > 1 {
		return []string{key + ": give one of at_least, exactly or at_most"}
	}
	return nil
}

func (p *Performed) validate(key string) []string {
	problems := p.Selector.validate(key)
	problems = append(problems, p.Window.validate(key)...)
	return append(problems, p.Counts.validate(key)...)
}

// validateNot checks a not_performed leaf, which takes no count.
func (p *Performed) validateNot(key string) []string {
	problems := p.Selector.validate(key)
	problems = append(problems, p.Window.validate(key)...)
	if p.AtLeast != nil || p.Exactly != nil || p.AtMost != nil {
		problems = append(problems, key+" takes no count; use performed with "+
			"at_most or exactly")
	}
	return problems
}

func (s *Sequence) validate(key string) []string {
	problems := s.First.validate(key + ".first")
	if len(s.NotFollowedBy) == 0 {
		problems = append(problems, key+".not_followed_by needs at least one event")
	}
	for i, next := range s.NotFollowedBy {
		nextKey := fmt.Sprintf("%s.not_followed_by[%d]", key, i)
		problems = append(problems, next.validate(nextKey)...)
		if (next.Key == "") != (s.First.Key == "") {
			problems = append(problems, nextKey+".key must be given exactly when "+
				"first.key is")
		}
	}
	if s.Within < 0 {
		problems = append(problems, key+".within must not be negative")
	}
	return append(problems, validateBetween(key, s.Between)...)
}

func (k KeyedSelector) validate(key string) []string {
	problems := k.Selector.validate(key)
	if k.Key != "" {
		if err := k.Key.check(); err != nil {
			problems = append(problems, fmt.Sprintf("%s.key: %v", key, err))
		}
	}
	return problems
}

func (a *Aggregate) validate(key string) []string {
	problems := a.Selector.validate(key)
	problems = append(problems, a.Window.validate(key)...)
	if !contains(aggregateFunctions, a.Function) {
		problems = append(problems, fmt.Sprintf("%s.function %q is not one of %s",
			key, a.Function, strings.Join(aggregateFunctions, ", ")))
	}
	problems = append(problems, a.validateProperty(key)...)
	if a.SinceLatest != nil {
		if a.Within != 0 || a.Between != nil {
			problems = append(problems, key+": give since_latest or a window, not both")
		}
		problems = append(problems, a.SinceLatest.validate(key+".since_latest")...)
	}
	if a.Compare.empty() {
		problems = append(problems, key+" needs a bound: greater_than, at_least, "+
			"less_than or at_most")
	}
	problems = append(problems, a.Compare.validate(key)...)
	if a.Round != nil && (*a.Round < 0 || *a.Round > 9) {
		problems = append(problems, key+".round must be between 0 and 9")
	}
	return problems
}

func (a *Aggregate) validateProperty(key string) []string {
	if a.Function == "count" {
		if a.Property != "" || a.Units != nil {
			return []string{key + ": count counts events and takes no property or units"}
		}
		return nil
	}
	if a.Function == "distinct_count" && a.Units != nil {
		return []string{key + ": distinct_count counts values as written and takes no units"}
	}
	if a.Property == "" {
		return []string{key + ".property is required for " + a.Function}
	}
	var problems []string
	if err := a.Property.check(); err != nil {
		problems = append(problems, fmt.Sprintf("%s.property: %v", key, err))
	}
	if a.Units != nil {
		if err := a.Units.Property.check(); err != nil || a.Units.Property == "" {
			problems = append(problems, key+".units.property names where the unit is, "+
				"such as distance_unit")
		}
		if a.Property.arrayKey() != "" && a.Units.Property.arrayKey() != "" &&
			a.Property.arrayKey() != a.Units.Property.arrayKey() {
			problems = append(problems, fmt.Sprintf("%s: property %q and units.property "+
				"%q go through different arrays; a value and its unit must come from one "+
				"element", key, a.Property, a.Units.Property))
		}
		if len(a.Units.Factors) == 0 {
			problems = append(problems, key+".units.factors needs at least one unit, "+
				"such as km: 0.621371")
		}
	}
	return problems
}

// validate refuses bounds that are not finite numbers.
func (c Compare) validate(key string) []string {
	var problems []string
	for name, bound := range map[string]*float64{"greater_than": c.GreaterThan,
		"at_least": c.AtLeast, "less_than": c.LessThan, "at_most": c.AtMost} {
		if bound != nil && (math.IsNaN(*bound) || math.IsInf(*bound, 0)) {
			problems = append(problems, fmt.Sprintf("%s.%s must be a finite number", key, name))
		}
	}
	sort.Strings(problems)
	return problems
}

func (c Compare) empty() bool {
	return c.GreaterThan == nil && c.AtLeast == nil && c.LessThan == nil && c.AtMost == nil
}

func contains(list []string, s string) bool {
	for _, item := range list {
		if item == s {
			return true
		}
	}
	return false
}

// walk visits the node and every node under it, parents first.
func (c *Condition) walk(visit func(*Condition)) {
	c.walkKeyed("", func(_ string, node *Condition) { visit(node) })
}

// walkKeyed is walk that also tells each node's key under prefix, such as
// prefix.and[1].not.
func (c *Condition) walkKeyed(prefix string, visit func(key string, node *Condition)) {
	if c == nil {
		return
	}
	visit(prefix, c)
	for i := range c.And {
		c.And[i].walkKeyed(fmt.Sprintf("%s.and[%d]", prefix, i), visit)
	}
	for i := range c.Or {
		c.Or[i].walkKeyed(fmt.Sprintf("%s.or[%d]", prefix, i), visit)
	}
	c.Not.walkKeyed(prefix+".not", visit)
}

// checkReferences refuses in_audience conditions that name an audience
// not defined, and chains of them that lead back to where they started.
func checkReferences(defs []Definition) []string {
	byName := map[string]Definition{}
	for _, d := range defs {
		byName[d.Name] = d
	}

	var problems []string
	for _, d := range defs {
		prefix := "audiences." + d.Name + ".condition"
		d.Condition.walkKeyed(prefix, func(key string, node *Condition) {
			if _, ok := byName[node.InAudience]; node.InAudience != "" && !ok {
				problems = append(problems, fmt.Sprintf("%s.in_audience %q is not "+
					"a defined audience", key, node.InAudience))
			}
		})
	}

	state := map[string]int{} // 0 unvisited, 1 on the path, 2 done
	var path []string
	var visit func(name string) []string
	visit = func(name string) []string {
		switch state[name] {
		case 1:
			start := indexOf(path, name)
			cycle := append(append([]string{}, path[start:]...), name)
			return []string{"audiences: in_audience conditions form a cycle: " +
				strings.Join(cycle, " -> ")}
		case 2:
			return nil
		}
		state[name] = 1
		path = append(path, name)
		defer func() { path = path[:len(path)-1]; state[name] = 2 }()
		for _, other := range byName[name].Audiences() {
			if found := visit(other); found != nil {
				return found
			}
		}
		return nil
	}
	for _, d := range defs {
		if found := visit(d.Name); found != nil {
			return append(problems, found...)
		}
	}
	return problems
}

func indexOf(list []string, s string) int {
	for i, item := range list {
		if item == s {
			return i
		}
	}
	return -1
}
