package resolver

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

var attackNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// attackMessage is message n of a stream that merges profiles, sets
// traits, repeats messageIds and sends a few deletions.
func attackMessage(rng *rand.Rand, n int) string {
	id := fmt.Sprintf("m%d", n)
	if n > 0 && rng.IntN(10) == 0 {
		id = fmt.Sprintf("m%d", rng.IntN(n))
	}
	at := fmt.Sprintf("2026-11-0%dT10:%02d:00Z", 1+rng.IntN(5), rng.IntN(60))
	user := fmt.Sprintf("u%d", rng.IntN(400))
	anon := fmt.Sprintf("a%d", rng.IntN(600))
	switch rng.IntN(12) {
	case 0:
		return fmt.Sprintf(`{"type":"track","messageId":%q,"anonymousId":%q,`+
			`"event":"e%d","timestamp":%q}`, id, anon, rng.IntN(5), at)
	case 1:
		return fmt.Sprintf(`{"type":"alias","messageId":%q,"userId":%q,`+
			`"previousId":%q,"timestamp":%q}`, id, user, anon, at)
	}
	return fmt.Sprintf(`{"type":"identify","messageId":%q,"userId":%q,`+
		`"anonymousId":%q,"traits":{"email":"p%d@example.com","n":%d},`+
		`"timestamp":%q}`, id, user, anon, rng.IntN(300), rng.IntN(4), at)
}

func attackParse(t testing.TB, raw string) *Message {
	t.Helper()
	m, err := ParseMessage([]byte(raw), Envelope{Source: "attack", ReceivedAt: attackNow})
	if err != nil {
		t.Fatalf("parse %s: %v", raw, err)
	}
	return m
}

func attackIngestIn(t *testing.T, store *Store, raws []string, size int) []Outcome {
	t.Helper()
	var outcomes []Outcome
	for start := 0; start < len(raws); start += size {
		var batch []*Message
		for _, raw := range raws[start:min(start+size, len(raws))] {
			batch = append(batch, attackParse(t, raw))
		}
		got, err := store.Ingest(context.Background(), batch)
		if err != nil {
			t.Fatalf("batch of %d at %d: %v", size, start, err)
		}
		outcomes = append(outcomes, got...)
	}
	return outcomes
}

