package migrations_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
)

// fiBatch stores raws (track messages given as "messageId userId
// anonymousId", or a delete of a userId given as "delete messageId
// userId") in one Ingest.
func fiBatch(t *testing.T, store *resolver.Store, raws ...[3]string) {
	t.Helper()
	env := resolver.Envelope{Source: "s", AllowDelete: true,
		ReceivedAt: time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)}
	var messages []*resolver.Message
	for _, r := range raws {
		raw := fmt.Sprintf(`{"type":"track","messageId":%q,"userId":%q,`+
			`"anonymousId":%q,"event":"E","timestamp":"2026-11-01T10:00:00Z"}`,
			r[0], r[1], r[2])
		if r[0] == "delete" {
			raw = fmt.Sprintf(`{"type":"delete","messageId":%q,"userId":%q}`, r[1], r[2])
		}
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

// fiCheck fails the test unless no row names an erased user (their
// identifiers start with the letters in erased) and every row names a
// stored profile, as the foreign keys migration 17 drops would insist.
func fiCheck(t *testing.T, db *sqldb.DB, step string, erased []string, links int) {
	t.Helper()
	for _, prefix := range erased {
		for _, table := range []string{"identity_links", "identities"} {
			if n := laCount(t, db, `SELECT COUNT(*) FROM `+table+
				` WHERE value LIKE '`+prefix+`%'`); n != 0 {
				t.Errorf("%s: %d rows of %s name %s", step, n, table, prefix)
			}
		}
		if n := laCount(t, db, `SELECT COUNT(*) FROM events WHERE message_id LIKE '`+
			prefix+`%'`); n != 0 {
			t.Errorf("%s: %d events of %s left", step, n, prefix)
		}
	}
	for _, table := range []string{"events", "identities", "traits"} {
		if n := laCount(t, db, `SELECT COUNT(*) FROM `+table+` r WHERE r.profile_id
			IS NOT NULL AND NOT EXISTS (SELECT 1 FROM profiles p WHERE p.id = r.profile_id)`); n !=
			0 {
			t.Errorf("%s: %d rows of %s name no profile", step, n, table)
		}
	}
	if n := laCount(t, db, `SELECT COUNT(*) FROM identity_links`); n != links {
		t.Errorf("%s: %d links, want %d", step, n, links)
	}
}

// A database at version 17 stores and erases people (through the API and
// a delete message inside a batch), rolls back to 15 (PostgreSQL takes its
// foreign keys back over the rows 17 stored), stores and erases there,
// and at 17 again goes on: erasures leave nothing of their person and
// take nothing of the others'.
func TestFewerIndexesUpDownUpStillIngestsAndErases(t *testing.T) {
	ctx := context.Background()
	db, dialect := openUnmigrated(t)
	laMigrate(t, db, dialect, 17, true)
	store := laStore(db)

	fiBatch(t, store, [3]string{"x1", "x-user", "x-anon"}, [3]string{"y1", "y-user", "y-anon"},
		[3]string{"y2", "y-user", "x-anon"}, [3]string{"z1", "z-user", "z-anon"})
	if _, err := store.Delete(ctx, resolver.Identifier{Type: "user_id", Value: "x-user"},
		"test"); err != nil {
		t.Fatal(err)
	}
	// Left: y1's two links, y2's y-user, z1's two.
	fiCheck(t, db, "at 17", []string{"x"}, 5)

	laMigrate(t, db, dialect, 15, false)
	fiBatch(t, store, [3]string{"w1", "w-user", "w-anon"},
		[3]string{"delete", "d1", "y-user"}, [3]string{"w2", "w-user", "z-anon"})
	// Left: z1's two, w1's two, w2's two (z-anon stays z-user's).
	fiCheck(t, db, "at 15", []string{"x", "y"}, 6)

	laMigrate(t, db, dialect, 17, true)
	fiBatch(t, store, [3]string{"v1", "v-user", "v-anon"}, [3]string{"delete", "d2", "w-user"},
		[3]string{"v2", "v-user", "w-anon"})
	// Left: z1's two, v1's two, v2's two (w-anon, held by nobody now, is
	// v-user's: a new identifier for the person).
	fiCheck(t, db, "at 17 again", []string{"x", "y", "w-user", "w1", "w2"}, 6)
	if n := laCount(t, db, `SELECT COUNT(*) FROM erased_messages`); n != 5 {
		t.Errorf("%d erased messages, want 5 (x1 y1 y2 w1 w2 and none other)", n)
	}
	laMigrate(t, db, dialect, 15, false)
	laMigrate(t, db, dialect, 17, true)
}
