package resolver_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// adversarialRules are tightRules with a custom identifier type and a
// blocked value, so a batch meets those paths too.
func adversarialRules() resolver.Rules {
	rules := tightRules()
	rules.Custom = []resolver.CustomType{{Type: "loyalty", Keys: []string{"loyaltyId"},
		Normaliser: "lower"}}
	rules.BlockedValues = []string{"u-blocked", "L-BLOCKED"}
	return rules
}

// fewTimes are the only times most adversarial messages carry, so that
// writes of one field often tie; some are 3 days apart, past the
// anonymous_id window of tightRules.
var fewTimes = []string{"2026-11-01T10:00:00Z", "2026-11-01T10:00:00Z",
	"2026-11-01T11:00:00Z", "2026-11-04T10:00:00Z", "2026-11-08T09:00:00Z"}

// adversarialMessage is a message of a stream built to corner the batch
// paths: tied times, nested and removed traits, keys that clash once
// cleaned, aliases, deletions, custom and blocked identifiers, and
// messageIds used again.
func adversarialMessage(rng *rand.Rand, n int) string {
	id := fmt.Sprintf("m%d", n)
	if n > 0 && rng.IntN(8) == 0 {
		id = fmt.Sprintf("m%d", rng.IntN(n)) // a retry, perhaps of an erased one
	}
	at := fewTimes[rng.IntN(len(fewTimes))]
	user := fmt.Sprintf("u%d", rng.IntN(6))
	if rng.IntN(10) == 0 {
		user = "u-blocked"
	}
	anon := fmt.Sprintf("a%d", rng.IntN(10))
	if rng.IntN(10) == 0 {
		anon = "undefined" // junk: some messages are left with no identifier
	}
	switch rng.IntN(20) {
	case 0:
		return fmt.Sprintf(`{"type":"delete","messageId":%q,"userId":%q}`, id, user)
	case 1, 2:
		previous := fmt.Sprintf("a%d", rng.IntN(10))
		if rng.IntN(2) == 0 {
			previous = fmt.Sprintf("u%d", rng.IntN(6))
		}
		return fmt.Sprintf(`{"type":"alias","messageId":%q,"userId":%q,`+
			`"previousId":%q,"timestamp":%q}`, id, user, previous, at)
	case 3, 4, 5, 6, 7:
		return fmt.Sprintf(`{"type":"track","messageId":%q,"anonymousId":%q,`+
			`"event":"Viewed","properties":{"loyaltyId":"L%d"},"timestamp":%q}`,
			id, anon, rng.IntN(8), at)
	}
	return fmt.Sprintf(`{"type":"identify","messageId":%q,"userId":%q,`+
		`"anonymousId":%q,"traits":%s,"timestamp":%q}`,
		id, user, anon, adversarialTraits(rng, n), at)
}

// adversarialTraits sets a few fields, some nested, some null, some under
// keys that read the same once control characters are dropped.
func adversarialTraits(rng *rand.Rand, n int) string {
	options := []string{
		fmt.Sprintf(`"plan":"p%d"`, n),
		fmt.Sprintf(`"pl\u0001an":"q%d"`, n),
		`"plan":null`,
		fmt.Sprintf(`"address":{"city":"c%d","geo":{"lat":%d}}`, n, n),
		`"address":null`,
		fmt.Sprintf(`"address":{"city":null,"zip":"z%d"}`, n),
		fmt.Sprintf(`"address":"flat %d"`, n),
		fmt.Sprintf(`"email":" P%d@Example.COM "`, rng.IntN(5)),
		fmt.Sprintf(`"loyaltyId":"l%d"`, rng.IntN(8)),
		`"loyaltyId":"L-BLOCKED"`,
		`"tags":[1,2]`,
		`"empty":{}`,
	}
	var picked []string
	for _, o := range options {
		if rng.IntN(4) == 0 {
			picked = append(picked, o)
		}
	}
	return "{" + strings.Join(picked, ",") + "}"
}

