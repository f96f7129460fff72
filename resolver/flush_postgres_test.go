package resolver

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// ingestRaw stores raw messages in one Ingest call, as one batch.
func ingestRaw(t *testing.T, store *Store, at time.Time, raws ...string) {
	t.Helper()
	messages := make([]*Message, len(raws))
	for i, raw := range raws {
		m, err := ParseMessage([]byte(raw), Envelope{Source: "test", ReceivedAt: at})
		if err != nil {
			t.Fatalf("parse %s: %v", raw, err)
		}
		messages[i] = m
	}
	if _, err := store.Ingest(context.Background(), messages); err != nil {
		t.Fatalf("ingest: %v", err)
	}
}

// A batch that writes every kind of row (profiles, identities, events,
// links, decisions, traits, a later sighting of a stored identity, new ids)
// writes them all through the one flush statement, and each lands as the
// separate statements left it: the trigger fills event_ids, a trait update
// wins by time, the sighting moves last_seen_ms, the sequences move past
// the ids handed out.
func TestPostgresFlushWritesEveryKindOfRowInOneStatement(t *testing.T) {
	db := sqltest.MustOpenPostgres(t)
	ctx := context.Background()
	day := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	store := NewStore(db, DefaultRules(), func() time.Time { return day }, nil)

	ingestRaw(t, store, day,
		`{"type":"track","event":"Product Viewed","anonymousId":"anon-1",
		 "messageId":"m1","timestamp":"2026-12-04T08:00:00Z"}`,
		`{"type":"identify","userId":"jane","anonymousId":"anon-1",
		 "traits":{"plan":"basic"},"messageId":"m2","timestamp":"2026-12-04T08:01:00Z"}`)

	w := &writer{rules: DefaultRules(), now: day, bulk: newBulkRows(),
		cache: newIdentityCache(), dialect: sqldb.Postgres}
	w.bulk.seenLater[Identifier{Type: "anonymous_id", Value: "anon-1"}] = 1
	w.profileIDs.last, w.eventIDs.last = 9, 9
	for _, table := range flushTableOrder {
		row := make([]any, len(table.columns))
		for i := range row {
			row[i] = "x"
		}
		_ = w.write(ctx, table, row...)
	}
	statement, _, err := w.flushStatement()
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{"WITH profiles AS (INSERT INTO profiles",
		"identities AS (INSERT", "events AS (INSERT", "identity_links AS (INSERT",
		"identity_decisions AS (INSERT", "traits AS (INSERT",
		"sightings AS (UPDATE identities", "SELECT setval("} {
		if !strings.Contains(statement, part) {
			t.Errorf("the flush statement has no %q:\n%s", part, statement)
		}
	}

	later := day.Add(time.Hour)
	ingestRaw(t, store, later,
		`{"type":"track","event":"Product Added","anonymousId":"anon-1",
		 "messageId":"m3","timestamp":"2026-12-04T09:00:00Z"}`,
		`{"type":"identify","userId":"jane","traits":{"plan":"pro"},
		 "messageId":"m4","timestamp":"2026-12-04T09:01:00Z"}`,
		`{"type":"identify","userId":"sam","anonymousId":"anon-2",
		 "traits":{"plan":"basic"},"messageId":"m5","timestamp":"2026-12-04T09:02:00Z"}`)

	var got struct {
		Events, EventIDs, Profiles, Links, Decisions int
		Plan                                         string
		LastSeen                                     int64
		EventSeq, ProfileSeq, MaxEvent, MaxProfile   int64
	}
	err = db.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM event_ids),
		(SELECT COUNT(*) FROM profiles), (SELECT COUNT(*) FROM identity_links),
		(SELECT COUNT(*) FROM identity_decisions),
		(SELECT t.value FROM traits t JOIN identities i ON i.profile_id = t.profile_id
			WHERE i.type = 'user_id' AND i.value = 'jane' AND t.key = 'plan'),
		(SELECT last_seen_ms FROM identities
			WHERE type = 'anonymous_id' AND value = 'anon-1'),
		pg_sequence_last_value(pg_get_serial_sequence('events', 'id')::regclass),
		pg_sequence_last_value(pg_get_serial_sequence('profiles', 'id')::regclass),
		(SELECT MAX(id) FROM events), (SELECT MAX(id) FROM profiles)`).Scan(
		&got.Events, &got.EventIDs, &got.Profiles, &got.Links, &got.Decisions, &got.Plan,
		&got.LastSeen, &got.EventSeq, &got.ProfileSeq, &got.MaxEvent, &got.MaxProfile)
	if err != nil {
		t.Fatal(err)
	}

	nineAM := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC).UnixMilli()
	switch {
	case got.Events != 5 || got.EventIDs != 5:
		t.Errorf("events %d, event_ids %d, want 5 and 5", got.Events, got.EventIDs)
	case got.Profiles != 2 || got.Links < 7 || got.Decisions == 0:
		t.Errorf("profiles %d (want 2), links %d (want 7 or more), decisions %d",
			got.Profiles, got.Links, got.Decisions)
	case got.Plan != `"pro"`:
		t.Errorf("jane's plan is %s, want the later \"pro\"", got.Plan)
	case got.LastSeen != nineAM:
		t.Errorf("anon-1 last seen %d, want %d (the second batch)", got.LastSeen, nineAM)
	case got.EventSeq < got.MaxEvent || got.ProfileSeq < got.MaxProfile:
		t.Errorf("sequences at %d and %d, behind the ids %d and %d", got.EventSeq,
			got.ProfileSeq, got.MaxEvent, got.MaxProfile)
	}
}
