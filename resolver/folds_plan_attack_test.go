package resolver_test

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// On PostgreSQL with 50,000 stored profiles, identities, traits and events
// and no statistics (never analyzed, autovacuum off), one batch whose
// merges fold stored profiles must probe indexes: no table it moves rows
// of may be read whole, with a few merges or with hundreds (an import's
// batch: without statistics the planner takes each profile to match 0.5 %
// of a table, and a few hundred to match all of it). The count of sequential scans of each table is
// read before and after the batch, once the batch's connections closed
// (a closing backend reports its counts); small tables (empty partitions
// of events) are left out, a scan of them costs nothing. The stored
// identifiers were last seen in 2100, so that the batch moves no last
// sighting: that UPDATE, for 1,200 identifiers of a 100,000-row table,
// rightly hashes the table (and probes its key on large ones).
func TestAttackFoldPlanProbesIndexes(t *testing.T) {
	for _, merges := range []int{20, 400} {
		t.Run(fmt.Sprint(merges, " merges"), func(t *testing.T) {
			atkFoldPlan(t, merges)
		})
	}
}

func atkFoldPlan(t *testing.T, merges int) {
	pools := sqltest.MustOpenPostgresPools(t, 3)
	seed, storeDB, reader := pools[0], pools[1], pools[2]
	now := fixedNow.UnixMilli()
	for _, q := range []string{
		`INSERT INTO profiles (created_ms, updated_ms)
			SELECT 1, 1 FROM generate_series(1, 50000)`,
		`INSERT INTO identities (type, value, profile_id, first_seen_ms, last_seen_ms,
			first_message_id, source)
			SELECT 'anonymous_id', 's' || i, i, 1, 4102444800000, 'seed' || i, 'x'
			FROM generate_series(1, 50000) AS i`,
		`INSERT INTO identities (type, value, profile_id, first_seen_ms, last_seen_ms,
			first_message_id, source)
			SELECT 'xid', 's' || i, i, 1, 4102444800000, 'seed' || i, 'x'
			FROM generate_series(1, 50000) AS i`,
		`INSERT INTO traits (profile_id, key, value, ts_ms, message_id)
			SELECT i, 'plan', '"p' || i || '"', 1, 'seed' || i
			FROM generate_series(1, 50000) AS i`,
		fmt.Sprintf(`INSERT INTO events (message_id, source, type, profile_id, ts_ms,
			received_ms, raw)
			SELECT 'seed' || i, 'x', 'track', i, 1, %d, '{}'
			FROM generate_series(1, 50000) AS i`, now),
	} {
		if _, err := seed.Exec(q); err != nil {
			t.Fatalf("seed: %v\n%s", err, q)
		}
	}
	atkCloseAndWait(t, seed, reader)
	before := atkSeqScans(t, reader)

	var raws []string
	for i := 1; i <= merges; i++ { // fold s(2i) into s(2i-1), traits on both
		a, b := fmt.Sprintf("s%d", 2*i-1), fmt.Sprintf("s%d", 2*i)
		raws = append(raws,
			atkIdentify(fmt.Sprintf("w%d", i), "", b, `{"plan":"w"}`, atkT1),
			atkTrack(fmt.Sprintf("j%d", i), a, atkT2, "xid:"+b),
			atkTrack(fmt.Sprintf("k%d", i), b, atkT2, "xid:new"+b))
	}
	// a chain across stored profiles: s(c) <- s(c+1) <- s(c+2)
	c := 2*merges + 60
	raws = append(raws,
		atkTrack("c1", fmt.Sprintf("s%d", c+2), atkT3, fmt.Sprintf("xid:s%d", c+1)),
		atkTrack("c2", fmt.Sprintf("s%d", c+1), atkT3, fmt.Sprintf("xid:s%d", c)))
	store := resolver.NewStore(storeDB, resolver.DefaultRules(),
		func() time.Time { return fixedNow }, nil)
	ingestIn(t, store, raws, len(raws))
	atkCloseAndWait(t, storeDB, reader)
	after := atkSeqScans(t, reader)

	if len(before) < 4 { // profiles, identities, traits, an events partition
		t.Fatalf("large tables: %v", before)
	}
	for table := range before {
		if after[table] != before[table] {
			t.Errorf("%s read whole %d times by one batch of merges",
				table, after[table]-before[table])
		}
	}
	var retired int
	err := reader.Get(&retired, `SELECT COUNT(*) FROM profiles WHERE merged_into IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	if retired != merges+2 {
		t.Errorf("%d profiles retired, want %d", retired, merges+2)
	}
}

// atkCloseAndWait closes pool and returns once the server backends of its
// connections have exited, as seen from reader: a backend reports its
// counts before it leaves pg_stat_activity. Waiting for counts to stop
// moving alone was not enough on a loaded machine, where a backend may
// exit more than a second after its connection closed. The deadline only
// guards against hanging.
func atkCloseAndWait(t *testing.T, pool, reader *sqldb.DB) {
	t.Helper()
	ctx := context.Background()
	var pids []int64
	// The batch is done, so every connection is idle; each is held until
	// all are seen, so that none is taken twice.
	var held []*sql.Conn
	for pool.Stats().Idle > 0 {
		conn, err := pool.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, conn)
		var pid int64
		if err := conn.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	for _, conn := range held {
		_ = conn.Close() // back to the pool, which closes it
	}
	if err := pool.Close(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; {
		var alive int
		err := reader.Get(&alive, `SELECT COUNT(*) FROM pg_stat_activity
			WHERE pid = ANY($1)`, pids)
		if err != nil {
			t.Fatal(err)
		}
		if alive == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the closed pool's %d backends still there after a minute",
				alive, len(pids))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// atkSeqScans reads the sequential scans of knit's tables of 10,000 rows
// or more once the counts stop moving: a closed connection's
// backend reports its counts as it exits.
func atkSeqScans(t *testing.T, db *sqldb.DB) map[string]int64 {
	t.Helper()
	read := func() map[string]int64 {
		if _, err := db.Exec(`SELECT pg_stat_clear_snapshot()`); err != nil {
			t.Fatal(err)
		}
		var rows []struct {
			Table string `db:"t"`
			Scans int64  `db:"s"`
		}
		err := db.Select(&rows, `SELECT relname AS t, COALESCE(seq_scan, 0) AS s
			FROM pg_stat_user_tables WHERE schemaname = current_schema()
			AND n_live_tup >= 10000`)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for _, r := range rows {
			out[r.Table] = r.Scans
		}
		return out
	}
	last, same := read(), 0
	for tries := 0; same < 4 && tries < 100; tries++ {
		time.Sleep(250 * time.Millisecond)
		now := read()
		if reflect.DeepEqual(now, last) {
			same++
		} else {
			same = 0
		}
		last = now
	}
	return last
}