// snapshot is every table ingestion writes, as comparable rows.
func snapshot(t *testing.T, db *sqldb.DB) map[string][]string {
	t.Helper()
	queries := map[string]string{
		"identities": `SELECT profile_id, type, value, first_seen_ms, last_seen_ms,
			first_message_id, source, app, device FROM identities ORDER BY type, value`,
		"events": `SELECT message_id, COALESCE(profile_id, 0), type, ts_ms, properties
			FROM events ORDER BY message_id`,
		"merges":   `SELECT survivor, merged, message_id FROM profile_merges ORDER BY id`,
		"profiles": `SELECT id, COALESCE(merged_into, 0) FROM profiles ORDER BY id`,
		"links":    `SELECT message_id, type, value FROM identity_links ORDER BY 1, 2, 3`,
		"erased":   `SELECT message_id FROM erased_messages ORDER BY message_id`,
		"deletions": `SELECT profile_id, events_deleted, identifiers_deleted
			FROM profile_deletions ORDER BY id`,
		"decisions": `SELECT profile_id, kind, message_id, identifier,
			COALESCE(other_profile_id, 0), rule, detail FROM identity_decisions ORDER BY id`,
		"traits": `SELECT profile_id, key, value, ts_ms, message_id FROM traits
			ORDER BY profile_id, key`,
	}
	out := map[string][]string{}
	for name, query := range queries {
		out[name] = rowsOf(t, db, query)
	}
	if db.Dialect() == sqldb.Postgres {
		// Every stored message id once in event_ids, and nothing else.
		out["event_ids"] = rowsOf(t, db, `SELECT message_id FROM event_ids
			WHERE message_id NOT IN (SELECT message_id FROM erased_messages)
			ORDER BY message_id`)
		if got, want := len(out["event_ids"]), len(out["events"]); got != want {
			t.Errorf("event_ids holds %d live ids, events %d", got, want)
		}
	}
	return out
}

// ingestIn stores raws in batches of size and returns every outcome.
func ingestIn(t *testing.T, store *resolver.Store, raws []string,
	size int) []resolver.Outcome {
	t.Helper()
	var outcomes []resolver.Outcome
	for start := 0; start < len(raws); start += size {
		var batch []*resolver.Message
		for _, raw := range raws[start:min(start+size, len(raws))] {
			batch = append(batch, mustParseMessage(t, raw))
		}
		got, err := store.Ingest(context.Background(), batch)
		if err != nil {
			t.Fatalf("ingest batch at %d: %v", start, err)
		}
		outcomes = append(outcomes, got...)
	}
	return outcomes
}

// compareBatchings stores raws into fresh databases one by one and in
// each of sizes, after before (when set) ran on each, and wants the same
// tables and outcomes every time.
func compareBatchings(t *testing.T, rules resolver.Rules, raws []string,
	before func(*resolver.Store), sizes ...int) map[string][]string {
	t.Helper()
	clock := func() time.Time { return fixedNow }
	var want map[string][]string
	var wantOutcomes []resolver.Outcome
	for _, size := range append([]int{1}, sizes...) {
		db := sqltest.MustOpen(t)
		store := resolver.NewStore(db, rules, clock, nil)
		if before != nil {
			before(store)
		}
		outcomes := ingestIn(t, store, raws, size)
		got := snapshot(t, db)
		if want == nil {
			want, wantOutcomes = got, outcomes
			continue
		}
		for table := range want {
			if !reflect.DeepEqual(want[table], got[table]) {
				t.Errorf("%s differ between batches of 1 and of %d:\n1:  %v\n%d: %v",
					table, size, want[table], size, got[table])
			}
		}
		if !reflect.DeepEqual(wantOutcomes, outcomes) {
			t.Errorf("outcomes differ between batches of 1 and of %d", size)
		}
	}
	return want
}

