package resolver_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// liMisnamed counts links that name a stored event of another message: a
// link on the wrong event, whose identifiers that event would show.
const liMisnamed = `SELECT COUNT(*) FROM identity_links l
	JOIN events e ON e.id = l.event_id WHERE e.message_id <> l.message_id`

// liStore opens a store over db with the tests' fixed clock.
func liStore(db *sqldb.DB) *resolver.Store {
	clock := func() time.Time { return time.Date(2026, 12, 4, 15, 8, 0, 0, time.UTC) }
	return resolver.NewStore(db, resolver.DefaultRules(), clock, nil)
}

// liBatch stores raws in one Ingest and returns the outcomes.
func liBatch(t *testing.T, store *resolver.Store, raws ...string) []resolver.Outcome {
	t.Helper()
	messages := make([]*resolver.Message, len(raws))
	for i, raw := range raws {
		messages[i] = mustParseMessage(t, raw)
	}
	outcomes, err := store.Ingest(context.Background(), messages)
	if err != nil {
		t.Fatalf("ingest batch: %v", err)
	}
	return outcomes
}

// liGone deletes the events of messageIDs by hand, as retention drops a
// month of events and keeps their links.
func liGone(t *testing.T, db *sqldb.DB, messageIDs ...string) {
	t.Helper()
	for _, id := range messageIDs {
		if _, err := db.Exec(db.Rebind(`DELETE FROM events WHERE message_id = ?`),
			id); err != nil {
			t.Fatal(err)
		}
	}
}

// liErase erases the person holding user_id value through the API.
func liErase(t *testing.T, store *resolver.Store, value string) {
	t.Helper()
	_, err := store.Delete(context.Background(),
		resolver.Identifier{Type: "user_id", Value: value}, "test")
	if err != nil {
		t.Fatalf("erase user_id %s: %v", value, err)
	}
}

// liErased lists erased_messages, sorted.
func liErased(t *testing.T, db *sqldb.DB) []string {
	t.Helper()
	return rowsOf(t, db, `SELECT message_id FROM erased_messages ORDER BY 1`)
}

// liTrack is a track message of id carrying the identifiers given as
// JSON members (`"userId":"u1"`), at minute min, from app.
func liTrack(id, ids string, min int, app string) string {
	return fmt.Sprintf(`{"type":"track","messageId":%q,%s,"event":"E",`+
		`"context":{"app":{"name":%q}},"timestamp":"2026-11-01T10:%02d:00Z"}`,
		id, ids, app, min)
}

// liEventIdentifiers reads, through the Profile API, the identifiers each
// event of the profile holding user_id value carried, by messageId.
func liEventIdentifiers(t *testing.T, db *sqldb.DB, value string) map[string][]string {
	t.Helper()
	ctx := context.Background()
	profiles := resolver.NewProfiles(db)
	profile, err := profiles.Find(ctx, resolver.Identifier{Type: "user_id", Value: value})
	if err != nil {
		t.Fatal(err)
	}
	page, err := profiles.EventPage(ctx, profile, resolver.EventQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, e := range page {
		out[e.MessageID] = identifierStrings(e.Identifiers)
	}
	return out
}

// Erasing a person whose events retention dropped puts the gone messages
// that carried the erased identifier in erased_messages and removes their
// links, through the API and through a delete message in a batch alike.
func TestLinkIDsEraseTakesGoneEventsOfTheErasedID(t *testing.T) {
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		store := liStore(db)
		liBatch(t, store, liTrack("m1", `"userId":"u1","anonymousId":"a1"`, 1, "A"),
			liTrack("m2", `"userId":"u1"`, 2, "A"),
			liTrack("m3", `"userId":"u2"`, 3, "A"))
		liGone(t, db, "m1", "m3")
		liErase(t, store, "u1")
		liBatch(t, store, `{"type":"delete","messageId":"d1","userId":"u2"}`,
			liTrack("m3", `"userId":"u2"`, 4, "A"))
		if got, want := liErased(t, db), []string{"m1", "m2", "m3"}; !reflect.DeepEqual(
			got, want) {
			t.Errorf("erased_messages %v, want %v", got, want)
		}
		if n := mustCount(t, db, `SELECT COUNT(*) FROM identity_links`); n != 0 {
			t.Errorf("%d links left after both people were erased", n)
		}
	})
}

