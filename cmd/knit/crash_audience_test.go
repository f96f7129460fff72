package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// heavyClock is when the heavy audience is evaluated: after every seeded
// event.
const heavyClock = "2026-11-30T12:00:00Z"

// heavySeedStart is when the seeded events begin, in milliseconds.
const heavySeedStart = int64(1_795_000_000_000) // 2026-11-17

// heavyAudience is a deliberately slow audience: the few people who added
// sku-7 to a cart, checked against ten aggregates over every workout, so
// that a run over heavyProfiles people lasts long enough to be killed in
// the middle.
func heavyAudience() string {
	var leaves []string
	for i, fn := range []string{"sum", "avg", "max", "min", "sum",
		"avg", "max", "min", "sum", "avg"} {
		leaves = append(leaves, fmt.Sprintf("          - aggregate: {event: Workout Completed, "+
			"function: %s, property: distance, at_least: %d}", fn, i%3))
	}
	return `audiences:
  - name: heavy
    description: Added sku-7 to a cart and ran, checked ten ways.
    condition:
      and:
        - performed: {event: Product Added, where: [{property: product_id, equals: sku-7}]}
        - or:
` + strings.Join(leaves, "\n") + "\n"
}

// heavyProfiles is how many people the heavy audience reads: fewer on
// PostgreSQL, whose run over them is slower.
func heavyProfiles(dsn string) int {
	if sqldb.DialectFromDSN(dsn) == sqldb.Postgres {
		return 5000
	}
	return 20000
}

// mustHeavyDatabase creates and migrates the database at dsn (through a
// one-message import), seeds heavyProfiles people with ten events each and
// writes the heavy audience's config; it returns the config's path.
func mustHeavyDatabase(t *testing.T, dsn string) string {
	t.Helper()
	dir := t.TempDir()
	one := filepath.Join(dir, "one.ndjson")
	if err := os.WriteFile(one, []byte(`{"type":"track","userId":"first",`+
		`"event":"Signed Up","messageId":"first"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "import", "--db", dsn, one)
	seedHeavyPeople(t, dsn, 1000, 1000+heavyProfiles(dsn)-1)
	config := filepath.Join(dir, "heavy.yaml")
	if err := os.WriteFile(config, []byte(heavyAudience()), 0o600); err != nil {
		t.Fatal(err)
	}
	return config
}

// seedHeavyPeople writes people first..last, each with an email and ten
// events: workouts of 0 to 12 km and adds to cart of five products of 50.
func seedHeavyPeople(t *testing.T, dsn string, first, last int) {
	t.Helper()
	series := `WITH RECURSIVE n (i) AS (SELECT CAST(? AS BIGINT)
		UNION ALL SELECT i + 1 FROM n WHERE i < ?),
		m (j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM m WHERE j < 9) `
	stmts := []string{
		series + `INSERT INTO profiles (id, created_ms, updated_ms)
			SELECT i, CAST(? AS BIGINT), CAST(? AS BIGINT) FROM n`,
		series + `INSERT INTO identities (type, value, profile_id, first_seen_ms,
			last_seen_ms, first_message_id, source)
			SELECT 'email', 'p' || i || '@example.com', i, CAST(? AS BIGINT),
			CAST(? AS BIGINT), 'heavy-' || i || '-0', 'seed' FROM n`,
		series + `INSERT INTO events (message_id, source, type, event, profile_id,
			ts_ms, received_ms, properties, raw)
			SELECT 'heavy-' || i || '-' || j, 'seed', 'track',
			CASE j % 2 WHEN 0 THEN 'Workout Completed' ELSE 'Product Added' END, i,
			CAST(? AS BIGINT) + j * 60000, CAST(? AS BIGINT) + j * 60000,
			'{"distance":' || ((i * 7 + j) % 13) || ',"distance_unit":"km",' ||
			'"product_id":"sku-' || ((i + j) % 50) || '"}', '{}' FROM n, m`,
	}
	db := mustOpenWritable(t, dsn)
	err := db.WithTx(context.Background(), func(tx *sqlx.Tx) error {
		for _, stmt := range stmts {
			_, err := tx.Exec(tx.Rebind(stmt), first, last, heavySeedStart, heavySeedStart)
			if err != nil {
				return fmt.Errorf("%.60s: %w", stmt, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("seed people %d to %d: %v", first, last, err)
	}
}

// mustOpenWritable opens the database at dsn as knit does, closed when the
// test ends.
func mustOpenWritable(t *testing.T, dsn string) *sqldb.DB {
	t.Helper()
	db, err := openEngine(context.Background(), dsn, sqldb.DialectFromDSN(dsn))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// heavyRun is the latest run of the heavy audience.
type heavyRun struct {
	id                    int64
	status, err           string
	size, entered, exited int
}

func latestHeavyRun(t *testing.T, db *sql.DB) heavyRun {
	t.Helper()
	var r heavyRun
	err := db.QueryRow(`SELECT id, status, error, size, entered, exited FROM audience_runs
		WHERE audience = 'heavy' ORDER BY id DESC LIMIT 1`).
		Scan(&r.id, &r.status, &r.err, &r.size, &r.entered, &r.exited)
	if err != nil && err != sql.ErrNoRows {
		t.Fatal(err)
	}
	return r
}

// waitForHeavyRun waits until a heavy run after the one numbered after is
// recorded with one of statuses.
func waitForHeavyRun(t *testing.T, db *sql.DB, after int64, statuses ...string) heavyRun {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if r := latestHeavyRun(t, db); r.id > after && slices.Contains(statuses, r.status) {
			return r
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no heavy run after %d became %v", after, statuses)
	return heavyRun{}
}

// heavyResult is the heavy audience's stored result: each member's profile
// and the run that put it there.
func heavyResult(t *testing.T, db *sql.DB) map[int64]int64 {
	t.Helper()
	rows, err := db.Query(`SELECT profile_id, run_id FROM audience_members
		WHERE audience = 'heavy'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	result := map[int64]int64{}
	for rows.Next() {
		var profile, run int64
		if err := rows.Scan(&profile, &run); err != nil {
			t.Fatal(err)
		}
		result[profile] = run
	}
	return result
}

func testKillDuringAudienceRun(t *testing.T, binary string) {
	began := time.Now()
	dsn := sqltest.MustDSN(t, "audience.db")
	config := mustHeavyDatabase(t, dsn)
	t.Logf("seeded in %s", time.Since(began))
	mustRun(t, "audiences", "run", "heavy", "--db", dsn, "--config", config,
		"--clock", heavyClock)
	t.Logf("first run done at %s", time.Since(began))
	db := mustOpenReadOnly(t, dsn)
	proc := newKnitProc(t, binary, dsn, "--config", config, "--clock", heavyClock)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))

	var killed heavyRun
	var before map[int64]int64
	for attempt := 1; killed.id == 0; attempt++ {
		if attempt > 4 {
			t.Fatal("every heavy run finished before the kill; make the audience heavier")
		}
		// New people enter and some leave, so the next result differs.
		base := 1000 + heavyProfiles(dsn) + attempt*100
		seedHeavyPeople(t, dsn, base, base+49)
		mustExec(t, dsn, fmt.Sprintf(`DELETE FROM events WHERE profile_id BETWEEN %d AND %d`,
			1000+attempt*100, 1000+attempt*100+49))
		before = heavyResult(t, db)

		latest := latestHeavyRun(t, db).id
		proc.start(t)
		run := waitForHeavyRun(t, db, latest, "running")
		time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		proc.kill(t)
		t.Logf("attempt %d: killed at %s", attempt, time.Since(began))
		if r := latestHeavyRun(t, db); r.status == "running" {
			killed = r
		} else {
			t.Logf("attempt %d: run %d ended %s before the kill", attempt, run.id, r.status)
		}
	}

	// Killed in the middle: the previous result stands, whole.
	if after := heavyResult(t, db); !equalResults(after, before) {
		t.Fatalf("the killed run changed the result: %d members, had %d", len(after),
			len(before))
	}
	checkNoTrace(t, db, killed.id)

	proc.start(t)
	done := waitForHeavyRun(t, db, killed.id, "ok", "failed")
	proc.stop(t)
	t.Logf("run after restart done at %s", time.Since(began))
	var status, reason string
	mustScan(t, db, fmt.Sprintf(`SELECT status, error FROM audience_runs WHERE id = %d`,
		killed.id), &status, &reason)
	if status != "aborted" || !strings.Contains(reason, "stopped during the run") {
		t.Errorf("the killed run is recorded as %s (%q), want aborted", status, reason)
	}
	checkChangesMatch(t, db, done, before, heavyResult(t, db))

	// The result is what a run from scratch computes now.
	mustRun(t, "audiences", "run", "heavy", "--db", dsn, "--config", config,
		"--clock", heavyClock)
	if again := latestHeavyRun(t, db); again.entered != 0 || again.exited != 0 ||
		again.size != done.size {
		t.Errorf("after restart the result has %d members; a fresh run: %+v", done.size, again)
	}
}

