package resolver_test

import (
	"context"
	"testing"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
)

// Erasing user u1 must not take the history of user u12, whose created
// entry lists "user_id:u12": the identifier has to stand whole in it.
// (Found by the attack in erase_attack_test.go; it deleted the entry.)
func TestEraseKeepsHistoryThatNamesALongerValue(t *testing.T) {
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		store := liStore(db)
		liBatch(t, store, eaTrack("p1", "u1", "a1", 1), eaTrack("q1", "u12", "a12", 2))
		const query = `SELECT COUNT(*) FROM identity_decisions WHERE message_id = 'q1'`
		before := mustCount(t, db, query)
		if before == 0 {
			t.Fatal("u12's message left no history entry")
		}

		liErase(t, store, "u1")

		if after := mustCount(t, db, query); after != before {
			t.Errorf("u12's history: %d entries before erasing u1, %d after", before, after)
		}
		if n := mustCount(t, db, `SELECT COUNT(*) FROM identity_decisions
			WHERE detail LIKE '%user_id:u1,%' OR identifier = 'user_id:u1'`); n != 0 {
			t.Errorf("%d history entries still name user_id:u1", n)
		}
	})
}

// A delivery carries identifiers as JSON strings: erasing u1 takes u1's
// deliveries and leaves u12's.
func TestEraseKeepsDeliveriesOfALongerValue(t *testing.T) {
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		store := liStore(db)
		liBatch(t, store, eaTrack("p1", "u1", "a1", 1), eaTrack("q1", "u12", "a12", 2))
		for i, user := range []string{"u1", "u12"} {
			_, err := db.Exec(db.Rebind(`INSERT INTO outbox (audience, destination,
				message_id, body, created_ms, next_attempt_ms) VALUES ('a', 'd', ?, ?, 0, 0)`),
				"delivery-"+user, `{"type":"identify","userId":"`+user+`","n":`+
					string(rune('0'+i))+`}`)
			if err != nil {
				t.Fatal(err)
			}
		}

		liErase(t, store, "u1")

		var left []string
		if err := db.Select(&left, `SELECT message_id FROM outbox`); err != nil {
			t.Fatal(err)
		}
		if len(left) != 1 || left[0] != "delivery-u12" {
			t.Errorf("deliveries left after erasing u1: %v, want [delivery-u12]", left)
		}
	})
}

// An operator's unlink reason that mentions the erased value is blanked;
// the entry, about another person's identifier, stays.
func TestEraseBlanksAnUnlinkReasonThatMentionsTheValue(t *testing.T) {
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		store := liStore(db)
		liBatch(t, store, eaTrack("p1", "u1", "a1", 1), eaTrack("q1", "u2", "a2", 2))
		_, err := store.Unlink(context.Background(),
			resolver.Identifier{Type: "anonymous_id", Value: "a2"}, "shared with u1 at the till")
		if err != nil {
			t.Fatal(err)
		}
		const query = `SELECT COUNT(*) FROM identity_decisions
			WHERE identifier = 'anonymous_id:a2' AND kind = 'unlinked'`
		if n := mustCount(t, db, query); n != 1 {
			t.Fatalf("%d unlink entries for a2, want 1", n)
		}

		liErase(t, store, "u1")

		if n := mustCount(t, db, query+` AND detail = 'erased on request'`); n != 1 {
			t.Errorf("the unlink entry for a2 was not kept with its reason blanked")
		}
		if n := mustCount(t, db, `SELECT COUNT(*) FROM identity_decisions
			WHERE detail LIKE '%u1%'`); n != 0 {
			t.Errorf("%d history entries still mention u1", n)
		}
	})
}
