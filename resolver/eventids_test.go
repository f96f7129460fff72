package resolver_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/knit-cdp/knit/resolver"
)

// Events whose rows went while their identity links stayed (PostgreSQL's
// retention drops months of events and keeps their links) keep their ids
// taken: a new event is numbered above them and shows only its own
// identifiers.
func TestEventIDsStayAboveLinksOfGoneEvents(t *testing.T) {
	ctx := context.Background()
	db, store := mustResolverStore(t)
	mustIngestEach(t, store,
		`{"type":"track","messageId":"r1","userId":"u1","event":"E",`+
			`"timestamp":"2026-11-01T10:00:00Z"}`,
		`{"type":"track","messageId":"r2","userId":"u2","anonymousId":"a2","event":"E",`+
			`"timestamp":"2026-11-01T10:01:00Z"}`)
	gone := mustCount(t, db, `SELECT id FROM events WHERE message_id = 'r2'`)
	if _, err := db.Exec(`DELETE FROM events WHERE message_id = 'r2'`); err != nil {
		t.Fatal(err)
	}

	mustIngestEach(t, store,
		`{"type":"track","messageId":"r3","userId":"u3","event":"E",`+
			`"timestamp":"2026-11-01T10:02:00Z"}`)
	next := mustCount(t, db, `SELECT id FROM events WHERE message_id = 'r3'`)
	if next <= gone {
		t.Errorf("new event id %d, not above %d, which links still name", next, gone)
	}

	profile, err := resolver.NewProfiles(db).Find(ctx,
		resolver.Identifier{Type: "user_id", Value: "u3"})
	if err != nil {
		t.Fatal(err)
	}
	page, err := resolver.NewProfiles(db).EventPage(ctx, profile,
		resolver.EventQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	want := []resolver.Identifier{{Type: "user_id", Value: "u3"}}
	if len(page) != 1 || !reflect.DeepEqual(page[0].Identifiers, want) {
		t.Errorf("events of u3: %+v, want one carrying only %v", page, want)
	}
}

// Every link names its event by the event's id and messageId alike,
// whether the messages came one at a time or in batches with erasures.
func TestLinksNameTheirEventsByID(t *testing.T) {
	for _, size := range []int{1, 3, len(lkStreamBeforeUnlink)} {
		_, db := lkRun(t, size)
		if n := mustCount(t, db, lkOrphans); n != 0 {
			t.Errorf("batches of %d: %d links name no event of their message", size, n)
		}
		if n := mustCount(t, db, `SELECT COUNT(*) FROM identity_links`); n == 0 {
			t.Errorf("batches of %d: no links at all", size)
		}
	}
}
