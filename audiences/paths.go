package audiences

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Path addresses values inside event properties: "product_id",
// "address.city", or "products[].product_id" for a field of every element of
// an array.
type Path string

// lookup returns every value the path reaches in properties; a path through
// an array yields one value per element.
func (p Path) lookup(properties map[string]any) []any {
	values := []any{properties}
	for _, step := range strings.Split(string(p), ".") {
		each := strings.HasSuffix(step, "[]")
		key := strings.TrimSuffix(step, "[]")

		var next []any
		for _, v := range values {
			object, ok := v.(map[string]any)
			if !ok {
				continue
			}
			child, present := object[key]
			if !present {
				continue
			}
			if each {
				list, _ := child.([]any)
				next = append(next, list...)
			} else {
				next = append(next, child)
			}
		}
		values = next
	}
	return values
}

// strings returns the scalar values the path reaches, as text.
func (p Path) strings(properties map[string]any) []string {
	var out []string
	for _, v := range p.lookup(properties) {
		if text := scalarText(v); text != "" {
			out = append(out, text)
		}
	}
	return out
}

// first returns the first scalar value the path reaches, as text.
func (p Path) first(properties map[string]any) string {
	if values := p.strings(properties); len(values) > 0 {
		return values[0]
	}
	return ""
}

func scalarText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	}
	return ""
}

// number reads a finite number from a JSON number or numeric string.
func number(v any) (float64, bool) {
	var f float64
	var err error
	switch v := v.(type) {
	case json.Number:
		f, err = v.Float64()
	case float64:
		f = v
	case string:
		f, err = strconv.ParseFloat(strings.TrimSpace(v), 64)
	default:
		return 0, false
	}
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// Duration is a time.Duration that YAML writes as "90m", "1h" or "7d".
type Duration time.Duration

// UnmarshalYAML reads Go duration syntax plus a "d" suffix for days.
func (d *Duration) UnmarshalYAML(node *yaml.Node) error {
	parsed, err := ParseDuration(node.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", node.Line, err)
	}
	*d = Duration(parsed)
	return nil
}

// ParseDuration reads "1h30m" as Go does and "7d" as seven days.
func ParseDuration(text string) (time.Duration, error) {
	text = strings.TrimSpace(text)
	if days, ok := strings.CutSuffix(text, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil {
			return 0, fmt.Errorf("duration %q: want a number of days such as 7d", text)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	parsed, err := time.ParseDuration(text)
	if err != nil {
		return 0, fmt.Errorf("duration %q: want a form such as 90m, 1h or 7d", text)
	}
	return parsed, nil
}

// String renders the duration in days when it is a whole number of them.
func (d Duration) String() string {
	day := 24 * time.Hour
	if time.Duration(d)%day == 0 && d != 0 {
		return fmt.Sprintf("%dd", time.Duration(d)/day)
	}
	return time.Duration(d).String()
}
