package migrations_test

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/knit-cdp/knit/migrations"
	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
)

// laExec runs statements, failing the test on the first error.
func laExec(t *testing.T, db *sqldb.DB, stmts ...string) {
	t.Helper()
	for _, stmt := range stmts {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
}

// laMigrate moves db to version, up or down.
func laMigrate(t *testing.T, db *sqldb.DB, dialect string, version int64, up bool) {
	t.Helper()
	move := migrations.DownTo
	if up {
		move = migrations.UpTo
	}
	if err := move(context.Background(), db.DB.DB, dialect, version); err != nil {
		t.Fatalf("migrate to %d: %v", version, err)
	}
}

// laOldPerson stores, as knit before version 15 did, profile 1 holding
// user_id u1 and anonymous_id a0 with event 7 (message m1), and two
// messages of u1 whose events retention dropped, gone-a and gone-b.
func laOldPerson(t *testing.T, db *sqldb.DB) {
	t.Helper()
	laExec(t, db,
		`INSERT INTO profiles (id, created_ms, updated_ms) VALUES (1, 0, 0)`,
		`INSERT INTO identities (type, value, profile_id, first_seen_ms,
			first_message_id, source, last_seen_ms) VALUES
			('user_id', 'u1', 1, 0, 'gone-a', 's', 0),
			('anonymous_id', 'a0', 1, 0, 'gone-a', 's', 0)`,
		`INSERT INTO events (id, message_id, source, type, profile_id, ts_ms,
			received_ms, raw) VALUES (7, 'm1', 's', 'track', 1, 0, 0, '{}')`,
		`INSERT INTO identity_links (message_id, type, value) VALUES
			('m1', 'user_id', 'u1'), ('gone-a', 'user_id', 'u1'),
			('gone-a', 'anonymous_id', 'a0'), ('gone-b', 'user_id', 'u1')`)
}

// laStore opens a resolver store over db.
func laStore(db *sqldb.DB) *resolver.Store {
	clock := func() time.Time { return time.Date(2026, 12, 4, 15, 8, 0, 0, time.UTC) }
	return resolver.NewStore(db, resolver.DefaultRules(), clock, nil)
}

// laIngest stores one track message of u1 with messageId id.
func laIngest(t *testing.T, store *resolver.Store, id string) {
	t.Helper()
	m, err := resolver.ParseMessage([]byte(`{"type":"track","messageId":"`+id+
		`","userId":"u1","event":"E","timestamp":"2026-11-01T10:00:00Z"}`),
		resolver.Envelope{Source: "s", ReceivedAt: time.Date(2026, 12, 4, 0, 0, 0, 0,
			time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Ingest(context.Background(), []*resolver.Message{m}); err != nil {
		t.Fatal(err)
	}
}

// laEventLinks reads, through the Profile API, the identifiers each event
// of profile 1 carried, by messageId.
func laEventLinks(t *testing.T, db *sqldb.DB) map[string]int {
	t.Helper()
	page, err := resolver.NewProfiles(db).EventPage(context.Background(), 1,
		resolver.EventQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range page {
		out[e.MessageID] = len(e.Identifiers)
	}
	return out
}

// Links of a database migrated to version 15, gone events' included, work
// with the new knit: a new event is numbered above the old ones and shows
// its own identifiers only, and erasing the person takes the gone messages
// (into erased_messages) and every link.
func TestLinksMigratedThenStoredThenErased(t *testing.T) {
	ctx := context.Background()
	db, dialect := openUnmigrated(t)
	laMigrate(t, db, dialect, 14, true)
	laOldPerson(t, db)
	laMigrate(t, db, dialect, 15, true)

	store := laStore(db)
	laIngest(t, store, "m2")
	var id int64
	if err := db.Get(&id, `SELECT id FROM events WHERE message_id = 'm2'`); err != nil {
		t.Fatal(err)
	}
	if id <= 7 {
		t.Errorf("new event id %d, not above the stored 7", id)
	}
	if got, want := laEventLinks(t, db), map[string]int{"m1": 1, "m2": 1}; !reflect.DeepEqual(
		got, want) {
		t.Errorf("identifiers by event: %v, want %v", got, want)
	}

	if _, err := store.Delete(ctx, resolver.Identifier{Type: "user_id", Value: "u1"},
		"test"); err != nil {
		t.Fatal(err)
	}
	var erased []string
	if err := db.Select(&erased, `SELECT message_id FROM erased_messages`); err != nil {
		t.Fatal(err)
	}
	slices.Sort(erased)
	if want := []string{"gone-a", "gone-b", "m1", "m2"}; !reflect.DeepEqual(erased, want) {
		t.Errorf("erased_messages %v, want %v", erased, want)
	}
	if rows := linkRows(t, db, "message_id, type, value"); len(rows) != 0 {
		t.Errorf("links left after erasure: %q", rows)
	}
}

// Rolled back to version 14 after the new knit stored events, an older
// knit's event (numbered by the engine's default) takes an id no event
// has, and migrating up again gives its links that event.
func TestLinksRolledBackThenOldKnitThenUpAgain(t *testing.T) {
	db, dialect := openUnmigrated(t)
	laMigrate(t, db, dialect, 14, true)
	laOldPerson(t, db)
	laMigrate(t, db, dialect, 15, true)
	store := laStore(db)
	for _, id := range []string{"m2", "m3", "m4"} {
		laIngest(t, store, id)
	}
	laMigrate(t, db, dialect, 14, false)
	laExec(t, db,
		`INSERT INTO events (message_id, source, type, profile_id, ts_ms, received_ms,
			raw) VALUES ('old', 's', 'track', 1, 0, 0, '{}')`,
		`INSERT INTO identity_links (message_id, type, value)
			VALUES ('old', 'user_id', 'u1')`)
	if n := laCount(t, db, `SELECT COUNT(*) - COUNT(DISTINCT id) FROM events`); n != 0 {
		t.Fatalf("%d events share an id after an older knit stored one", n)
	}
	laMigrate(t, db, dialect, 15, true)
	if got := laEventLinks(t, db); len(got) != 5 || got["old"] != 1 {
		t.Errorf("identifiers by event: %v, want 5 events, old with 1", got)
	}
}

// laCount runs a query that returns one number.
func laCount(t *testing.T, db *sqldb.DB, query string) int {
	t.Helper()
	var n int
	if err := db.Get(&n, query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// An event put in by hand with an id below 1 (which knit's numbering
// allows for) must not take over the links of a message whose event is
// gone: the migration's negative ids must miss every stored event.
func TestLinksMigrationMissesHandMadeNegativeEventIDs(t *testing.T) {
	db, dialect := openUnmigrated(t)
	laMigrate(t, db, dialect, 14, true)
	laOldPerson(t, db)
	laExec(t, db, `INSERT INTO events (id, message_id, source, type, profile_id, ts_ms,
		received_ms, raw) VALUES (-1, 'hand', 's', 'track', 1, 0, 0, '{}')`)
	laMigrate(t, db, dialect, 15, true)
	n := laCount(t, db, `SELECT COUNT(*) FROM identity_links l
		JOIN events e ON e.id = l.event_id WHERE e.message_id <> l.message_id`)
	if n != 0 {
		t.Errorf("%d links of gone messages name the hand-made event -1: %v", n,
			laEventLinks(t, db))
	}
}
