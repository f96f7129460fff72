package resolver

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Segment's limits on what one message may be.
const (
	MaxMessageBytes = 32 * 1024 // one message, as Segment's HTTP API
	MaxMessageIDLen = 100       // Segment drops longer messageIds
	// MaxDepth is how deeply objects and arrays may nest in one message,
	// its own braces counting as the first level. Audiences read
	// properties and traits with SQLite's JSON functions, which refuse
	// documents nested more than 1,000 levels: one deeper message would
	// fail every audience that reads its event. Real traffic nests a few
	// levels.
	MaxDepth = 100
)

// The six Segment call types knit accepts.
var messageTypes = map[string]bool{
	"identify": true, "track": true, "page": true,
	"screen": true, "group": true, "alias": true,
	"delete": true, // Segment's deletion notification for a userId
}

// Message is one Segment message after parsing and validation. Raw holds the
// message exactly as it was stored.
type Message struct {
	ID           string
	Type         string
	UserID       string
	AnonymousID  string
	Event        string // track: the event name; page and screen: the name
	GroupID      string
	PreviousID   string
	Timestamp    time.Time
	Traits       map[string]any // identify traits (group traits stay in Raw)
	Properties   map[string]any
	Context      map[string]any
	Integrations map[string]any
	App          string
	DeviceType   string
	DeviceID     string
	Source       string
	ReceivedAt   time.Time
	Raw          []byte
	RequestID    string // the HTTP request's id (Envelope.RequestID), or ""

	prepared *prepared // set by Store.prepare
}

// Envelope says how a message arrived, which decides how its timestamp is
// computed.
type Envelope struct {
	// Source names where the message came from ("webhook", a write key's
	// label, "import"); it is kept with the event.
	Source string
	// ReceivedAt is when knit received the request.
	ReceivedAt time.Time
	// CorrectSkew is true on the tracking API, where knit acts as Segment
	// and removes the device clock's error; false where Segment already did.
	CorrectSkew bool
	// BatchSentAt is the batch-level sentAt of a tracking API batch.
	BatchSentAt string
	// AllowDelete accepts Segment's deletion requests ({"type":"delete"}),
	// which come only from Segment itself: the webhook and imports, never
	// the tracking API, whose write keys are public in web pages.
	AllowDelete bool
	// RequestID is the id of the HTTP request that carried the message,
	// or "": an erasure it asks for is audited under it.
	RequestID string
}

// ParseMessage decodes and validates one raw Segment message. It is lenient
// where real traffic is (numbers for ids, context.app as a string, dates
// without zero padding) and returns an *Error with code EInvalid or
// ETooLarge naming the offending field otherwise.
func ParseMessage(raw []byte, env Envelope) (*Message, error) {
	if len(raw) > MaxMessageBytes {
		return nil, Errorf(ETooLarge,
			"message is %d bytes; the limit is %d (32 KB)", len(raw), MaxMessageBytes)
	}
	if err := CheckUTF8(raw); err != nil {
		return nil, err
	}
	if depthOver(raw, MaxDepth) {
		return nil, Errorf(EInvalid, "message nests objects and arrays more than "+
			"%d levels deep; the limit is %d", MaxDepth, MaxDepth)
	}
	m, err := parseMessage(raw, env)
	if err != nil {
		return nil, err
	}
	if err := checkTimeRange(m.Timestamp); err != nil {
		return nil, err
	}
	if err := checkNumbers("properties", m.Properties); err != nil {
		return nil, err
	}
	if err := checkNumbers("traits", m.Traits); err != nil {
		return nil, err
	}
	return m, nil
}