// A message whose event retention dropped, and which carried only another
// identifier the erased person held (their anonymousId), is the person's
// message too: erasure must remember its messageId and drop its links.
func TestLinkIDsEraseTakesGoneEventsOfOtherHeldIDs(t *testing.T) {
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		store := liStore(db)
		liBatch(t, store, liTrack("m1", `"userId":"u1","anonymousId":"a1"`, 1, "A"),
			liTrack("m2", `"anonymousId":"a1"`, 2, "A"))
		liGone(t, db, "m2")
		liErase(t, store, "u1")
		if got, want := liErased(t, db), []string{"m1", "m2"}; !reflect.DeepEqual(got, want) {
			t.Errorf("erased_messages %v, want %v", got, want)
		}
		if n := mustCount(t, db, `SELECT COUNT(*) FROM identity_links`); n != 0 {
			t.Errorf("%d links left after the person was erased", n)
		}
	})
}

// After the highest event is erased its id may be handed out again, but
// the new event shows only its own identifiers, in the Profile API and in
// the console's last sightings.
func TestLinkIDsTopIDAfterErasureShowsOnlyItsOwn(t *testing.T) {
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		store := liStore(db)
		liBatch(t, store, liTrack("m1", `"userId":"u1"`, 1, "A"),
			liTrack("m2", `"userId":"u2","anonymousId":"a2"`, 2, "B"))
		liErase(t, store, "u2")
		liBatch(t, store, liTrack("m3", `"userId":"u3"`, 3, "C"))
		got := liEventIdentifiers(t, db, "u3")
		if want := map[string][]string{"m3": {"user_id:u3"}}; !reflect.DeepEqual(got, want) {
			t.Errorf("events of u3: %v, want %v", got, want)
		}
		liCheckLastApp(t, db, "u3", "C")
		if n := mustCount(t, db, lkOrphans); n != 0 {
			t.Errorf("%d links name no event of their message", n)
		}
	})
}

// liCheckLastApp checks that every identifier of the profile holding
// user_id value was last seen from app.
func liCheckLastApp(t *testing.T, db *sqldb.DB, value, app string) {
	t.Helper()
	ctx := context.Background()
	profiles := resolver.NewProfiles(db)
	profile, err := profiles.Find(ctx, resolver.Identifier{Type: "user_id", Value: value})
	if err != nil {
		t.Fatal(err)
	}
	sightings, err := profiles.Sightings(ctx, profile)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sightings {
		if s.LastApp != app {
			t.Errorf("%s:%s last seen from %q, want %q", s.Type, s.Value, s.LastApp, app)
		}
	}
}

// The highest event goes by retention, its person is erased, and new
// messages (one reusing the erased anonymousId) follow: the gone message is
// erased, nothing of it is left, and each new event shows its own links.
func TestLinkIDsGoneTopEventErasedThenNewMessages(t *testing.T) {
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		store := liStore(db)
		liBatch(t, store, liTrack("m1", `"userId":"u1"`, 1, "A"),
			liTrack("m2", `"userId":"u2","anonymousId":"a2"`, 2, "B"))
		liGone(t, db, "m2")
		liErase(t, store, "u2")
		liBatch(t, store, liTrack("m3", `"userId":"u3","anonymousId":"a2"`, 3, "C"),
			liTrack("m4", `"userId":"u3"`, 4, "C"))
		got := liEventIdentifiers(t, db, "u3")
		want := map[string][]string{"m3": {"anonymous_id:a2", "user_id:u3"},
			"m4": {"user_id:u3"}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("events of u3: %v, want %v", got, want)
		}
		if got := liErased(t, db); !reflect.DeepEqual(got, []string{"m2"}) {
			t.Errorf("erased_messages %v, want [m2]", got)
		}
		if n := mustCount(t, db, lkOrphans); n != 0 {
			t.Errorf("%d links name no event of their message", n)
		}
	})
}

