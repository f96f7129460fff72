package resolver

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Identifier types knit reads from messages, as Segment Unify names them.
const (
	TypeUserID      = "user_id"
	TypeAnonymousID = "anonymous_id"
	TypeEmail       = "email"
	TypeGAClientID  = "ga_client_id"
)

// Identifier is one identifying value of a person, such as email:a@b.c.
type Identifier struct {
	Type  string
	Value string
}

// String renders the identifier as type:value, the form the Profile API
// uses in its paths.
func (id Identifier) String() string { return id.Type + ":" + id.Value }

// Rules are the identity resolution settings: how many values of each type
// a profile may hold, which types win when a limit would be broken, and
// which values never count as identifiers.
type Rules struct {
	// Limits caps the values of one type on a profile; DefaultLimit applies
	// to types not listed.
	Limits       map[string]int
	DefaultLimit int
	// Priority lists types from most to least trusted; unlisted types rank
	// after them, alphabetically.
	Priority []string
	// BlockedValues holds extra values (compared case-insensitively) that are never
	// identifiers, on top of the built-in junk list.
	BlockedValues []string
}

// DefaultRules returns Segment Unify's defaults: one user_id and five of
// every other type; user_id, then email, then the rest alphabetically.
func DefaultRules() Rules {
	return Rules{
		Limits:       map[string]int{TypeUserID: 1},
		DefaultLimit: 5,
		Priority:     []string{TypeUserID, TypeEmail},
	}
}

// Validate reports every contradiction in the rules at once.
func (r Rules) Validate() error {
	var problems []string
	if r.DefaultLimit < 1 {
		problems = append(problems, "identity.default_limit must be at least 1")
	}
	for kind, limit := range r.Limits {
		if limit < 1 {
			problems = append(problems, fmt.Sprintf(
				"identity.limits.%s must be at least 1, got %d", kind, limit))
		}
	}
	seen := map[string]bool{}
	for _, kind := range r.Priority {
		if seen[kind] {
			problems = append(problems, fmt.Sprintf(
				"identity.priority lists %q twice", kind))
		}
		seen[kind] = true
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return Errorf(EInvalid, "%s", strings.Join(problems, "; "))
	}
	return nil
}

// Limit returns how many values of kind a profile may hold.
func (r Rules) Limit(kind string) int {
	if limit, ok := r.Limits[kind]; ok {
		return limit
	}
	return r.DefaultLimit
}

// less orders identifier types from most to least trusted.
func (r Rules) less(a, b string) bool {
	ra, rb := r.rank(a), r.rank(b)
	if ra != rb {
		return ra < rb
	}
	return a < b
}

func (r Rules) rank(kind string) int {
	for i, listed := range r.Priority {
		if listed == kind {
			return i
		}
	}
	return len(r.Priority)
}

// junkValues are never identifiers: placeholders that broken clients send.
var junkValues = map[string]bool{
	"null": true, "undefined": true, "none": true, "nan": true,
	"anonymous": true, "[object object]": true, "-1": true,
	"true": true, "false": true,
}

var zerosAndDashes = regexp.MustCompile(`^[0-]*$`)

// Blocked reports whether value must never be used as an identifier.
func (r Rules) Blocked(value string) bool {
	trimmed := strings.TrimSpace(value)
	lower := strings.ToLower(trimmed)
	if trimmed == "" || junkValues[lower] || zerosAndDashes.MatchString(trimmed) {
		return true
	}
	for _, blocked := range r.BlockedValues {
		if strings.EqualFold(strings.TrimSpace(blocked), trimmed) {
			return true
		}
	}
	return strings.ContainsFunc(trimmed, func(c rune) bool { return c < 0x20 || c == 0x7f })
}

// Extract returns the identifiers a message carries, normalised, without
// blocked values or repeats, ordered from most to least trusted type.
func (r Rules) Extract(m *Message) []Identifier {
	ids, _ := r.extract(m)
	return ids
}

// extract returns the message's identifiers and, apart, the non-empty
// values it carried in identifier fields that are blocked.
func (r Rules) extract(m *Message) (ids, blocked []Identifier) {
	add := func(kind, value string) {
		value = normalise(kind, value)
		if !r.Blocked(value) {
			ids = append(ids, Identifier{Type: kind, Value: value})
		} else if value != "" {
			blocked = append(blocked, Identifier{Type: kind, Value: value})
		}
	}

	add(TypeUserID, m.UserID)
	add(TypeAnonymousID, m.AnonymousID)
	if m.Type != "group" {
		add(TypeEmail, looseString(m.Traits["email"]))
	}
	contextTraits, _ := m.Context["traits"].(map[string]any)
	add(TypeEmail, looseString(contextTraits["email"]))
	addDeviceIDs(m, add)
	add(TypeGAClientID, gaClientID(m))
	addExternalIDs(m.Context, add)

	return r.sortUnique(ids), r.sortUnique(blocked)
}

func addDeviceIDs(m *Message, add func(kind, value string)) {
	platform := m.DeviceType
	if platform != "ios" && platform != "android" {
		return
	}
	device, _ := m.Context["device"].(map[string]any)

	add(platform+".id", looseString(device["id"]))
	add(platform+".push_token", looseString(device["token"]))
	if tracking, _ := device["adTrackingEnabled"].(bool); tracking {
		add(platform+".idfa", looseString(device["advertisingId"]))
	}
}

// gaClientID reads the Google Analytics client id where analytics.js puts
// it (integrations) and where Segment's docs name it (context.integrations).
func gaClientID(m *Message) string {
	for _, integrations := range []map[string]any{
		m.Integrations, asObject(m.Context["integrations"]),
	} {
		ga := asObject(integrations["Google Analytics"])
		if id := looseString(ga["clientId"]); id != "" {
			return id
		}
	}
	return ""
}

func addExternalIDs(context map[string]any, add func(kind, value string)) {
	list, _ := context["externalIds"].([]any)
	for _, item := range list {
		ext := asObject(item)
		collection := strings.ToLower(looseString(ext["collection"]))
		if collection != "" && collection != "users" {
			continue
		}
		kind := strings.ToLower(looseString(ext["type"]))
		if kind == "" {
			continue
		}
		add(kind, looseString(ext["id"]))
	}
}

func asObject(v any) map[string]any {
	object, _ := v.(map[string]any)
	return object
}

// normalise brings a value to the form it is stored and matched in: trimmed,
// and for email also lower-cased.
func normalise(kind, value string) string {
	value = strings.TrimSpace(value)
	if kind == TypeEmail {
		value = strings.ToLower(value)
	}
	return value
}

// NormaliseIdentifier normalises a value given by a caller (a Profile API
// path, a console search) the same way message values are.
func NormaliseIdentifier(kind, value string) Identifier {
	kind = strings.ToLower(strings.TrimSpace(kind))
	return Identifier{Type: kind, Value: normalise(kind, value)}
}

func (r Rules) sortUnique(ids []Identifier) []Identifier {
	sort.SliceStable(ids, func(i, j int) bool {
		if ids[i].Type != ids[j].Type {
			return r.less(ids[i].Type, ids[j].Type)
		}
		return false
	})

	out := ids[:0]
	seen := map[Identifier]bool{}
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
