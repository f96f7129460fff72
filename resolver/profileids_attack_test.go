package resolver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// oddStrings are values that a text array literal must quote or escape,
// or that look like its NULL.
var oddStrings = []string{"NULL", "null", "{}", "{a,b}", `"quoted"`, `back\slash`,
	"a,b", "é中文", "😀", "tab\there", "line\nbreak", "x\u2028y", "ÿ", "'", "NuLl",
	strings.Repeat("long{,\"\\}", 250)}

// oddStream is a stream whose identifiers, events, traits and properties
// hold oddStrings, with messages that carry no usable identifier (events
// of no profile) and merges of profiles the same batch made.
func oddStream() []string {
	at := `"timestamp":"2026-11-01T10:00:00Z"`
	var raws []string
	for i, odd := range oddStrings {
		value, _ := json.Marshal(odd)
		raws = append(raws,
			fmt.Sprintf(`{"type":"identify","messageId":"i%d","userId":%s,`+
				`"anonymousId":"a%d","traits":{%s:%s,"k":%s},%s}`,
				i, value, i, value, value, value, at),
			fmt.Sprintf(`{"type":"track","messageId":"t%d","anonymousId":"undefined",`+
				`"event":%s,"properties":{%s:%s},"context":{"app":{"name":%s}},%s}`,
				i, quoted("E"+odd), value, value, value, at),
			fmt.Sprintf(`{"type":"track","messageId":%s,"anonymousId":"b%d",`+
				`"event":"E","properties":{"p":%s},%s}`, quoted(shortID(odd)), i, value, at),
			fmt.Sprintf(`{"type":"alias","messageId":"al%d","userId":%s,`+
				`"previousId":"b%d",%s}`, i, value, i, at))
	}
	return raws
}

// TestOddStringsStoreAlikeOnBothEngines: the column arrays PostgreSQL
// receives keep every string as it is (none read as NULL, none unquoted)
// and NULL profile ids as NULL, so both engines store the same rows.
func TestOddStringsStoreAlikeOnBothEngines(t *testing.T) {
	raws := oddStream()
	clock := func() time.Time { return fixedNow }
	engines := map[string]*sqldb.DB{
		"sqlite": sqltest.MustOpenSQLite(t), "postgres": sqltest.MustOpenPostgres(t),
	}
	got := map[string]map[string][]string{}
	for name, db := range engines {
		store := resolver.NewStore(db, resolver.DefaultRules(), clock, nil)
		ingestIn(t, store, raws, len(raws))
		got[name] = snapshot(t, db)
	}
	for table, rows := range got["sqlite"] {
		if !reflect.DeepEqual(rows, got["postgres"][table]) {
			t.Errorf("%s differ:\nsqlite:   %.2000q\npostgres: %.2000q",
				table, rows, got["postgres"][table])
		}
	}
	if n := len(got["sqlite"]["merges"]); n < len(oddStrings)/2 {
		t.Errorf("%d merges, want at least %d", n, len(oddStrings)/2)
	}
}

// TestAllNullProfileColumn: a batch whose every event and
// decision belongs to no profile sends PostgreSQL a column of NULLs only,
// and stores events of no profile.
func TestAllNullProfileColumn(t *testing.T) {
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		store := resolver.NewStore(db, resolver.DefaultRules(),
			func() time.Time { return fixedNow }, nil)
		raws := []string{
			`{"type":"track","messageId":"n1","anonymousId":"undefined","event":"E"}`,
			`{"type":"track","messageId":"n2","userId":"null","event":"E"}`,
		}
		ingestIn(t, store, raws, len(raws))
		events := rowsOf(t, db, `SELECT message_id, COALESCE(profile_id, -1) FROM events
			ORDER BY message_id`)
		if want := []string{"n1-1", "n2-1"}; !reflect.DeepEqual(events, want) {
			t.Errorf("events %v, want %v", events, want)
		}
	})
}

// shortID is s cut to fit a messageId.
func shortID(s string) string {
	runes := []rune(s)
	return string(runes[:min(len(runes), 90)])
}

// quoted is s as a JSON string.
func quoted(s string) string {
	out, _ := json.Marshal(s)
	return string(out)
}

