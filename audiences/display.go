package audiences

import (
	"fmt"
	"net/url"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// hiddenValue stands in for a secret in DisplayYAML.
const hiddenValue = "(hidden)"

// DisplayYAML writes the definition as YAML for people to read: keys in
// the order of the configuration file, only those set, durations as "7d"
// or "1h30m". Destination secrets and write keys, and any password or
// query string in a destination URL, read "(hidden)", so the text is safe
// to show to anyone who may see the audience.
func (d Definition) DisplayYAML() (string, error) {
	shown := d
	shown.Destinations = make([]Destination, len(d.Destinations))
	for i, dest := range d.Destinations {
		shown.Destinations[i] = dest.redacted()
	}
	node, ok, err := displayNode(reflect.ValueOf(shown))
	if err != nil {
		return "", err
	}
	if !ok {
		return "", nil
	}
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(node); err != nil {
		return "", fmt.Errorf("write definition of %s as YAML: %w", d.Name, err)
	}
	if err := enc.Close(); err != nil {
		return "", fmt.Errorf("write definition of %s as YAML: %w", d.Name, err)
	}
	return b.String(), nil
}

// redacted is the destination with its secrets hidden.
func (dest Destination) redacted() Destination {
	if dest.Secret != "" {
		dest.Secret = hiddenValue
	}
	if dest.WriteKey != "" {
		dest.WriteKey = hiddenValue
	}
	u, err := url.Parse(dest.URL)
	if err != nil {
		dest.URL = hiddenValue
		return dest
	}
	if u.User != nil {
		// A user name alone can be a key (https://KEY@host), so all of it goes.
		u.User = url.User("hidden")
	}
	if u.RawQuery != "" {
		u.RawQuery = "hidden"
	}
	dest.URL = u.String()
	return dest
}

var (
	durationType  = reflect.TypeFor[Duration]()
	marshalerType = reflect.TypeFor[yaml.Marshaler]()
)

// displayNode turns v into a YAML node; ok is false for a value that is
// not set (nil, or the zero value of a field that is no pointer).
func displayNode(v reflect.Value) (node *yaml.Node, ok bool, err error) {
	switch {
	case !v.IsValid():
		return nil, false, nil
	case v.Type() == durationType:
		return scalarNode(shortDuration(Duration(v.Int()))), true, nil
	case v.Type().Implements(marshalerType) && v.Kind() != reflect.Pointer:
		node := &yaml.Node{}
		if err := node.Encode(v.Interface()); err != nil {
			return nil, false, fmt.Errorf("encode %s: %w", v.Type(), err)
		}
		return node, len(node.Content) > 0 || node.Kind == yaml.ScalarNode, nil
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil, false, nil
		}
		return displayNode(v.Elem())
	case reflect.Struct:
		return structNode(v)
	case reflect.Slice:
		return sliceNode(v)
	case reflect.Map:
		return mapNode(v)
	}
	node = &yaml.Node{}
	if err := node.Encode(v.Interface()); err != nil {
		return nil, false, fmt.Errorf("encode %s: %w", v.Type(), err)
	}
	return node, true, nil
}

// shortDuration writes a duration as a definition would: "7d", "1h",
// "1h30m", "45s".
func shortDuration(d Duration) string {
	text := d.String()
	if strings.HasSuffix(text, "m0s") {
		text = strings.TrimSuffix(text, "0s")
	}
	if strings.HasSuffix(text, "h0m") {
		text = strings.TrimSuffix(text, "0m")
	}
	return text
}

func scalarNode(text string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: text}
}

// structNode maps each set field under its yaml key, in field order, with
// inline fields' keys in place.
func structNode(v reflect.Value) (*yaml.Node, bool, error) {
	node := &yaml.Node{Kind: yaml.MappingNode}
	for i := range v.NumField() {
		field := v.Type().Field(i)
		name, opts, _ := strings.Cut(field.Tag.Get("yaml"), ",")
		if !field.IsExported() || name == "-" {
			continue
		}
		value := v.Field(i)
		if value.Kind() != reflect.Pointer && value.Kind() != reflect.Interface &&
			value.IsZero() {
			continue
		}
		child, ok, err := displayNode(value)
		if err != nil || !ok {
			if err != nil {
				return nil, false, err
			}
			continue
		}
		if opts == "inline" {
			node.Content = append(node.Content, child.Content...)
			continue
		}
		if name == "" {
			name = strings.ToLower(field.Name)
		}
		node.Content = append(node.Content, scalarNode(name), child)
	}
	return node, len(node.Content) > 0, nil
}

func sliceNode(v reflect.Value) (*yaml.Node, bool, error) {
	if v.Len() == 0 {
		return nil, false, nil
	}
	node := &yaml.Node{Kind: yaml.SequenceNode}
	for i := range v.Len() {
		child, ok, err := displayNode(v.Index(i))
		if err != nil {
			return nil, false, err
		}
		if !ok {
			child = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
		}
		node.Content = append(node.Content, child)
	}
	// Short lists of scalars read best on one line: between: [7d, 1h].
	if v.Len() <= 5 && allScalars(node.Content) {
		node.Style = yaml.FlowStyle
	}
	return node, true, nil
}

func allScalars(nodes []*yaml.Node) bool {
	for _, n := range nodes {
		if n.Kind != yaml.ScalarNode {
			return false
		}
	}
	return true
}

// mapNode writes a map with its keys sorted, so the text is the same on
// every call.
func mapNode(v reflect.Value) (*yaml.Node, bool, error) {
	if v.Len() == 0 {
		return nil, false, nil
	}
	keys := v.MapKeys()
	sort.Slice(keys, func(i, j int) bool {
		return fmt.Sprint(keys[i].Interface()) < fmt.Sprint(keys[j].Interface())
	})
	node := &yaml.Node{Kind: yaml.MappingNode}
	for _, key := range keys {
		child, ok, err := displayNode(v.MapIndex(key))
		if err != nil {
			return nil, false, err
		}
		if !ok {
			continue
		}
		node.Content = append(node.Content, scalarNode(fmt.Sprint(key.Interface())), child)
	}
	return node, true, nil
}
