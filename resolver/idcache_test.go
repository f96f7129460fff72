package resolver_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// tightRules make limits, windows and caps bite often, so a batch keeps
// meeting the cases where the identity cache must agree with the tables.
func tightRules() resolver.Rules {
	rules := resolver.DefaultRules()
	rules.Limits = map[string]int{resolver.TypeUserID: 1, resolver.TypeEmail: 2}
	rules.DefaultLimit = 3
	rules.Windows = map[string]time.Duration{resolver.TypeAnonymousID: 48 * time.Hour}
	rules.MaxMerges = 2
	rules.MaxIdentifiers = 7
	return rules
}

// churnMessage is a message from small pools of identifiers with a time
// that jumps back and forth, now and then an alias or a deletion.
func churnMessage(rng *rand.Rand, n int) string {
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).
		Add(time.Duration(rng.IntN(30*24)) * time.Hour).Format(time.RFC3339)
	switch rng.IntN(25) {
	case 0:
		return fmt.Sprintf(`{"type":"alias","messageId":"m%d","userId":"u%d",`+
			`"previousId":"a%d","timestamp":%q}`, n, rng.IntN(12), rng.IntN(30), at)
	case 1:
		return fmt.Sprintf(`{"type":"delete","messageId":"m%d","userId":"u%d"}`,
			n, rng.IntN(12))
	case 2, 3, 4, 5, 6, 7, 8, 9, 10, 11:
		// Anonymous browsing ties devices and anonymous ids: merges.
		return fmt.Sprintf(`{"type":"track","messageId":"m%d","anonymousId":"a%d",`+
			`"event":"Viewed","context":{"device":{"id":"d%d","type":"ios"}},`+
			`"timestamp":%q}`, n, rng.IntN(30), 10+rng.IntN(15), at)
	}
	return fmt.Sprintf(`{"type":"identify","messageId":"m%d","userId":"u%d",`+
		`"anonymousId":"a%d","traits":{"email":"p%d@example.com","n":%d},`+
		`"context":{"device":{"id":"d%d","type":"ios"}},"timestamp":%q}`,
		n, rng.IntN(12), rng.IntN(30), rng.IntN(9), n, rng.IntN(8), at)
}

// TestBatchesResolveAsMessagesOneByOne stores one random stream twice,
// message by message and in batches of 60 (which read identities through
// the transaction's cache), and wants the same tables from both.
func TestBatchesResolveAsMessagesOneByOne(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 3))
	var stream []string
	for n := range 600 {
		stream = append(stream, churnMessage(rng, n))
	}

	single := storeStream(t, stream, 1)
	batched := storeStream(t, stream, 60)
	for _, table := range []string{"identities", "events", "merges", "decisions", "traits"} {
		if !reflect.DeepEqual(single[table], batched[table]) {
			t.Errorf("%s differ between one-by-one and batched ingestion:\n"+
				"one by one: %v\nbatched:    %v", table, single[table], batched[table])
		}
	}
	if len(single["merges"]) < 10 || len(single["decisions"]) < 100 {
		t.Fatalf("the stream should merge and decide often: %d merges, %d decisions",
			len(single["merges"]), len(single["decisions"]))
	}
}

// storeStream ingests raws in batches of size into a fresh database and
// returns its identity tables as comparable rows.
func storeStream(t *testing.T, raws []string, size int) map[string][]string {
	t.Helper()
	db := sqltest.MustOpen(t)
	clock := func() time.Time { return time.Date(2026, 12, 4, 15, 8, 0, 0, time.UTC) }
	store := resolver.NewStore(db, tightRules(), clock, nil)
	ingestInBatches(t, store, raws, size)
	return map[string][]string{
		"identities": rowsOf(t, db, `SELECT profile_id, type, value, first_seen_ms,
			last_seen_ms, first_message_id FROM identities ORDER BY type, value`),
		"events": rowsOf(t, db, `SELECT message_id, COALESCE(profile_id, 0)
			FROM events ORDER BY message_id`),
		"merges": rowsOf(t, db, `SELECT survivor, merged, message_id FROM profile_merges ORDER BY id`),
		"decisions": rowsOf(t, db, `SELECT profile_id, kind, message_id, identifier,
			COALESCE(other_profile_id, 0), rule, detail FROM identity_decisions ORDER BY id`),
		"traits": rowsOf(t, db, `SELECT profile_id, key, value, ts_ms FROM traits
			ORDER BY profile_id, key`),
	}
}

// rowsOf renders each row of query as one string.
func rowsOf(t *testing.T, db *sqldb.DB, query string) []string {
	t.Helper()
	rows, err := db.Queryx(query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		values, err := rows.SliceScan()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(values...))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// ingestInBatches stores raws in batches of size, each its own Ingest.
func ingestInBatches(t *testing.T, store *resolver.Store, raws []string, size int) {
	t.Helper()
	for start := 0; start < len(raws); start += size {
		var batch []*resolver.Message
		for _, raw := range raws[start:min(start+size, len(raws))] {
			batch = append(batch, mustParseMessage(t, raw))
		}
		if _, err := store.Ingest(context.Background(), batch); err != nil {
			t.Fatalf("ingest batch at %d: %v", start, err)
		}
	}
}