// TestStoresOverSeparatePoolsNumberProfilesApart: two processes ingesting
// into one PostgreSQL database at once, each making new profiles and
// merging the other's, take turns on the write lock, so neither hands out
// an id the other wrote: no batch fails, the ids run from 1 without a gap,
// and the sequence ends past them all.
func TestStoresOverSeparatePoolsNumberProfilesApart(t *testing.T) {
	pools := sqltest.MustOpenPostgresPools(t, 2)
	const batches, perBatch = 15, 12
	errs := make(chan error, len(pools))
	for w, db := range pools {
		store := resolver.NewStore(db, resolver.DefaultRules(), time.Now, nil)
		go func() {
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for b := range batches {
				var batch []*resolver.Message
				for i := range perBatch {
					n := b*perBatch + i
					raw := fmt.Sprintf(`{"type":"track","messageId":"w%d-%d","event":"E",`+
						`"anonymousId":"a%d","context":{"device":{"id":"d%d","type":"ios"}}}`,
						w, n, rng.IntN(90), rng.IntN(90))
					if i%3 == 0 { // a profile of its own, anonymous only
						raw = fmt.Sprintf(`{"type":"track","messageId":"w%d-%d",`+
							`"event":"E","anonymousId":"w%d-a%d"}`, w, n, w, n)
					}
					batch = append(batch, mustParseMessage(t, raw))
				}
				if _, err := store.Ingest(context.Background(), batch); err != nil {
					errs <- fmt.Errorf("writer %d batch %d: %w", w, b, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range pools {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	db := pools[0]
	checkIdentityInvariants(t, db)
	var count, highest, sequence, merges int64
	if err := db.QueryRow(`SELECT COUNT(*), MAX(id), (SELECT last_value FROM
		profiles_id_seq), (SELECT COUNT(*) FROM profile_merges) FROM profiles`).Scan(
		&count, &highest, &sequence, &merges); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d profiles, %d merges", count, merges)
	if count != highest || sequence != highest || count < batches*perBatch/3 || merges == 0 {
		t.Errorf("%d profiles, highest id %d, sequence at %d, %d merges",
			count, highest, sequence, merges)
	}
}

// failOnMessage makes the insert of the event with message id fail, so a
// batch holding it rolls back after resolving (and perhaps flushing) the
// messages before it.
func failOnMessage(t *testing.T, db *sqldb.DB, id string) {
	t.Helper()
	steps := []string{`CREATE TRIGGER fail_on_message BEFORE INSERT ON events
		WHEN NEW.message_id = '` + id + `' BEGIN SELECT RAISE(ABORT, 'refused'); END`}
	if db.Dialect() == sqldb.Postgres {
		steps = []string{`CREATE FUNCTION fail_on_message() RETURNS TRIGGER
			LANGUAGE plpgsql AS $$ BEGIN
			IF NEW.message_id = '` + id + `' THEN RAISE EXCEPTION 'refused'; END IF;
			RETURN NEW; END $$`,
			`CREATE TRIGGER fail_on_message BEFORE INSERT ON events
			FOR EACH ROW EXECUTE FUNCTION fail_on_message()`}
	}
	for _, step := range steps {
		if _, err := db.Exec(step); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
}

// TestNumberingAfterFailedBatchesAndUnlinks: a batch that fails after a
// merge flushed its first profiles rolls back whole, and the next batch
// numbers from the highest id stored, as do an unlink's rebuilt profiles;
// a profile inserted with the default id after each never collides.
func TestNumberingAfterFailedBatchesAndUnlinks(t *testing.T) {
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		store := resolver.NewStore(db, resolver.DefaultRules(),
			func() time.Time { return fixedNow }, nil)
		at := `"timestamp":"2026-11-01T10:00:00Z"`
		ingestIn(t, store, []string{
			`{"type":"identify","messageId":"s1","userId":"u1","anonymousId":"x",` + at + `}`,
			`{"type":"identify","messageId":"s2","userId":"u2","anonymousId":"y",` + at + `}`,
		}, 2) // profiles 1 and 2
		failOnMessage(t, db, "boom")
		failing := []string{
			`{"type":"track","messageId":"f1","event":"E","anonymousId":"f1",` + at + `}`,
			`{"type":"track","messageId":"f2","event":"E","anonymousId":"f2",` + at + `}`,
			`{"type":"identify","messageId":"f3","userId":"u3","anonymousId":"f1",` + at + `}`,
			`{"type":"alias","messageId":"f4","userId":"u3","previousId":"f2",` + at + `}`,
			`{"type":"track","messageId":"f5","event":"E","anonymousId":"f5",` + at + `}`,
			`{"type":"track","messageId":"boom","event":"E","anonymousId":"f6",` + at + `}`,
		}
		var batch []*resolver.Message
		for _, raw := range failing {
			batch = append(batch, mustParseMessage(t, raw))
		}
		if _, err := store.Ingest(context.Background(), batch); err == nil {
			t.Fatal("the batch with the refused message was stored")
		}
		if got := profilesOf(t, store, "n1", "n2"); !reflect.DeepEqual(got, []int64{3, 4}) {
			t.Errorf("after the failed batch: profiles %v, want [3 4]", got)
		}
		wantDefaultID(t, db, 5)

		// u1 and u2 share a device once: one profile, then split again.
		ingestIn(t, store, []string{`{"type":"track","messageId":"j1","event":"E",` +
			`"userId":"u1","anonymousId":"y",` + at + `}`}, 1)
		result, err := store.Unlink(context.Background(),
			resolver.Identifier{Type: resolver.TypeAnonymousID, Value: "y"}, "test")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range result.Profiles {
			if p <= 5 {
				t.Errorf("the unlink rebuilt onto profile %d, not a new one past 5", p)
			}
		}
		highest := maxProfileID(t, db)
		wantDefaultID(t, db, highest+1)
		if got := profilesOf(t, store, "n3"); got[0] != highest+2 {
			t.Errorf("after the unlink: profile %d, want %d", got[0], highest+2)
		}
	})
}

// wantDefaultID inserts a profile with the table's default id and wants
// id, as an operator's INSERT or an older knit would get.
func wantDefaultID(t *testing.T, db *sqldb.DB, id int64) {
	t.Helper()
	var got int64
	err := db.Get(&got, `INSERT INTO profiles (created_ms, updated_ms) VALUES (0, 0)
		RETURNING id`)
	if err != nil {
		t.Fatalf("insert a profile with the default id: %v", err)
	}
	if got != id {
		t.Errorf("a profile inserted with the default id got %d, want %d", got, id)
	}
}

// maxProfileID is the highest profile id stored.
func maxProfileID(t *testing.T, db *sqldb.DB) int64 {
	t.Helper()
	var highest int64
	if err := db.Get(&highest, `SELECT MAX(id) FROM profiles`); err != nil {
		t.Fatal(err)
	}
	return highest
}

// TestAdversarialStreamsStoreAlikeOnBothEngines: PostgreSQL's batch (ids
// counted from the highest, each table in one INSERT of column arrays,
// lookups one key at a time) stores the same rows, ids and order as
// SQLite's multi-row INSERTs for streams that merge profiles made earlier
// in the batch, erase them mid-batch and make more afterwards.
func TestAdversarialStreamsStoreAlikeOnBothEngines(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 78))
			var raws []string
			for n := range 240 {
				raws = append(raws, adversarialMessage(rng, n))
			}
			got := map[string]map[string][]string{}
			for name, db := range map[string]*sqldb.DB{"sqlite": sqltest.MustOpenSQLite(t),
				"postgres": sqltest.MustOpenPostgres(t)} {
				store := resolver.NewStore(db, adversarialRules(),
					func() time.Time { return fixedNow }, nil)
				ingestIn(t, store, raws, 80)
				got[name] = snapshot(t, db)
				got[name]["order"] = rowsOf(t, db, `SELECT message_id FROM events
					ORDER BY id`)
			}
			for table, rows := range got["sqlite"] {
				if !reflect.DeepEqual(rows, got["postgres"][table]) {
					t.Errorf("%s differ:\nsqlite:   %v\npostgres: %v",
						table, rows, got["postgres"][table])
				}
			}
			if len(got["sqlite"]["merges"]) == 0 || len(got["sqlite"]["erased"]) == 0 {
				t.Errorf("the stream should merge and erase: %d merges, %d erased",
					len(got["sqlite"]["merges"]), len(got["sqlite"]["erased"]))
			}
		})
	}
}