// liStream mixes duplicates, erasures of people whose events retention
// dropped, their messageIds sent again and new messages after them.
var liStream = []string{
	liTrack("n1", `"userId":"u5","anonymousId":"a1"`, 10, "B"),
	`{"type":"delete","messageId":"d1","userId":"u2"}`,
	liTrack("m2", `"userId":"u2","anonymousId":"a2"`, 11, "A"),
	liTrack("n2", `"userId":"u6","anonymousId":"a2"`, 12, "C"),
	liTrack("n2", `"userId":"u6","anonymousId":"a2"`, 12, "C"),
	`{"type":"delete","messageId":"d2","userId":"u5"}`,
	liTrack("n1", `"userId":"u5"`, 13, "B"),
	liTrack("n3", `"userId":"u7","anonymousId":"a1"`, 14, "D"),
	`{"type":"delete","messageId":"d3","userId":"u7"}`,
	liTrack("n4", `"userId":"u8","anonymousId":"a3"`, 15, "E"),
}

// liRunStream stores a base, drops the highest events by hand, then
// stores liStream in batches of size, and returns the tables.
func liRunStream(t *testing.T, db *sqldb.DB, size int) map[string][]string {
	t.Helper()
	store := liStore(db)
	liBatch(t, store, liTrack("m1", `"userId":"u1","anonymousId":"a1"`, 1, "A"),
		liTrack("m2", `"userId":"u2","anonymousId":"a2"`, 2, "A"),
		liTrack("m3", `"userId":"u2"`, 3, "A"))
	liGone(t, db, "m2", "m3")
	for start := 0; start < len(liStream); start += size {
		liBatch(t, store, liStream[start:min(start+size, len(liStream))]...)
	}
	if n := mustCount(t, db, liMisnamed); n != 0 {
		t.Errorf("batches of %d: %d links name another message's event", size, n)
	}
	return lkTables(t, db)
}

// Batches mixing duplicates, erasures of people with gone events and their
// messageIds resent leave the same rows, event ids included, as one message
// at a time, on each engine.
func TestLinkIDsBatchedStreamWithGoneEventsMatchesOneByOne(t *testing.T) {
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		want := liRunStream(t, db, 1)
		for _, size := range []int{2, 3, len(liStream)} {
			var fresh *sqldb.DB
			if db.Dialect() == sqldb.Postgres {
				fresh = sqltest.MustOpenPostgres(t)
			} else {
				fresh = sqltest.MustOpenSQLite(t)
			}
			if got := liRunStream(t, fresh, size); !reflect.DeepEqual(got, want) {
				t.Errorf("batches of %d:\n got %v\nwant %v", size, got, want)
			}
		}
	})
}

// SQLite and PostgreSQL store the same stream, with gone events, erasures
// and resent messageIds, as the same rows with the same event ids.
func TestLinkIDsEnginesAgree(t *testing.T) {
	for _, size := range []int{1, len(liStream)} {
		pg := sqltest.MustOpenPostgres(t)
		lite := liRunStream(t, sqltest.MustOpenSQLite(t), size)
		if got := liRunStream(t, pg, size); !reflect.DeepEqual(got, lite) {
			t.Errorf("batches of %d:\npostgres %v\n  sqlite %v", size, got, lite)
		}
	}
}

