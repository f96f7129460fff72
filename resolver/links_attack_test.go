package resolver_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
)

// lkOrphans counts identity links that name no stored event, or an event
// of another message.
const lkOrphans = `SELECT COUNT(*) FROM identity_links l WHERE NOT EXISTS
	(SELECT 1 FROM events e WHERE e.id = l.event_id AND e.message_id = l.message_id)`

// lkStreamBeforeUnlink and lkStreamAfterUnlink mix erasures, a message
// stored and erased in one batch, its messageId sent again, and an erasure
// of someone knit never saw, around an unlink of anonymous_id a1.
var (
	lkStreamBeforeUnlink = []string{
		`{"type":"identify","messageId":"m1","userId":"u1","anonymousId":"a1",` +
			`"timestamp":"2026-11-01T10:00:00Z","traits":{"email":"one@x.test"}}`,
		`{"type":"track","messageId":"m2","anonymousId":"a1","event":"E",` +
			`"timestamp":"2026-11-01T10:01:00Z"}`,
		`{"type":"track","messageId":"m3","userId":"u2","anonymousId":"a2","event":"E",` +
			`"timestamp":"2026-11-01T10:02:00Z"}`,
		`{"type":"delete","messageId":"d1","userId":"u2"}`,
		`{"type":"track","messageId":"m3","userId":"u2","anonymousId":"a2","event":"E",` +
			`"timestamp":"2026-11-01T10:03:00Z"}`,
		`{"type":"track","messageId":"m4","userId":"u3","anonymousId":"a2","event":"E",` +
			`"timestamp":"2026-11-01T10:04:00Z"}`,
		`{"type":"delete","messageId":"d2","userId":"nobody"}`,
	}
	lkStreamAfterUnlink = []string{
		`{"type":"track","messageId":"m5","userId":"u1","anonymousId":"a1","event":"E",` +
			`"timestamp":"2026-11-01T10:05:00Z"}`,
		`{"type":"delete","messageId":"d3","userId":"u1"}`,
		`{"type":"track","messageId":"m6","anonymousId":"a1","event":"E",` +
			`"timestamp":"2026-11-01T10:06:00Z"}`,
		`{"type":"track","messageId":"m7","userId":"u4","event":"E",` +
			`"timestamp":"2026-11-01T10:07:00Z"}`,
	}
)

// lkTables reads the links (an orphan shows with no event id) and the
// events with their ids.
func lkTables(t *testing.T, db *sqldb.DB) map[string][]string {
	t.Helper()
	return map[string][]string{
		"links": rowsOf(t, db, `SELECT l.message_id, COALESCE(e.id, 0), l.type,
			l.value FROM identity_links l LEFT JOIN events e ON e.id = l.event_id
			ORDER BY 1, 3, 4`),
		"events": rowsOf(t, db, `SELECT id, message_id, COALESCE(profile_id, 0)
			FROM events ORDER BY id`),
		"erased": rowsOf(t, db, `SELECT message_id FROM erased_messages ORDER BY 1`),
		"blocks": rowsOf(t, db, `SELECT type, value FROM identity_blocks ORDER BY 1, 2`),
	}
}

// lkRun stores the stream in batches of size with the unlink between its
// halves, and returns the tables.
func lkRun(t *testing.T, size int) (map[string][]string, *sqldb.DB) {
	t.Helper()
	db, store := mustResolverStore(t)
	ingestInBatches(t, store, lkStreamBeforeUnlink, size)
	_, err := store.Unlink(context.Background(),
		resolver.Identifier{Type: "anonymous_id", Value: "a1"}, "shared")
	if err != nil {
		t.Fatal(err)
	}
	ingestInBatches(t, store, lkStreamAfterUnlink, size)
	if n := mustCount(t, db, lkOrphans); n != 0 {
		t.Errorf("batches of %d: %d links name an event that is not stored", size, n)
	}
	return lkTables(t, db), db
}

// Erasures, a resent erased messageId and an unlink mixed into batches
// leave the same links, by raw event id, as one message at a time, and
// never a link without its event.
func TestLinksBatchedEraseAndUnlinkMatchOneByOne(t *testing.T) {
	want, _ := lkRun(t, 1)
	for _, size := range []int{3, len(lkStreamBeforeUnlink)} {
		got, _ := lkRun(t, size)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("batches of %d:\n got %v\nwant %v", size, got, want)
		}
	}
}

// A new event that takes the id of an erased one (SQLite reuses the
// largest rowid) carries only its own identifiers on the Profile API, and
// erasing a person leaves no link of theirs.
func TestLinksOfAReusedEventIDAreOnlyTheNewEvents(t *testing.T) {
	ctx := context.Background()
	db, store := mustResolverStore(t)
	mustIngestEach(t, store,
		`{"type":"track","messageId":"k1","userId":"u1","anonymousId":"a1","event":"E",`+
			`"timestamp":"2026-11-01T10:00:00Z"}`,
		`{"type":"track","messageId":"k2","userId":"u2","anonymousId":"a2","event":"E",`+
			`"timestamp":"2026-11-01T10:01:00Z","context":{"device":{"id":"d2","type":"ios"}}}`)
	erasedID := mustCount(t, db, `SELECT id FROM events WHERE message_id = 'k2'`)
	if _, err := store.Delete(ctx, resolver.Identifier{Type: "user_id", Value: "u2"},
		"test"); err != nil {
		t.Fatal(err)
	}
	if n := mustCount(t, db, db.Rebind(`SELECT COUNT(*) FROM identity_links
		WHERE value IN ('u2', 'a2', 'd2') OR message_id = ?`), "k2"); n != 0 {
		t.Errorf("%d links of the erased message left", n)
	}
	mustIngestEach(t, store,
		`{"type":"track","messageId":"k3","userId":"u3","event":"E",`+
			`"timestamp":"2026-11-01T10:02:00Z"}`)
	newID := mustCount(t, db, `SELECT id FROM events WHERE message_id = 'k3'`)
	t.Logf("erased event id %d, new event id %d", erasedID, newID)

	profiles := resolver.NewProfiles(db)
	profile, err := profiles.Find(ctx, resolver.Identifier{Type: "user_id", Value: "u3"})
	if err != nil {
		t.Fatal(err)
	}
	page, err := profiles.EventPage(ctx, profile, resolver.EventQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	want := []resolver.Identifier{{Type: "user_id", Value: "u3"}}
	if len(page) != 1 || !reflect.DeepEqual(page[0].Identifiers, want) {
		t.Errorf("events of u3: %+v, want one carrying only %v", page, want)
	}
}