func equalResults(a, b map[int64]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for profile, run := range a {
		if b[profile] != run {
			return false
		}
	}
	return true
}

// checkNoTrace requires that a run cut short left no changes and no
// deliveries behind.
func checkNoTrace(t *testing.T, db *sql.DB, run int64) {
	t.Helper()
	var changes int
	mustScan(t, db, fmt.Sprintf(`SELECT COUNT(*) FROM audience_changes WHERE run_id = %d`,
		run), &changes)
	if changes != 0 {
		t.Errorf("the killed run %d left %d changes", run, changes)
	}
}

// checkChangesMatch requires run's record and changes feed to tell how the
// result went from before to after.
func checkChangesMatch(t *testing.T, db *sql.DB, run heavyRun,
	before, after map[int64]int64) {
	t.Helper()
	want := map[string]int{}
	for profile := range after {
		if _, was := before[profile]; !was {
			want["entered"]++
		}
	}
	for profile := range before {
		if _, is := after[profile]; !is {
			want["exited"]++
		}
	}
	rows, err := db.Query(fmt.Sprintf(`SELECT change, COUNT(*) FROM audience_changes
		WHERE run_id = %d GROUP BY change`, run.id))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]int{}
	for rows.Next() {
		var change string
		var n int
		if err := rows.Scan(&change, &n); err != nil {
			t.Fatal(err)
		}
		got[change] = n
	}
	if got["entered"] != want["entered"] || got["exited"] != want["exited"] ||
		run.entered != want["entered"] || run.exited != want["exited"] ||
		run.size != len(after) || want["entered"] == 0 || want["exited"] == 0 {
		t.Errorf("run %+v, changes %v; the result went from %d to %d members: want %v",
			run, got, len(before), len(after), want)
	}
}

// mustExec runs one statement on the database at dsn.
func mustExec(t *testing.T, dsn, stmt string) {
	t.Helper()
	if _, err := mustOpenWritable(t, dsn).Exec(stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}