// A message whose event retention dropped on PostgreSQL, sent again in a
// batch after a delete message, is a duplicate as it is on its own (or
// earlier in the batch): the batch must not fail on event_ids.
func TestLinkIDsPostgresGoneMessageResentAfterDeleteInBatch(t *testing.T) {
	db := sqltest.MustOpenPostgres(t)
	store := liStore(db)
	liBatch(t, store, liTrack("m1", `"userId":"u1"`, 1, "A"),
		liTrack("m9", `"userId":"u9"`, 2, "A"))
	liGone(t, db, "m1")
	alone := liBatch(t, store, liTrack("m1", `"userId":"u1"`, 1, "A"))
	if alone[0].Status != resolver.StatusDuplicate {
		t.Fatalf("resent alone: %s, want duplicate", alone[0].Status)
	}
	messages := []*resolver.Message{
		mustParseMessage(t, `{"type":"delete","messageId":"d1","userId":"u9"}`),
		mustParseMessage(t, liTrack("m1", `"userId":"u1"`, 1, "A")),
	}
	outcomes, err := store.Ingest(context.Background(), messages)
	if err != nil {
		t.Fatalf("batch [delete u9, m1 resent]: %v", err)
	}
	if outcomes[1].Status != resolver.StatusDuplicate {
		t.Errorf("m1 resent after a delete: %s, want duplicate", outcomes[1].Status)
	}
}

// Unlinking an identifier of a family with a gone event, then new
// messages and an erasure: no link ever names another message's event,
// and the erasure takes the gone message too.
func TestLinkIDsUnlinkWithGoneEventThenNewMessages(t *testing.T) {
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		store := liStore(db)
		liBatch(t, store, liTrack("m1", `"userId":"u1","anonymousId":"a1"`, 1, "A"),
			liTrack("m2", `"userId":"u2","anonymousId":"a1"`, 2, "A"),
			liTrack("m3", `"anonymousId":"a1"`, 3, "A"))
		liGone(t, db, "m3")
		_, err := store.Unlink(ctx, resolver.Identifier{Type: "anonymous_id", Value: "a1"},
			"shared")
		if err != nil {
			t.Fatal(err)
		}
		liBatch(t, store, liTrack("m4", `"userId":"u1"`, 4, "B"),
			liTrack("m5", `"userId":"u2","anonymousId":"a5"`, 5, "C"))
		if n := mustCount(t, db, liMisnamed); n != 0 {
			t.Errorf("%d links name another message's event", n)
		}
		got := liEventIdentifiers(t, db, "u2")
		want := map[string][]string{"m2": {"anonymous_id:a1", "user_id:u2"},
			"m5": {"anonymous_id:a5", "user_id:u2"}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("events of u2: %v, want %v", got, want)
		}
		liErase(t, store, "u1")
		if got := liErased(t, db); !slices.Contains(got, "m1") || !slices.Contains(got, "m4") {
			t.Errorf("erased_messages %v, want m1 and m4 among them", got)
		}
	})
}