// parseMessage is ParseMessage without the checks on the raw bytes, for
// messages stored before those checks existed.
func parseMessage(raw []byte, env Envelope) (*Message, error) {
	fields, err := decodeObject(raw)
	if err != nil {
		return nil, err
	}

	m := &Message{Source: env.Source, ReceivedAt: env.ReceivedAt, Raw: raw,
		RequestID: env.RequestID}
	if err := m.readIDs(fields, raw); err != nil {
		return nil, err
	}
	if err := m.readBody(fields); err != nil {
		return nil, err
	}
	m.replaceNUL()
	if err := m.validate(); err != nil {
		return nil, err
	}
	if m.Type == "delete" && !env.AllowDelete {
		return nil, Errorf(EInvalid, "delete requests are taken only from Segment's "+
			"destination (/webhook), not from the tracking API")
	}

	m.Timestamp, err = messageTime(fields, env)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// CheckUTF8 refuses a message that is not valid UTF-8, as JSON text must
// be (RFC 8259), naming the first bad byte. Decoding would silently turn
// such bytes into U+FFFD while the raw message kept them, and PostgreSQL
// refuses them in text, so one such message would fail its batch for good.
func CheckUTF8(raw []byte) error {
	if utf8.Valid(raw) {
		return nil
	}
	at := 0
	for at < len(raw) {
		r, size := utf8.DecodeRune(raw[at:])
		if r == utf8.RuneError && size <= 1 {
			break
		}
		at += size
	}
	return Errorf(EInvalid, "message is not valid UTF-8: byte 0x%02x at offset %d "+
		"(JSON text must be UTF-8)", raw[at], at)
}

// depthOver reports whether the JSON text raw nests objects and arrays
// more than limit levels deep. It skips strings and validates nothing
// else, so it runs before decoding, whose own limit is far higher.
func depthOver(raw []byte, limit int) bool {
	depth := 0
	inString := false
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			if depth++; depth > limit {
				return true
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return false
}

// TrailingData reports whether data holds more than JSON white space from
// offset on, where a decoded value ended. (json.Decoder.More does not see
// a stray "]" or "}" there.)
func TrailingData(data []byte, offset int64) bool {
	return len(bytes.TrimLeft(data[offset:], " \t\r\n")) > 0
}

func decodeObject(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()

	var value any
	if err := dec.Decode(&value); err != nil {
		return nil, Errorf(EInvalid, "message is not valid JSON: %v", err)
	}
	if TrailingData(raw, dec.InputOffset()) {
		return nil, Errorf(EInvalid, "message has data after its JSON object")
	}
	fields, ok := value.(map[string]any)
	if !ok {
		return nil, Errorf(EInvalid, "message must be a JSON object")
	}
	return fields, nil
}

func (m *Message) readIDs(fields map[string]any, raw []byte) error {
	var err error
	kind, err := stringField(fields, "type")
	if err != nil {
		return err
	}
	m.Type = strings.ToLower(strings.TrimSpace(kind))

	for _, f := range []struct {
		key  string
		dest *string
	}{
		{"messageId", &m.ID}, {"userId", &m.UserID},
		{"anonymousId", &m.AnonymousID}, {"groupId", &m.GroupID},
		{"previousId", &m.PreviousID},
	} {
		if *f.dest, err = stringField(fields, f.key); err != nil {
			return err
		}
	}

	m.ID = strings.TrimSpace(m.ID)
	if m.ID == "" {
		m.ID = DerivedMessageID(raw)
	}
	return nil
}

// DerivedMessageID is the stable id knit gives a message that arrives
// without a messageId: the same bytes always get the same id, so a retried
// delivery is still stored once.
func DerivedMessageID(raw []byte) string {
	sum := sha256.Sum256(bytes.TrimSpace(raw))
	return "knit-" + hex.EncodeToString(sum[:16])
}

func (m *Message) readBody(fields map[string]any) error {
	var err error
	if m.Event, err = stringField(fields, "event"); err != nil {
		return err
	}
	if m.Type == "page" || m.Type == "screen" {
		if m.Event, err = stringField(fields, "name"); err != nil {
			return err
		}
	}
	if m.Context, err = objectField(fields, "context"); err != nil {
		return err
	}
	if m.Properties, err = objectField(fields, "properties"); err != nil {
		return err
	}
	if m.Integrations, err = objectField(fields, "integrations"); err != nil {
		return err
	}
	if m.Type == "identify" {
		if m.Traits, err = objectField(fields, "traits"); err != nil {
			return err
		}
	}

	m.App = appName(m.Context)
	device, _ := m.Context["device"].(map[string]any)
	m.DeviceType = strings.ToLower(looseString(device["type"]))
	m.DeviceID = looseString(device["id"])
	return nil
}

func (m *Message) validate() error {
	switch {
	case m.Type == "":
		return Errorf(EInvalid, "type is required")
	case !messageTypes[m.Type]:
		return Errorf(EInvalid, "type %q is not one of identify, track, page, "+
			"screen, group, alias (or delete, Segment's deletion request)", m.Type)
	case m.Type == "delete" && strings.TrimSpace(m.UserID) == "":
		return Errorf(EInvalid, "userId is required on a delete request")
	case strings.TrimSpace(m.UserID) == "" && strings.TrimSpace(m.AnonymousID) == "":
		return Errorf(EInvalid, "userId or anonymousId is required")
	case m.Type == "track" && strings.TrimSpace(m.Event) == "":
		return Errorf(EInvalid, "event is required on a track call")
	case m.Type == "group" && strings.TrimSpace(m.GroupID) == "":
		return Errorf(EInvalid, "groupId is required on a group call")
	case m.Type == "alias" && strings.TrimSpace(m.PreviousID) == "":
		return Errorf(EInvalid, "previousId is required on an alias call")
	case m.Type == "delete" && strings.TrimSpace(m.UserID) == "":
		return Errorf(EInvalid, "userId is required on a delete request")
	case utf8.RuneCountInString(m.ID) > MaxMessageIDLen:
		return Errorf(EInvalid, "messageId is %d characters; the limit is %d",
			utf8.RuneCountInString(m.ID), MaxMessageIDLen)
	}
	return nil
}

// stringField reads a field that should be a string, accepting numbers and
// booleans as their text (real traffic sends numeric user ids) and treating
// null or absence as empty.
func stringField(fields map[string]any, key string) (string, error) {
	switch v := fields[key].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case json.Number:
		return v.String(), nil
	case bool:
		return fmt.Sprint(v), nil
	default:
		return "", Errorf(EInvalid, "%s must be a string", key)
	}
}

func objectField(fields map[string]any, key string) (map[string]any, error) {
	switch v := fields[key].(type) {
	case nil:
		return map[string]any{}, nil
	case map[string]any:
		return v, nil
	default:
		return nil, Errorf(EInvalid, "%s must be an object", key)
	}
}

// looseString renders a scalar JSON value as text and anything else as "".
func looseString(v any) string {
	switch v := v.(type) {
	case string:
		return strings.TrimSpace(v)
	case json.Number:
		return v.String()
	case bool:
		return fmt.Sprint(v)
	default:
		return ""
	}
}

// appName reads context.app, which the spec makes an object with a name
// but which real traffic (and Segment's own example) also sends as a string.
func appName(context map[string]any) string {
	switch app := context["app"].(type) {
	case string:
		return strings.TrimSpace(app)
	case map[string]any:
		return looseString(app["name"])
	default:
		return ""
	}
}

// PropertiesJSON returns the message's properties as JSON text.
func (m *Message) PropertiesJSON() string {
	if len(m.Properties) == 0 {
		return "{}"
	}
	out, err := json.Marshal(m.Properties)
	if err != nil {
		return "{}"
	}
	return string(out)
}

// replaceNUL replaces NUL in every field knit reads from (the raw message
// stays as sent) with U+FFFD: PostgreSQL refuses NUL in text and in jsonb,
// and one such message would otherwise fail its whole batch for good.
func (m *Message) replaceNUL() {
	for _, field := range []*string{&m.ID, &m.Type, &m.UserID, &m.AnonymousID, &m.Event,
		&m.GroupID, &m.PreviousID, &m.App, &m.DeviceType, &m.DeviceID, &m.Source} {
		*field = withoutNUL(*field).(string)
	}
	m.Properties, _ = withoutNUL(m.Properties).(map[string]any)
	m.Traits, _ = withoutNUL(m.Traits).(map[string]any)
	m.Context, _ = withoutNUL(m.Context).(map[string]any)
}

// withoutNUL returns v with every NUL in its strings and keys replaced by
// U+FFFD, the replacement character; other values are kept.
func withoutNUL(v any) any {
	switch v := v.(type) {
	case string:
		return strings.ReplaceAll(v, "\x00", "\uFFFD")
	case []any:
		for i := range v {
			v[i] = withoutNUL(v[i])
		}
		return v
	case map[string]any:
		for key, value := range v {
			clean := withoutNUL(key).(string)
			if clean != key {
				delete(v, key)
			}
			v[clean] = withoutNUL(value)
		}
		return v
	}
	return v
}