// attackTables is what ingestion wrote, as comparable rows.
func attackTables(t *testing.T, db *sqldb.DB) map[string][]string {
	t.Helper()
	queries := map[string]string{
		"identities": `SELECT profile_id, type, value, first_seen_ms, last_seen_ms
			FROM identities ORDER BY type, value`,
		"events": `SELECT message_id, COALESCE(profile_id, 0), type, ts_ms
			FROM events ORDER BY message_id`,
		"profiles": `SELECT id, COALESCE(merged_into, 0) FROM profiles ORDER BY id`,
		"merges":   `SELECT survivor, merged, message_id FROM profile_merges ORDER BY id`,
		"traits": `SELECT profile_id, key, value, ts_ms, message_id FROM traits
			ORDER BY profile_id, key`,
		"links": `SELECT message_id, type, value FROM identity_links ORDER BY 1, 2, 3`,
	}
	out := map[string][]string{}
	for name, query := range queries {
		rows, err := db.Queryx(query)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for rows.Next() {
			values, err := rows.SliceScan()
			if err != nil {
				t.Fatal(err)
			}
			out[name] = append(out[name], fmt.Sprint(values...))
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// Batches of sizes around the statement sizes (powers of four) store what
// one message at a time stores, on SQLite and, with KNIT_TEST_POSTGRES,
// on PostgreSQL.
func TestBatchesAroundStatementSizesMatchOneByOne(t *testing.T) {
	sizes := []int{3, 4, 5, 15, 16, 17, 63, 64, 65, 255, 256, 257,
		1023, 1024, 1025, 2200}
	rng := rand.New(rand.NewPCG(11, 4))
	raws := make([]string, 2200)
	for n := range raws {
		raws[n] = attackMessage(rng, n)
	}
	clock := func() time.Time { return attackNow }
	var want map[string][]string
	var wantOutcomes []Outcome
	for _, size := range append([]int{1}, sizes...) {
		db := sqltest.MustOpen(t)
		store := NewStore(db, DefaultRules(), clock, nil)
		outcomes := attackIngestIn(t, store, raws, size)
		got := attackTables(t, db)
		if want == nil {
			want, wantOutcomes = got, outcomes
			t.Logf("one by one: %d events, %d merges, %d traits",
				len(got["events"]), len(got["merges"]), len(got["traits"]))
			continue
		}
		for table := range want {
			if !reflect.DeepEqual(want[table], got[table]) {
				t.Errorf("batches of %d: %s differ from one by one", size, table)
			}
		}
		if !reflect.DeepEqual(wantOutcomes, outcomes) {
			t.Errorf("batches of %d: outcomes differ from one by one", size)
		}
	}
}

// Columns and indexes added while the Store holds prepared statements do
// not break ingestion: SQLite prepares a statement again when the schema
// it was prepared against changes.
func TestSchemaChangesUnderKeptStatements(t *testing.T) {
	db := sqltest.MustOpenSQLite(t)
	store := NewStore(db, DefaultRules(), time.Now, nil)
	rng := rand.New(rand.NewPCG(3, 3))
	raws := make([]string, 300)
	for n := range raws {
		raws[n] = attackMessage(rng, n)
	}
	attackIngestIn(t, store, raws[:100], 17)
	for _, change := range []string{
		`ALTER TABLE events ADD COLUMN attack_extra TEXT`,
		`ALTER TABLE identities ADD COLUMN attack_extra INTEGER DEFAULT 7`,
		`CREATE INDEX attack_traits ON traits (key, value)`,
	} {
		if _, err := db.Exec(change); err != nil {
			t.Fatalf("%s: %v", change, err)
		}
	}
	attackIngestIn(t, store, raws[100:200], 17)
	if _, err := db.Exec(`DROP INDEX attack_traits`); err != nil {
		t.Fatal(err)
	}
	attackIngestIn(t, store, raws[200:], 64)
	if n := store.statements.size(); n == 0 {
		t.Errorf("no statement kept")
	}
}

// A query that cannot be prepared fails the transaction, and is not kept.
func TestUnpreparableQueryIsNotKept(t *testing.T) {
	db := sqltest.MustOpenSQLite(t)
	store := NewStore(db, DefaultRules(), time.Now, nil)
	before := store.statements.size()
	err := db.WithWriteTx(context.Background(), func(tx *sqlx.Tx) error {
		w := &writer{tx: tx, dialect: db.Dialect(), shared: store.statements}
		return w.exec(context.Background(), `INSERT INTO no_such_table VALUES (?)`, 1)
	})
	if err == nil || !strings.Contains(err.Error(), "no_such_table") {
		t.Fatalf("error %v, want no such table", err)
	}
	if after := store.statements.size(); after != before {
		t.Errorf("cache grew from %d to %d on a failed prepare", before, after)
	}
}

// Many goroutines ingesting at once, directly and through a GroupCommitter,
// share the kept statements; each messageId is stored once.
func TestConcurrentIngestSharesKeptStatements(t *testing.T) {
	db := sqltest.MustOpen(t)
	store := NewStore(db, DefaultRules(), time.Now, nil)
	group := NewGroupCommitter(store, GroupOptions{})
	defer group.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	stored := map[string]int{}
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for round := range 12 {
				n := 1 + rng.IntN(70)
				batch := make([]*Message, n)
				for i := range batch {
					batch[i] = attackParse(t, attackMessage(rng, round*100+i))
				}
				ingest := store.Ingest
				if g%2 == 0 {
					ingest = group.Ingest
				}
				outcomes, err := ingest(context.Background(), batch)
				if err != nil {
					t.Errorf("goroutine %d: %v", g, err)
					return
				}
				mu.Lock()
				for i, o := range outcomes {
					if o.Status == StatusStored {
						stored[batch[i].ID]++
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for id, n := range stored {
		if n != 1 {
			t.Errorf("%s stored %d times", id, n)
		}
	}
	var events int
	if err := db.Get(&events, `SELECT COUNT(*) FROM events`); err != nil {
		t.Fatal(err)
	}
	if events != len(stored) {
		t.Errorf("%d events, %d answered stored", events, len(stored))
	}
	t.Logf("%d stored; writer pool %+v", len(stored), db.Stats())
}