// TestAdversarialStreamsResolveAsOneByOne stores streams built to corner
// the batch paths in batches of several sizes and wants what storing them
// one message at a time gives.
func TestAdversarialStreamsResolveAsOneByOne(t *testing.T) {
	counts := map[string]int{}
	seeds, messages, least := uint64(5), 250, 5
	if os.Getenv(sqltest.PostgresEnv) != "" {
		seeds, messages, least = 2, 100, 1 // a commit costs far more there
	}
	for seed := range seeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 77))
			var raws []string
			for n := range messages {
				raws = append(raws, adversarialMessage(rng, n))
			}
			tables := compareBatchings(t, adversarialRules(), raws, nil, 7, 60, len(raws))
			for _, table := range []string{"merges", "erased", "traits", "decisions"} {
				counts[table] += len(tables[table])
			}
		})
	}
	t.Logf("across seeds: %v", counts)
	if counts["merges"] < least || counts["erased"] < 10*least ||
		counts["traits"] < 10*least {
		t.Errorf("the streams should merge, erase and set traits: %v", counts)
	}
}

// TestTiedTraitWritesInOneBatch: of writes of one field at the same time,
// the last stored wins, in a batch as one by one, also when the profile
// merges after the writes and when a null and a nested value tie.
func TestTiedTraitWritesInOneBatch(t *testing.T) {
	at := `"timestamp":"2026-11-01T10:00:00Z"`
	raws := []string{
		`{"type":"identify","messageId":"t1","userId":"u1","traits":{"plan":"a",` +
			`"address":{"city":"x"}},` + at + `}`,
		`{"type":"identify","messageId":"t2","userId":"u1","traits":{"plan":"b",` +
			`"address":null},` + at + `}`,
		`{"type":"identify","messageId":"t3","anonymousId":"a1","traits":{"plan":"c",` +
			`"pl\u0002an":"d"},` + at + `}`,
		`{"type":"identify","messageId":"t4","userId":"u1","anonymousId":"a1",` +
			`"traits":{"address":{"city":"y"}},` + at + `}`,
		`{"type":"identify","messageId":"t5","userId":"u1","traits":{"plan":"e"},` + at + `}`,
		`{"type":"identify","messageId":"t5","userId":"u1","traits":{"plan":"f"},` + at + `}`,
	}
	tables := compareBatchings(t, resolver.DefaultRules(), raws, nil, 2, 3, len(raws))
	want := []string{"1addressnull1793527200000t2",
		"1address\x1fcity\"y\"1793527200000t4", "1plan\"e\"1793527200000t5"}
	if !reflect.DeepEqual(tables["traits"], want) {
		t.Errorf("traits = %q, want %q", tables["traits"], want)
	}
}

// TestBatchAfterUnlink: an identifier unlinked before a batch stays out of
// every message of it, batched or not.
func TestBatchAfterUnlink(t *testing.T) {
	setup := []string{
		`{"type":"identify","messageId":"s1","userId":"u1","anonymousId":"shared",` +
			`"timestamp":"2026-11-01T10:00:00Z"}`,
		`{"type":"track","messageId":"s2","anonymousId":"shared","event":"E",` +
			`"timestamp":"2026-11-01T10:01:00Z"}`,
	}
	before := func(store *resolver.Store) {
		ingestIn(t, store, setup, 1)
		_, err := store.Unlink(context.Background(),
			resolver.Identifier{Type: resolver.TypeAnonymousID, Value: "shared"}, "test")
		if err != nil {
			t.Fatal(err)
		}
	}
	var raws []string
	for n := range 30 {
		raws = append(raws, fmt.Sprintf(`{"type":"identify","messageId":"b%d",`+
			`"userId":"u%d","anonymousId":"shared","traits":{"n":%d},`+
			`"timestamp":"2026-11-0%dT10:00:00Z"}`, n, n%3, n, 1+n%5))
		raws = append(raws, fmt.Sprintf(`{"type":"alias","messageId":"c%d",`+
			`"userId":"u%d","previousId":"shared","timestamp":"2026-11-02T10:00:00Z"}`,
			n, n%4))
	}
	tables := compareBatchings(t, resolver.DefaultRules(), raws, before, 5, len(raws))
	for _, row := range tables["identities"] {
		if strings.Contains(row, "shared") {
			t.Errorf("the unlinked identifier was attached again: %s", row)
		}
	}
}

