package resolver_test

import (
	"context"
	"strings"
	"testing"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
)

// sharedTablet is two strangers on one in-store tablet, fused by its
// device id because neither signed in.
var sharedTablet = []string{
	`{"type":"identify","messageId":"m1","anonymousId":"a1",` +
		`"timestamp":"2026-11-01T10:00:00Z","traits":{"email":"jane@x.test","plan":"pro"},` +
		`"context":{"device":{"id":"tablet","type":"ios"}}}`,
	`{"type":"track","messageId":"m2","anonymousId":"a2","event":"Product Added",` +
		`"timestamp":"2026-11-01T11:00:00Z","properties":{"product_id":"p9"},` +
		`"context":{"device":{"id":"tablet","type":"ios"}}}`,
	`{"type":"identify","messageId":"m3","anonymousId":"a2",` +
		`"timestamp":"2026-11-01T12:00:00Z","traits":{"plan":"free"}}`,
}

func mustCount(t *testing.T, db *sqldb.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.Get(&n, query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestUnlinkSplitsAProfileFusedByABadIdentifier(t *testing.T) {
	db, store := mustResolverStore(t)
	mustIngestEach(t, store, sharedTablet...)
	if got := len(mustIdentities(t, db)); got != 1 {
		t.Fatalf("before: %d profiles, want the strangers fused into 1", got)
	}

	result, err := store.Unlink(context.Background(),
		resolver.Identifier{Type: "ios.id", Value: "tablet"}, "in-store tablet")
	if err != nil {
		t.Fatal(err)
	}
	if len(result.Profiles) != 2 || result.Events != 3 {
		t.Fatalf("unlink result %+v, want 3 events re-resolved into 2 profiles", result)
	}

	got := map[string]bool{}
	for _, ids := range mustIdentities(t, db) {
		got[strings.Join(ids, " ")] = true
	}
	if !got["anonymous_id:a1 email:jane@x.test"] || !got["anonymous_id:a2"] || len(got) != 2 {
		t.Errorf("after: %v", got)
	}
	events := mustEventProfiles(t, db)
	if events["m1"] == events["m2"] || events["m2"] != events["m3"] || events["m1"] == 0 {
		t.Errorf("events re-attributed %v, want m1 apart from m2 and m3", events)
	}

	profiles := resolver.NewProfiles(db)
	jane, _ := profiles.Find(context.Background(),
		resolver.Identifier{Type: "email", Value: "jane@x.test"})
	traits, err := profiles.Traits(context.Background(), jane)
	if err != nil || len(traits) != 2 || string(traits[1].Value) != `"pro"` {
		t.Errorf("Jane's traits %v (err %v), want her own plan back", traits, err)
	}
	history, _ := profiles.History(context.Background(), jane)
	if last := history[len(history)-1].Explain(); !strings.Contains(last,
		"after ios.id:tablet was unlinked (in-store tablet)") {
		t.Errorf("Jane's history ends %q", last)
	}
	if n := mustCount(t, db, `SELECT COUNT(*) FROM profiles
		WHERE retired_ms IS NOT NULL`); n != 1 {
		t.Errorf("%d retired profiles, want the fused one", n)
	}

	// The tablet never joins anyone again.
	mustIngestEach(t, store, `{"type":"track","messageId":"m4","anonymousId":"a1",`+
		`"event":"E","context":{"device":{"id":"tablet","type":"ios"}}}`)
	if n := mustCount(t, db, `SELECT COUNT(*) FROM identities WHERE value = 'tablet'`); n != 0 {
		t.Errorf("the unlinked tablet id came back on %d profiles", n)
	}
}

func TestUnlinkOfAnUnknownIdentifierIsNotFound(t *testing.T) {
	_, store := mustResolverStore(t)
	_, err := store.Unlink(context.Background(),
		resolver.Identifier{Type: "email", Value: "nobody@x.test"}, "")
	if resolver.ErrorCode(err) != resolver.ENotFound {
		t.Errorf("Unlink of an unknown identifier: %v, want not found", err)
	}
}

func TestDeleteErasesAPersonAndKeepsNoPersonalData(t *testing.T) {
	db, store := mustResolverStore(t)
	mustIngestEach(t, store, sharedTablet...)
	mustIngestEach(t, store, `{"type":"track","messageId":"other","userId":"u9","event":"E"}`)

	result, err := store.Delete(context.Background(),
		resolver.Identifier{Type: "email", Value: "jane@x.test"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if result.Events != 3 || result.Identifiers != 4 {
		t.Errorf("delete result %+v, want 3 events and 4 identifiers", result)
	}
	for _, table := range []string{"events", "identities", "identity_links",
		"identity_decisions"} {
		query := `SELECT COUNT(*) FROM ` + table + ` WHERE ` +
			map[string]string{
				"events": "message_id <> 'other'", "identities": "value <> 'u9'",
				"identity_links":     "message_id <> 'other'",
				"identity_decisions": "message_id <> 'other'",
			}[table]
		if n := mustCount(t, db, query); n != 0 {
			t.Errorf("%d rows of the deleted person left in %s", n, table)
		}
	}
	if n := mustCount(t, db, `SELECT COUNT(*) FROM traits`); n != 0 {
		t.Errorf("%d traits left", n)
	}
	var record string
	if err := db.Get(&record, `SELECT profile_id || ' ' || events_deleted || ' ' ||
		identifiers_deleted FROM profile_deletions`); err != nil || record != "1 3 4" {
		t.Errorf("deletion record %q (err %v)", record, err)
	}
}

func TestSegmentDeleteMessageErasesTheUser(t *testing.T) {
	db, store := mustResolverStore(t)
	outcomes := mustIngestEach(t, store,
		`{"type":"identify","messageId":"m1","userId":"u1","traits":{"email":"a@b.test"}}`,
		`{"type":"delete","messageId":"d1","userId":"u1"}`,
		`{"type":"delete","messageId":"d2","userId":"never-seen"}`)
	if outcomes[1].Status != resolver.StatusDeleted || outcomes[2].Status != resolver.StatusDeleted {
		t.Errorf("outcomes %+v, want both deletions done", outcomes)
	}
	if n := mustCount(t, db, `SELECT COUNT(*) FROM events`); n != 0 {
		t.Errorf("%d events left, want none (the delete request is not an event)", n)
	}
}

func TestAliasCannotBringBackABlockedOrUnlinkedIdentifier(t *testing.T) {
	db, store := mustResolverStore(t)
	mustIngestEach(t, store,
		`{"type":"track","messageId":"m1","userId":"u1","anonymousId":"anonX","event":"E"}`)
	if _, err := store.Unlink(context.Background(),
		resolver.Identifier{Type: "anonymous_id", Value: "anonX"}, ""); err != nil {
		t.Fatal(err)
	}
	mustIngestEach(t, store, `{"type":"alias","messageId":"m2","userId":"u1","previousId":"anonX"}`)
	if n := mustCount(t, db, `SELECT COUNT(*) FROM identities WHERE value = 'anonX'`); n != 0 {
		t.Errorf("an alias re-attached the unlinked anonX")
	}
}

func TestDeleteAfterUnlinkLeavesNoTraceOfThePerson(t *testing.T) {
	db, store := mustResolverStore(t)
	mustIngestEach(t, store, sharedTablet...)
	mustIngestEach(t, store,
		`{"type":"identify","messageId":"m4","userId":"u1","anonymousId":"a1",`+
			`"traits":{"email":"jane@x.test"}}`,
		`{"type":"track","messageId":"m5","userId":"u1","event":"E"}`)
	ctx := context.Background()
	if _, err := store.Unlink(ctx, resolver.Identifier{Type: "ios.id", Value: "tablet"},
		"jane@x.test's tablet"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Unlink(ctx, resolver.Identifier{Type: "user_id", Value: "u1"}, ""); err != nil {
		t.Fatal(err)
	}

	// Segment's request names the user id knit no longer keeps on a profile.
	outcomes := mustIngestEach(t, store, `{"type":"delete","messageId":"d1","userId":"u1"}`)
	if outcomes[0].Status != resolver.StatusDeleted {
		t.Fatalf("outcome %+v", outcomes[0])
	}
	for _, query := range []string{
		`SELECT COUNT(*) FROM events WHERE raw LIKE '%u1%' OR raw LIKE '%jane%'`,
		`SELECT COUNT(*) FROM identities WHERE value IN ('u1', 'jane@x.test', 'a1')`,
		`SELECT COUNT(*) FROM identity_links WHERE value IN ('u1', 'jane@x.test', 'a1')`,
		`SELECT COUNT(*) FROM identity_decisions WHERE identifier LIKE '%u1%'
		   OR identifier LIKE '%jane%' OR detail LIKE '%jane%' OR detail LIKE '%u1%'`,
		`SELECT COUNT(*) FROM identity_blocks WHERE value = 'u1' OR reason LIKE '%jane%'`,
		`SELECT COUNT(*) FROM traits t JOIN identities i ON i.profile_id = t.profile_id
		   WHERE i.value = 'a1'`,
	} {
		if n := mustCount(t, db, query); n != 0 {
			t.Errorf("%d rows left: %s", n, query)
		}
	}
	if n := mustCount(t, db, `SELECT COUNT(*) FROM profile_deletions`); n != 1 {
		t.Errorf("%d deletion records, want 1", n)
	}
}

func TestARetryAfterADeletionDoesNotBringThePersonBack(t *testing.T) {
	db, store := mustResolverStore(t)
	mustIngestEach(t, store, sharedTablet...)
	if _, err := store.Delete(context.Background(),
		resolver.Identifier{Type: "email", Value: "jane@x.test"}, "test"); err != nil {
		t.Fatal(err)
	}
	outcomes := mustIngestEach(t, store, sharedTablet...)
	for _, o := range outcomes {
		if o.Status != resolver.StatusDuplicate {
			t.Errorf("retried %s: %s, want duplicate", o.MessageID, o.Status)
		}
	}
	if n := mustCount(t, db, `SELECT COUNT(*) FROM events`); n != 0 {
		t.Errorf("%d events after the retry", n)
	}
}

func TestUnlinkAlsoRejoinsWhatTheBadIdentifierKeptApart(t *testing.T) {
	db, store := mustResolverStore(t)
	mustIngestEach(t, store,
		`{"type":"track","messageId":"m1","userId":"u1","event":"E",`+
			`"context":{"device":{"id":"tablet","type":"ios"}}}`,
		`{"type":"track","messageId":"m2","anonymousId":"a9","event":"E",`+
			`"context":{"device":{"id":"tablet","type":"ios"}}}`,
		// a9 is wrongly u1's through the tablet, so u9 is kept apart from it.
		`{"type":"identify","messageId":"m3","userId":"u9","anonymousId":"a9"}`)

	if _, err := store.Unlink(context.Background(),
		resolver.Identifier{Type: "ios.id", Value: "tablet"}, ""); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, ids := range mustIdentities(t, db) {
		got[strings.Join(ids, " ")] = true
	}
	if !got["user_id:u1"] || !got["anonymous_id:a9 user_id:u9"] || len(got) != 2 {
		t.Errorf("after unlink: %v, want u1 alone and a9 with u9", got)
	}
}
