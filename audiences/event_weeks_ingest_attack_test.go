package audiences

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
)

// TestIngestedTimesAreWholeAndWindowed checks what SQLite's week bounds rest
// on for the events ingestion stores: every ts_ms is stored as an integer
// (a real with a fraction, such as 1.5, divides to a fraction of a week
// and falls outside the integer weeks of a window that holds it), also for
// timestamps at the ends of the years ingestion keeps, with nine fraction
// digits, zone offsets and clock-skew correction. It then checks that
// windows around each stored time hold exactly the events a plain range
// picks, on each engine.
func TestIngestedTimesAreWholeAndWindowed(t *testing.T) {
	onEachEngine(t, testIngestedTimesAreWholeAndWindowed)
}

func testIngestedTimesAreWholeAndWindowed(t *testing.T, db *sqldb.DB) {
	received := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	messages := []struct {
		timestamp, sentAt string
		skew              bool
	}{
		{"0000-01-01T00:00:00Z", "", false},
		{"0000-01-01T00:00:00.000999999Z", "", false},
		{"0000-01-01T23:59:00-23:59", "", false},
		{"9999-12-31T23:59:59.999999999Z", "", false},
		{"9999-12-31T00:00:00+23:59", "", false},
		{"1969-12-31T23:59:59.9999999Z", "", false},
		{"1970-01-01T00:00:00.0000001Z", "", false},
		{"1969-12-25T00:00:00.0005Z", "", false}, // a week edge before 1970
		{"2026-11-26T00:00:00.000Z", "", false},  // the week edge of 2919 weeks
		{"2026-11-25T23:59:59.999999Z", "", false},
		{"2026-12-04T11:59:59.123456789Z", "2026-12-04T12:00:00.000000001Z", true},
		{"0001-01-01T00:00:00.5Z", "2026-12-04T11:00:00.25Z", true},
	}
	store := resolver.NewStore(db, resolver.DefaultRules(), func() time.Time { return received },
		nil)
	for i, m := range messages {
		raw := fmt.Sprintf(`{"type":"track","event":"Ran","userId":"u%d","messageId":"m%d",`+
			`"timestamp":%q`, i, i, m.timestamp)
		if m.sentAt != "" {
			raw += fmt.Sprintf(`,"sentAt":%q`, m.sentAt)
		}
		env := resolver.Envelope{Source: "test", ReceivedAt: received, CorrectSkew: m.skew}
		msg, err := resolver.ParseMessage([]byte(raw+"}"), env)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if _, err := store.Ingest(context.Background(), []*resolver.Message{msg}); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
	}

	type stored struct {
		Profile int64  `db:"profile_id"`
		At      int64  `db:"ts_ms"`
		Type    string `db:"kind"`
	}
	kind := "'integer'"
	if db.Dialect() == sqldb.SQLite {
		kind = "typeof(ts_ms)"
	}
	var events []stored
	if err := db.Select(&events, `SELECT profile_id, ts_ms, `+kind+` AS kind FROM events
		WHERE event = 'Ran' ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	if len(events) != len(messages) {
		t.Fatalf("%d events stored of %d", len(events), len(messages))
	}
	for _, e := range events {
		if e.Type != "integer" {
			t.Errorf("the event at %d of profile %d is stored as %s", e.At, e.Profile, e.Type)
		}
	}

	r := NewRunner(db, nil, testNow, nil)
	for _, around := range events {
		for _, shift := range []int64{-1, 0, 1} {
			now := around.At + shift
			for _, w := range []attackWindow{{yaml: "within: 1ms", early: time.Millisecond},
				{yaml: "between: [1ms, 0s]", early: time.Millisecond},
				{yaml: "within: 7d", early: 7 * 24 * time.Hour},
				{yaml: "between: [1ms, 2562047h]", early: 2562047 * time.Hour,
					late: time.Millisecond}} {
				def := mustDefinition(t, "include_anonymous: true\n"+
					"condition: {performed: {event: Ran, "+w.yaml+"}}")
				got := memberIDsAt(t, r, def, time.UnixMilli(now))
				for _, e := range events {
					if want := w.holds(now, e.At); got[e.Profile] != want {
						t.Errorf("%s at %d: the profile with the event at %d is a member: %v",
							w.yaml, now, e.At, got[e.Profile])
					}
				}
			}
		}
	}
}
