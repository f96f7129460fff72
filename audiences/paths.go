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

// scalarText is a scalar JSON value as text; other values give "".
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
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	}
	return ""
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

// maxDays bounds durations given in days, far below where they overflow.
const maxDays = 36600

// ParseDuration reads "1h30m" as Go does and "7d" as seven days.
func ParseDuration(text string) (time.Duration, error) {
	text = strings.TrimSpace(text)
	if days, ok := strings.CutSuffix(text, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
			return 0, fmt.Errorf("duration %q: want a number of days such as 7d", text)
		}
		if math.Abs(n) > maxDays {
			return 0, fmt.Errorf("duration %q: at most %dd (about a century)", text, maxDays)
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
