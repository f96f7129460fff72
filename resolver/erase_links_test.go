package resolver_test

import (
	"context"
	"testing"

	"github.com/knit-cdp/knit/resolver"
)

// A limit keeps a message's identifier off the profile the message lands
// on, so a link can name an identifier on another person's event. Erasing
// the identifier's person must still remove that link, and only it: the
// other person keeps the event and its other links.
func TestEraseRemovesLinksToThePersonOnAnotherPersonsEvent(t *testing.T) {
	db, store := mustResolverStore(t)
	mustIngestEach(t, store,
		`{"type":"identify","messageId":"m1","userId":"u1","anonymousId":"a1"}`,
		`{"type":"identify","messageId":"m2","userId":"u2","anonymousId":"a2"}`,
		// u2's profile may hold one user id: u1 stays with its own person,
		// and this message lands on one of the two profiles only.
		`{"type":"track","messageId":"m3","userId":"u2","anonymousId":"a1",`+
			`"event":"Shared"}`)
	onOther := mustCount(t, db, `SELECT COUNT(*) FROM identity_links
		WHERE event_id IN (SELECT id FROM events WHERE message_id = 'm3')`)
	if onOther != 2 {
		t.Fatalf("m3 carries %d links, want 2", onOther)
	}

	_, err := store.Delete(context.Background(),
		resolver.Identifier{Type: "user_id", Value: "u1"}, "test")
	if err != nil {
		t.Fatal(err)
	}

	for query, want := range map[string]int{
		`SELECT COUNT(*) FROM identity_links WHERE value IN ('u1', 'a1')`: 0,
		`SELECT COUNT(*) FROM events WHERE message_id = 'm1'`:             0,
		// m3 was u2's (the limit kept u1 off its profile): it stays, with
		// its u2 link, beside m2's two.
		`SELECT COUNT(*) FROM events WHERE message_id = 'm3'`:             1,
		`SELECT COUNT(*) FROM identity_links WHERE value IN ('u2', 'a2')`: 3,
	} {
		if n := mustCount(t, db, query); n != want {
			t.Errorf("%s: %d rows, want %d", query, n, want)
		}
	}
}
