package resolver_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
)

// conflictingMessage draws identifiers from small pools so that concurrent
// messages keep colliding: shared devices, shared anonymous ids, one email
// for several user ids.
func conflictingMessage(rng *rand.Rand, id string) string {
	return fmt.Sprintf(`{"type":"identify","messageId":%q,"userId":"u%d",`+
		`"anonymousId":"a%d","traits":{"email":"p%d@example.com","n":%d},`+
		`"context":{"device":{"id":"d%d","type":"ios"}}}`,
		id, rng.IntN(20), rng.IntN(40), rng.IntN(15), rng.IntN(1000), rng.IntN(10))
}

func TestConcurrentConflictingIngestKeepsInvariants(t *testing.T) {
	db, store := mustResolverStore(t)
	const writers, batches, perBatch = 8, 20, 10

	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for b := range batches {
				var batch []*resolver.Message
				for i := range perBatch {
					// Every writer also repeats ids of others: duplicates race.
					id := fmt.Sprintf("m-%d-%d", rng.IntN(writers), b*perBatch+i)
					batch = append(batch, mustParseMessage(t, conflictingMessage(rng, id)))
				}
				if _, err := store.Ingest(context.Background(), batch); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	checkIdentityInvariants(t, db)
}

func checkIdentityInvariants(t *testing.T, db *sqldb.DB) {
	t.Helper()
	checks := []struct {
		what  string
		query string
	}{
		{"identifiers on merged profiles", `SELECT COUNT(*) FROM identities i
			JOIN profiles p ON p.id = i.profile_id WHERE p.merged_into IS NOT NULL`},
		{"events on merged profiles", `SELECT COUNT(*) FROM events e
			JOIN profiles p ON p.id = e.profile_id WHERE p.merged_into IS NOT NULL`},
		{"traits on merged profiles", `SELECT COUNT(*) FROM traits t
			JOIN profiles p ON p.id = t.profile_id WHERE p.merged_into IS NOT NULL`},
		{"profiles with two user_ids", `SELECT COUNT(*) FROM (SELECT profile_id
			FROM identities WHERE type = 'user_id' GROUP BY profile_id
			HAVING COUNT(*) > 1) grouped`},
		{"profiles over five of a type", `SELECT COUNT(*) FROM (SELECT profile_id
			FROM identities GROUP BY profile_id, type HAVING COUNT(*) > 5) grouped`},
		{"messageIds stored twice", `SELECT COUNT(*) FROM (SELECT message_id
			FROM events GROUP BY message_id HAVING COUNT(*) > 1) twice`},
	}
	for _, c := range checks {
		var n int
		if err := db.Get(&n, c.query); err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		if n != 0 {
			t.Errorf("%d %s", n, c.what)
		}
	}
}
