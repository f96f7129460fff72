package resolver_test

import (
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

func TestNULInPropertiesAndTraitsIsReplaced(t *testing.T) {
	m, err := resolver.ParseMessage([]byte(`{"type":"identify","userId":"u","messageId":"m",
		"traits":{"na\u0000me":"a\u0000b","list":["x\u0000"]},
		"properties":{"p":{"q":"\u0000"}}}`), resolver.Envelope{Source: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.PropertiesJSON(); strings.Contains(got, `\u0000`) {
		t.Errorf("properties %s still hold a NUL", got)
	}
	if m.Traits["na\uFFFDme"] != "a\uFFFDb" {
		t.Errorf("traits %v, want NUL replaced in keys and values", m.Traits)
	}
	if list, _ := m.Traits["list"].([]any); len(list) != 1 || list[0] != "x\uFFFD" {
		t.Errorf("trait list %v", m.Traits["list"])
	}
}

// TestNULInAnyFieldIsStoredOnEveryEngine: PostgreSQL refuses NUL in text,
// so a message holding one in any field must still be stored (with U+FFFD
// in its place) instead of failing its batch on every retry.
func TestNULInAnyFieldIsStoredOnEveryEngine(t *testing.T) {
	db := sqltest.MustOpen(t)
	store := resolver.NewStore(db, resolver.DefaultRules(), time.Now, nil)
	for i, body := range []string{
		`{"type":"track","event":"a\u0000b","anonymousId":"x","messageId":"m1"}`,
		`{"type":"track","event":"e","anonymousId":"x\u0000y","messageId":"m2"}`,
		`{"type":"track","event":"e","userId":"u\u0000","messageId":"m3",
		  "context":{"app":{"name":"A\u0000"},"device":{"id":"d\u0000"}}}`,
		`{"type":"track","event":"e","anonymousId":"x","messageId":"m4\u0000"}`,
	} {
		m, err := resolver.ParseMessage([]byte(body),
			resolver.Envelope{Source: "s\u0000", ReceivedAt: time.Now()})
		if err != nil {
			t.Fatalf("parse message %d: %v", i+1, err)
		}
		if _, err := store.Ingest(t.Context(), []*resolver.Message{m}); err != nil {
			t.Errorf("ingest message %d: %v", i+1, err)
		}
	}
	var stored int
	if err := db.Get(&stored, `SELECT COUNT(*) FROM events`); err != nil || stored != 4 {
		t.Errorf("%d events stored (%v), want 4", stored, err)
	}
}