// TestLargeBatchChunks stores over 6,000 messages in one Ingest, so every
// bulk INSERT is split into chunks, and wants what batches of 500 give.
func TestLargeBatchChunks(t *testing.T) {
	var raws []string
	for n := range 6200 {
		raws = append(raws, fmt.Sprintf(`{"type":"identify","messageId":"big%d",`+
			`"userId":"u%d","anonymousId":"a%d","traits":{"n":%d,"m":{"k":%d}},`+
			`"timestamp":"2026-11-01T10:%02d:00Z"}`, n%6100, n%4000, n%4500, n, n, n%60))
	}
	clock := func() time.Time { return fixedNow }
	var want map[string][]string
	for _, size := range []int{500, len(raws)} {
		db := sqltest.MustOpen(t)
		store := resolver.NewStore(db, resolver.DefaultRules(), clock, nil)
		outcomes := ingestIn(t, store, raws, size)
		stored := 0
		for _, o := range outcomes {
			if o.Status == resolver.StatusStored {
				stored++
			}
		}
		if stored != 6100 {
			t.Errorf("batches of %d: %d stored, want 6100", size, stored)
		}
		got := snapshot(t, db)
		if want == nil {
			want = got
			continue
		}
		for table := range want {
			if !reflect.DeepEqual(want[table], got[table]) {
				t.Errorf("%s differ between batches of 500 and one batch", table)
			}
		}
	}
}

