package resolver_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
)

// A batch numbers its new profiles itself, from the highest id stored, in
// the order its messages create them; a profile inserted afterwards with
// the table's default id (by hand, or by an older knit) takes the next one
// instead of colliding.
func TestNewProfilesCountUpFromTheHighestStoredID(t *testing.T) {
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		if _, err := db.ExecContext(ctx, `INSERT INTO profiles (id, created_ms, updated_ms)
			VALUES (10, 0, 0)`); err != nil {
			t.Fatal(err)
		}
		store := resolver.NewStore(db, resolver.DefaultRules(),
			func() time.Time { return fixedNow }, nil)

		got := profilesOf(t, store, "u1", "u2", "u1", "u3")
		if want := []int64{11, 12, 11, 13}; !slices.Equal(got, want) {
			t.Fatalf("profiles of u1 u2 u1 u3: got %v, want %v", got, want)
		}

		var byHand int64
		err := db.GetContext(ctx, &byHand, `INSERT INTO profiles (created_ms, updated_ms)
			VALUES (0, 0) RETURNING id`)
		if err != nil {
			t.Fatalf("insert a profile with the default id: %v", err)
		}
		if byHand != 14 {
			t.Errorf("a profile inserted by hand got id %d, want 14", byHand)
		}
		if got := profilesOf(t, store, "u4"); got[0] != 15 {
			t.Errorf("the next batch's profile got id %d, want 15", got[0])
		}
	})
}

// profilesOf stores one identify a user in one batch and returns the
// profile each landed on.
func profilesOf(t *testing.T, store *resolver.Store, users ...string) []int64 {
	t.Helper()
	messages := make([]*resolver.Message, len(users))
	for i, user := range users {
		messages[i] = mustParseMessage(t, fmt.Sprintf(`{"type":"identify",
			"userId":%q,"messageId":"%s-%d-%d"}`, user, user, i, len(users)))
	}
	outcomes, err := store.Ingest(context.Background(), messages)
	if err != nil {
		t.Fatal(err)
	}
	profiles := make([]int64, len(outcomes))
	for i, o := range outcomes {
		profiles[i] = o.ProfileID
	}
	return profiles
}
