package resolver

import (
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// The fuzz targets' seeds are below and in testdata/fuzz; .ci/run runs
// each target for a few seconds. A finding is a panic or a broken promise:
// a parsed message without an id or type, an identifier that is not clean
// text, a time that does not round-trip.

func FuzzParseMessage(f *testing.F) {
	for _, seed := range []string{
		`{"type":"track","event":"E","anonymousId":"a","messageId":"m"}`,
		`{"type":"identify","userId":"u","traits":{"email":" A@B.C "},"messageId":"m"}`,
		`{"type":"alias","previousId":"p","userId":"u","messageId":"m"}`,
		`{"type":"page","name":"P","properties":{"a":[1,{"b":null}]},"userId":"u"}`,
		`{"type":"track","event":"E","userId":"u","timestamp":"0000-01-01T00:00:00Z"}`,
		`{"type":"track","event":"E","userId":"u\u0000","context":{"device":{"id":1}}}`,
		`[]`, `{}`, `null`, `{"type":"delete","userId":"u"}`,
	} {
		f.Add([]byte(seed))
	}
	env := Envelope{Source: "fuzz", ReceivedAt: time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC),
		CorrectSkew: true, AllowDelete: true}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := ParseMessage(raw, env)
		if err != nil {
			return
		}
		if m.ID == "" || m.Type == "" {
			t.Fatalf("parsed %q without an id or type: %+v", raw, m)
		}
		if strings.ContainsRune(m.PropertiesJSON(), 0) || strings.Contains(m.Event, "\x00") {
			t.Fatalf("a NUL survived parsing %q", raw)
		}
		checkIdentifiers(t, raw, m)
	})
}

// checkIdentifiers extracts the message's identifiers with the default
// rules and requires each to be clean text.
func checkIdentifiers(t *testing.T, raw []byte, m *Message) {
	ids, _ := DefaultRules().extract(m)
	for _, id := range ids {
		if id.Type == "" || id.Value == "" || !utf8.ValidString(id.Value) ||
			strings.IndexFunc(id.Value, unicode.IsControl) >= 0 {
			t.Fatalf("%q gave the identifier %+v", raw, id)
		}
	}
}

func FuzzParseTime(f *testing.F) {
	for _, seed := range []string{"2026-12-04T10:00:00Z", "2026-12-04T10:00:00.123+02:00",
		"2026-12-04 10:00:00", "9999-12-31T23:59:59Z", "0000-01-01T00:00:00Z",
		"1733306400", "", "not a time", "2026-02-30T00:00:00Z", "9999-12-31 12:0-12"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		parsed, ok := ParseTime(text)
		if !ok {
			return
		}
		// A zone offset can carry a date at either end of the four-digit
		// years past them in UTC; messageTime refuses those with a clear
		// error instead of storing them.
		if year := parsed.Year(); year < 0 || year > 9999 {
			if checkTimeRange(parsed) == nil {
				t.Fatalf("%q read as %v, which is kept though out of range", text, parsed)
			}
			return
		}
		again, ok := ParseTime(parsed.UTC().Format(time.RFC3339Nano))
		if !ok || !again.Equal(parsed) {
			t.Fatalf("%q read as %v, which does not read back (%v, %v)", text, parsed,
				again, ok)
		}
	})
}
