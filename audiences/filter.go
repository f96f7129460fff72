package audiences

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// Filter tests one value: an event property (Property) or a trait (Key).
// Exactly one test is set, except that numeric bounds combine into a range.
// A filter on a value that is missing never holds, except Exists: false.
type Filter struct {
	Property Path   `yaml:"property"`
	Key      string `yaml:"key"`

	Equals     any     `yaml:"equals"`
	NotEquals  any     `yaml:"not_equals"`
	OneOf      []any   `yaml:"one_of"`
	Contains   *string `yaml:"contains"`
	StartsWith *string `yaml:"starts_with"`
	Exists     *bool   `yaml:"exists"`
	Compare    `yaml:",inline"`

	// IgnoreCase compares text with A-Z folded to a-z, on every engine.
	IgnoreCase bool `yaml:"ignore_case"`
}

// tests lists the tests the filter sets, by YAML key.
func (f Filter) tests() []string {
	var set []string
	add := func(key string, present bool) {
		if present {
			set = append(set, key)
		}
	}
	add("equals", f.Equals != nil)
	add("not_equals", f.NotEquals != nil)
	add("one_of", f.OneOf != nil)
	add("contains", f.Contains != nil)
	add("starts_with", f.StartsWith != nil)
	add("exists", f.Exists != nil)
	if !f.Compare.empty() {
		set = append(set, "a numeric bound")
	}
	return set
}

func (f Filter) validateProperty(key string) []string {
	var problems []string
	if f.Key != "" {
		problems = append(problems, key+".key is for traits; an event filter "+
			"names its property")
	}
	if f.Property == "" {
		problems = append(problems, key+".property is required")
	} else if err := f.Property.check(); err != nil {
		problems = append(problems, fmt.Sprintf("%s.property: %v", key, err))
	}
	return append(problems, f.validateTests(key)...)
}

func (f *Filter) validateTrait(key string) []string {
	var problems []string
	if f.Property != "" {
		problems = append(problems, key+".property is for events; a trait "+
			"condition names its key")
	}
	if f.Key == "" {
		problems = append(problems, key+".key is required, such as plan or address.city")
	} else if err := Path(f.Key).check(); err != nil || strings.Contains(f.Key, "[]") {
		problems = append(problems, fmt.Sprintf("%s.key %q is not a trait name such as "+
			"address.city", key, f.Key))
	}
	return append(problems, f.validateTests(key)...)
}

func (f Filter) validateTests(key string) []string {
	tests := f.tests()
	if len(tests) != 1 {
		return []string{fmt.Sprintf("%s needs exactly one test: equals, not_equals, "+
			"one_of, contains, starts_with, exists or numeric bounds (found %s)",
			key, describeList(tests))}
	}

	problems := f.Compare.validate(key)
	for name, value := range map[string]any{"equals": f.Equals, "not_equals": f.NotEquals} {
		if value != nil && !isScalar(value) {
			problems = append(problems, fmt.Sprintf("%s.%s must be text, a number "+
				"or true/false", key, name))
		}
	}
	if f.OneOf != nil && len(f.OneOf) == 0 {
		problems = append(problems, key+".one_of needs at least one value")
	}
	if len(f.OneOf) > maxOneOf {
		problems = append(problems, fmt.Sprintf("%s.one_of lists %d values; at most %d "+
			"fit in one query", key, len(f.OneOf), maxOneOf))
	}
	for i, v := range f.OneOf {
		if !isScalar(v) {
			problems = append(problems, fmt.Sprintf("%s.one_of[%d] must be text, a "+
				"number or true/false", key, i))
		}
	}
	return problems
}

func describeList(items []string) string {
	if len(items) == 0 {
		return "none"
	}
	return strings.Join(items, ", ")
}

func isScalar(v any) bool {
	switch v.(type) {
	case string, int, int64, uint64, float64, bool:
		return true
	}
	return false
}

// maxOneOf bounds a one_of list: each value is a parameter of the query,
// and SQLite takes at most 32,766 of them.
const maxOneOf = 10000

