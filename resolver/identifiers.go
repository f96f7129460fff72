package resolver

import (
	"slices"
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

// Extract returns the identifiers a message carries, normalised, without
// blocked values or repeats, ordered from most to least trusted type.
func (r Rules) Extract(m *Message) []Identifier {
	ids, _ := r.extract(m)
	return ids
}

// extract returns the message's identifiers and, apart, the non-empty
// values it carried in identifier fields that are blocked.
func (r Rules) extract(m *Message) (ids []Identifier, blocked []blockedIdentifier) {
	add := func(kind, value string) {
		value = r.normalise(kind, value)
		reason := r.blockedReason(kind, value)
		switch {
		case reason == "":
			ids = append(ids, Identifier{Type: kind, Value: value})
		case strings.TrimSpace(value) != "":
			blocked = append(blocked, blockedIdentifier{Identifier{kind, value}, reason})
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
	r.addCustomIDs(m, add)

	return r.sortUnique(ids), blocked
}

// blockedIdentifier is a value in an identifier field that is not used,
// with the reason.
type blockedIdentifier struct {
	Identifier
	reason string
}

// addCustomIDs reads the declared custom types from context.traits,
// identify traits and event properties.
func (r Rules) addCustomIDs(m *Message, add func(kind, value string)) {
	contextTraits, _ := m.Context["traits"].(map[string]any)
	sources := []map[string]any{contextTraits, m.Traits}
	if m.Type != "identify" {
		sources = append(sources, m.Properties)
	}
	for _, custom := range r.Custom {
		for _, key := range custom.Keys {
			for _, fields := range sources {
				add(custom.Type, looseString(fields[key]))
			}
		}
	}
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

// normalisers bring values to the form they are stored and matched in.
var normalisers = map[string]func(string) string{
	"": strings.TrimSpace, "none": strings.TrimSpace,
	"lower": func(v string) string { return strings.ToLower(strings.TrimSpace(v)) },
	"email": func(v string) string { return strings.ToLower(strings.TrimSpace(v)) },
	"phone": normalisePhone,
}

// normalise brings a value to its stored form: emails trimmed and
// lower-cased, custom types by their normaliser, everything else trimmed.
func (r Rules) normalise(kind, value string) string {
	if slices.Contains(builtinTypes, kind) {
		return normalise(kind, value) // extra keys never change a built-in type
	}
	for _, custom := range r.Custom {
		if custom.Type == kind {
			return normalisers[custom.Normaliser](value)
		}
	}
	return normalise(kind, value)
}

func normalise(kind, value string) string {
	if kind == TypeEmail {
		return normalisers["email"](value)
	}
	return strings.TrimSpace(value)
}

// normalisePhone writes a phone number as "+" and its digits, the country
// code included (E.164): spaces, dots, dashes and brackets go, a leading 00
// becomes +. A value that is not 7 to 15 digits is returned empty, so it is
// not used.
func normalisePhone(value string) string {
	value = strings.TrimSpace(value)
	value = strings.TrimPrefix(strings.TrimPrefix(value, "+"), "00")
	digits := strings.Map(func(c rune) rune {
		switch {
		case c >= '0' && c <= '9':
			return c
		case strings.ContainsRune(" .-()/", c):
			return -1
		}
		return 'x'
	}, value)
	if strings.Contains(digits, "x") || len(digits) < 7 || len(digits) > 15 {
		return ""
	}
	return "+" + digits
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