// Two processes (two pools) storing batches with erasures into one
// PostgreSQL schema at once never give two events one id nor put a link
// on another message's event.
func TestLinkIDsTwoPostgresPoolsWriteAtOnce(t *testing.T) {
	pools := sqltest.MustOpenPostgresPools(t, 2)
	var wg sync.WaitGroup
	errs := make(chan error, len(pools))
	for p, db := range pools {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- liWriteBatches(liStore(db), p)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	db := pools[0]
	if n := mustCount(t, db, `SELECT COUNT(*) - COUNT(DISTINCT id) FROM events`); n != 0 {
		t.Errorf("%d events share an id", n)
	}
	if n := mustCount(t, db, lkOrphans); n != 0 {
		t.Errorf("%d links name no event of their message", n)
	}
	if n := mustCount(t, db, `SELECT COUNT(*) FROM events`); n == 0 {
		t.Error("no events stored")
	}
}

// liWriteBatches stores 15 batches of writer p, each with messages of a
// shared person and one of p's own, erasing p's person now and then.
func liWriteBatches(store *resolver.Store, p int) error {
	env := resolver.Envelope{Source: "test", AllowDelete: true,
		ReceivedAt: time.Date(2026, 12, 4, 15, 8, 0, 0, time.UTC)}
	for b := range 15 {
		raws := []string{
			liTrack(fmt.Sprintf("p%d-b%d-s", p, b), `"userId":"shared","anonymousId":"as"`,
				b%60, "S"),
			liTrack(fmt.Sprintf("p%d-b%d-o", p, b),
				fmt.Sprintf(`"userId":"own%d","anonymousId":"a%d-%d"`, p, p, b), b%60, "O"),
		}
		if b%4 == 3 {
			raws = append(raws, fmt.Sprintf(
				`{"type":"delete","messageId":"p%d-b%d-d","userId":"own%d"}`, p, b, p))
		}
		var messages []*resolver.Message
		for _, raw := range raws {
			m, err := resolver.ParseMessage([]byte(raw), env)
			if err != nil {
				return err
			}
			messages = append(messages, m)
		}
		if _, err := store.Ingest(context.Background(), messages); err != nil {
			return fmt.Errorf("writer %d batch %d: %w", p, b, err)
		}
	}
	return nil
}

// liIngestAt stores raws in one Ingest as received at at.
func liIngestAt(t *testing.T, store *resolver.Store, at time.Time, raws ...string) {
	t.Helper()
	env := resolver.Envelope{Source: "test", ReceivedAt: at, AllowDelete: true}
	var messages []*resolver.Message
	for _, raw := range raws {
		m, err := resolver.ParseMessage([]byte(raw), env)
		if err != nil {
			t.Fatal(err)
		}
		messages = append(messages, m)
	}
	if _, err := store.Ingest(context.Background(), messages); err != nil {
		t.Fatal(err)
	}
}

// PostgreSQL's retention drops the month holding the highest events and
// keeps their links: new events are numbered above them and show their own
// identifiers, and erasing the people of the dropped month, by the API
// and by a delete message, takes their messages and links.
func TestLinkIDsPostgresRetentionDropThenEraseAndStore(t *testing.T) {
	ctx := context.Background()
	db := sqltest.MustOpenPostgres(t)
	liExec(t, db, `SELECT knit_event_month('2026-01-01T00:00:00Z')`)
	store := liStore(db)
	december, january := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC)
	liIngestAt(t, store, december, liTrack("n1", `"userId":"u3"`, 1, "A"))
	liIngestAt(t, store, january, liTrack("m1", `"userId":"u1","anonymousId":"a1"`, 2, "A"),
		liTrack("m2", `"userId":"u2"`, 3, "A"))
	dropped, err := resolver.MaintainEvents(ctx, db, december, 6)
	if err != nil || !slices.Contains(dropped, "events_2026_01") {
		t.Fatalf("retention dropped %v, %v; want events_2026_01", dropped, err)
	}

	liIngestAt(t, store, december, liTrack("n2", `"userId":"u4","anonymousId":"a4"`, 4, "B"))
	if got := liEventIdentifiers(t, db, "u4"); !reflect.DeepEqual(got,
		map[string][]string{"n2": {"anonymous_id:a4", "user_id:u4"}}) {
		t.Errorf("events of u4: %v", got)
	}
	liErase(t, store, "u1")
	liIngestAt(t, store, december, `{"type":"delete","messageId":"d1","userId":"u2"}`,
		liTrack("n3", `"userId":"u5"`, 5, "C"))
	if got := liEventIdentifiers(t, db, "u5"); !reflect.DeepEqual(got,
		map[string][]string{"n3": {"user_id:u5"}}) {
		t.Errorf("events of u5: %v", got)
	}
	if got := liErased(t, db); !reflect.DeepEqual(got, []string{"m1", "m2"}) {
		t.Errorf("erased_messages %v, want [m1 m2]", got)
	}
	if n := mustCount(t, db, lkOrphans); n != 0 {
		t.Errorf("%d links name no event of their message", n)
	}
}

// liExec runs statements on db, failing the test on the first error.
func liExec(t *testing.T, db *sqldb.DB, stmts ...string) {
	t.Helper()
	for _, stmt := range stmts {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
}