// Path addresses a value inside event properties: "product_id",
// "address.city", or "products[].product_id" for a field of any element of
// an array. At most one step may go through an array.
type Path string

// check reports why the path cannot be used, or nil.
func (p Path) check() error {
	if p == "" {
		return fmt.Errorf("a path is required")
	}
	arrays := 0
	for _, step := range strings.Split(string(p), ".") {
		name, each := strings.CutSuffix(step, "[]")
		if each {
			arrays++
		}
		if name == "" || strings.ContainsAny(name, `"\[]`) ||
			strings.IndexFunc(name, unicode.IsControl) >= 0 {
			return fmt.Errorf("%q: each step is a property name without quotes, "+
				"backslashes or brackets, an array marked with [], as in "+
				"products[].product_id", string(p))
		}
	}
	if arrays > 1 {
		return fmt.Errorf("%q goes through more than one array", string(p))
	}
	for _, step := range strings.Split(string(p), ".") {
		if _, err := strconv.Atoi(strings.TrimSuffix(step, "[]")); err == nil {
			return fmt.Errorf("%q: a step may not be a number; walk arrays with [], "+
				"as in products[].product_id", string(p))
		}
	}
	return nil
}

// split returns the steps up to and including the array (without its
// "[]"), and the steps inside each element. A path through no array has
// an empty array part.
func (p Path) split() (array, inner []string) {
	steps := strings.Split(string(p), ".")
	for i, step := range steps {
		if name, each := strings.CutSuffix(step, "[]"); each {
			array = append(append([]string{}, steps[:i]...), name)
			return array, steps[i+1:]
		}
	}
	return nil, steps
}

// arrayKey names the array a path goes through, or "" for none.
func (p Path) arrayKey() string {
	array, _ := p.split()
	return strings.Join(array, ".")
}

// Attribute is one per-member attribute: its name in exports, and what it
// is taken from (a source the condition kind offers).
type Attribute struct {
	Name   string
	Source string
}

// Attributes are a leaf's attributes in the order the YAML lists them.
type Attributes []Attribute

// UnmarshalYAML reads a mapping of attribute name to source, keeping the
// order of the file, since exports list attributes in that order.
func (a *Attributes) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: attributes map each name to a source, "+
			"such as added_at: last_at", node.Line)
	}
	*a = nil
	for i := 0; i+1 < len(node.Content); i += 2 {
		name, source := node.Content[i], node.Content[i+1]
		if source.Kind != yaml.ScalarNode {
			return fmt.Errorf("line %d: attribute %s needs a source such as last_at",
				source.Line, name.Value)
		}
		*a = append(*a, Attribute{Name: name.Value, Source: source.Value})
	}
	return nil
}

// MarshalYAML writes the attributes back as an ordered mapping.
func (a Attributes) MarshalYAML() (any, error) {
	node := &yaml.Node{Kind: yaml.MappingNode}
	for _, attr := range a {
		node.Content = append(node.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Value: attr.Name},
			&yaml.Node{Kind: yaml.ScalarNode, Value: attr.Source})
	}
	return node, nil
}

// sourceSet lists the attribute sources a condition kind offers; an entry
// ending in "<path>" accepts any property path after its prefix.
type sourceSet []string

var attributeSources = map[string]sourceSet{
	"performed": {"count", "first_at", "last_at"},
	"then_not":  {"keys", "count", "first_at", "last_at"},
	"aggregate": {"value", "anchor_at", "anchor.<path>"},
	"trait":     {"value"},
}

func (s sourceSet) allows(source string) bool {
	for _, entry := range s {
		prefix, isPath := strings.CutSuffix(entry, "<path>")
		if isPath {
			rest, ok := strings.CutPrefix(source, prefix)
			if ok && Path(rest).check() == nil {
				return true
			}
		} else if source == entry {
			return true
		}
	}
	return false
}

func (s sourceSet) String() string {
	sorted := append(sourceSet{}, s...)
	sort.Strings(sorted)
	return strings.Join(sorted, ", ")
}