// TestGroupCommitterStoresEachMessageIDOnce sends overlapping messageIds
// from concurrent callers: each id is answered stored to exactly one of
// them and is stored once.
func TestGroupCommitterStoresEachMessageIDOnce(t *testing.T) {
	db := sqltest.MustOpen(t)
	store := resolver.NewStore(db, tightRules(), func() time.Time { return fixedNow }, nil)
	group := resolver.NewGroupCommitter(store, resolver.GroupOptions{MaxMessages: 40})
	defer group.Close()

	var mu sync.Mutex
	storedBy := map[string]int{}
	var wg sync.WaitGroup
	for caller := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(caller), 5))
			for range 15 {
				var batch []*resolver.Message
				for range 1 + rng.IntN(12) {
					n := rng.IntN(300)
					batch = append(batch, mustParseMessage(t, fmt.Sprintf(
						`{"type":"identify","messageId":"g%d","userId":"u%d",`+
							`"anonymousId":"a%d","traits":{"c":%d},`+
							`"timestamp":"2026-11-01T10:00:00Z"}`,
						n, n%20, rng.IntN(40), caller)))
				}
				outcomes, err := group.Ingest(context.Background(), batch)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, o := range outcomes {
					if o.Status == resolver.StatusStored {
						storedBy[o.MessageID]++
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()

	events := rowsOf(t, db, `SELECT message_id FROM events ORDER BY message_id`)
	if len(events) != len(storedBy) {
		t.Errorf("%d events stored, %d ids answered stored", len(events), len(storedBy))
	}
	for _, id := range events {
		if storedBy[id] != 1 {
			t.Errorf("%s answered stored %d times", id, storedBy[id])
		}
	}
	snapshot(t, db) // checks event_ids on PostgreSQL
}

// TestLaterSightingsOfManyStoredIdentities: a batch that sees more stored
// identifiers than one last-seen UPDATE names moves each one's last
// sighting to its latest message, never back, in one batch or many.
func TestLaterSightingsOfManyStoredIdentities(t *testing.T) {
	const people = 1500
	var first, later []string
	for n := range people {
		first = append(first, fmt.Sprintf(`{"type":"identify","messageId":"f%d",`+
			`"userId":"s%d","anonymousId":"x%d","timestamp":"2026-11-02T10:00:00Z"}`, n, n, n))
		// One later and one earlier sighting of each, in either order.
		earlier := fmt.Sprintf(`{"type":"track","messageId":"e%d","userId":"s%d",`+
			`"event":"E","timestamp":"2026-11-01T10:00:00Z"}`, n, n)
		late := fmt.Sprintf(`{"type":"track","messageId":"l%d","userId":"s%d",`+
			`"anonymousId":"x%d","event":"E","timestamp":"2026-11-03T10:%02d:00Z"}`,
			n, n, n, n%60)
		if n%2 == 0 {
			later = append(later, earlier, late)
		} else {
			later = append(later, late, earlier)
		}
	}
	clock := func() time.Time { return fixedNow }
	var want map[string][]string
	for _, size := range []int{250, len(later)} {
		db := sqltest.MustOpen(t)
		store := resolver.NewStore(db, resolver.DefaultRules(), clock, nil)
		ingestIn(t, store, first, len(first))
		ingestIn(t, store, later, size)
		got := snapshot(t, db)
		stale := rowsOf(t, db, `SELECT type, value, last_seen_ms FROM identities
			WHERE last_seen_ms < 1793700000000`)
		if len(got["identities"]) != 2*people || len(stale) != 0 {
			t.Errorf("batches of %d: %d identities, %d not moved to their latest "+
				"sighting, such as %v", size, len(got["identities"]), len(stale),
				stale[:min(3, len(stale))])
		}
		if want == nil {
			want = got
			continue
		}
		for table := range want {
			if !reflect.DeepEqual(want[table], got[table]) {
				t.Errorf("%s differ between batches of 250 and one batch", table)
			}
		}
	}
}

// TestEraseMidBatchThenRetries: a deletion between other messages of a
// batch erases what the batch stored before it, and a retry of an erased
// messageId later in the batch stays erased, batched or not.
func TestEraseMidBatchThenRetries(t *testing.T) {
	at := `"timestamp":"2026-11-01T10:00:00Z"`
	raws := []string{
		`{"type":"identify","messageId":"m1","userId":"u1","anonymousId":"a1",` +
			`"traits":{"plan":"x"},` + at + `}`,
		`{"type":"track","messageId":"m2","anonymousId":"a1","event":"E",` + at + `}`,
		`{"type":"identify","messageId":"m3","userId":"u2","anonymousId":"a2",` + at + `}`,
		`{"type":"delete","messageId":"d1","userId":"u1"}`,
		`{"type":"identify","messageId":"m1","userId":"u1","anonymousId":"a1",` +
			`"traits":{"plan":"y"},` + at + `}`,
		`{"type":"delete","messageId":"d1","userId":"u1"}`,
		`{"type":"track","messageId":"m4","anonymousId":"a1","event":"E",` + at + `}`,
		`{"type":"track","messageId":"m3","anonymousId":"a9","event":"E",` + at + `}`,
	}
	tables := compareBatchings(t, resolver.DefaultRules(), raws, nil, 3, len(raws))
	if want := []string{"m1", "m2"}; !reflect.DeepEqual(tables["erased"], want) {
		t.Errorf("erased %v, want %v", tables["erased"], want)
	}
	// m3's retry is a duplicate; a1 comes back on a new profile.
	want := []string{"m32identify1793527200000{}", "m43track1793527200000{}"}
	if !reflect.DeepEqual(tables["events"], want) {
		t.Errorf("events %q, want %q", tables["events"], want)
	}
	if len(tables["traits"]) != 0 {
		t.Errorf("the retried erased identify set traits: %v", tables["traits"])
	}
}
