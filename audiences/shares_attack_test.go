package audiences

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// attackIDs are profile ids of every size, up to the largest bigint: the
// share of each is its remainder, which must be the same in every share
// count for the shares to cover everyone once.
var attackIDs = []int64{1, 2, 3, 4, 5, 6, 7, 1<<40 + 3, 1<<53 + 1, math.MaxInt64 - 1, math.MaxInt64}

// mustSeedAttack stores people with identifiers (some anonymous, some
// without email), events of every kind the definitions read, traits
// (nested ones too), and a merged and a retired profile that qualify for
// everything but must never show.
func mustSeedAttack(t *testing.T, db *sqldb.DB) {
	t.Helper()
	now := testNow()
	eventID := int64(0)
	event := func(profile int64, name string, at time.Time, props map[string]any) {
		eventID++
		raw, _ := json.Marshal(props)
		mustExec(t, db, `INSERT INTO events (id, message_id, source, type, event,
			profile_id, ts_ms, received_ms, properties, raw)
			VALUES (?, ?, 'test', 'track', ?, ?, ?, ?, ?, '{}')`,
			eventID, fmt.Sprintf("m%d", eventID), name, profile, at.UnixMilli(),
			at.UnixMilli(), string(raw))
	}
	trait := func(profile int64, key, value string) {
		mustExec(t, db, `INSERT INTO traits (profile_id, key, value, ts_ms, message_id)
			VALUES (?, ?, ?, 0, 'm')`, profile, key, value)
	}
	ident := func(profile int64, kind, value string) {
		mustExec(t, db, `INSERT INTO identities (type, value, profile_id, first_seen_ms,
			first_message_id, source) VALUES (?, ?, ?, 0, 'm', 'test')`, kind, value, profile)
	}
	all := append([]int64{}, attackIDs...)
	const merged, retired = 8, 9
	all = append(all, merged, retired)
	for _, id := range all {
		mustExec(t, db, `INSERT INTO profiles (id, created_ms, updated_ms) VALUES (?, 0, 0)`, id)
	}
	mustExec(t, db, `UPDATE profiles SET merged_into = 1 WHERE id = ?`, merged)
	mustExec(t, db, `UPDATE profiles SET retired_ms = 1 WHERE id = ?`, retired)
	for n, id := range all {
		switch n % 4 {
		case 0: // anonymous
		case 1:
			ident(id, "user_id", fmt.Sprintf("u%d", id))
		default:
			ident(id, "user_id", fmt.Sprintf("u%d", id))
			ident(id, "email", fmt.Sprintf("e%d@example.com", id))
		}
		if id == merged || id == retired {
			ident(id, "email", fmt.Sprintf("x%d@example.com", id))
		}
		for k := 0; k <= n%5; k++ {
			event(id, "Product Viewed", now.Add(-time.Duration(k+1)*time.Hour),
				map[string]any{"product_id": fmt.Sprintf("p%d", k)})
		}
		if n%3 != 1 || id == merged || id == retired {
			event(id, "Order Completed", now.Add(-time.Duration(40+n)*day), map[string]any{
				"products": []any{map[string]any{"product_id": "p0", "category": "shoes"}}})
		}
		if n%2 == 0 || id == merged {
			event(id, "Product Added", now.Add(-2*day), map[string]any{"product_id": "p1"})
		}
		for k := 0; k < n%4+1; k++ {
			event(id, "Workout Completed", now.Add(-time.Duration(k+1)*day),
				map[string]any{"distance": 150 + n*7, "distance_unit": "km"})
		}
		if n%2 == 1 || id == merged || id == retired {
			trait(id, "first_name", `"Pat"`)
		}
		if n%3 == 0 {
			trait(id, "address\x1fcity", `"Oslo"`)
		}
	}
}

func attackDefinitions(t *testing.T) []Definition {
	defs := Builtins()
	for _, text := range []string{
		`name: a_performed
include_anonymous: true
condition:
  performed: {event: Product Viewed, at_least: 2, within: 3d}
  attributes: {views: count, first_view: first_at, last_view: last_at}`,
		`name: a_not_performed
condition: {not_performed: {event: Order Completed, within: 45d}}`,
		`name: a_then_not
include_anonymous: true
condition:
  then_not:
    first: {event: Product Added, key: product_id}
    not_followed_by:
      - {event: Order Completed, key: "products[].product_id"}
  attributes: {keys: keys, n: count}`,
		`name: a_aggregate
condition:
  aggregate: {event: Workout Completed, function: sum, property: distance,
    within: 30d, at_least: 80}
  attributes: {total: value}`,
		`name: a_since
include_anonymous: true
condition:
  aggregate:
    event: Workout Completed
    function: avg
    property: distance
    since_latest:
      event: Order Completed
      where: [{property: "products[].category", equals: SHOES, ignore_case: true}]
    at_least: 1
  attributes: {avg: value, shoe: "anchor.products[].product_id", at: anchor_at}`,
		`name: a_trait
require_email: true
condition:
  trait: {key: first_name, equals: Pat}
  attributes: {name: value}`,
		`name: a_no_address
include_anonymous: true
condition: {trait: {key: address, exists: false}}`,
		`name: a_in
condition: {in_audience: a_trait}`,
		`name: a_tree
include_anonymous: true
condition:
  or:
    - and:
        - {performed: {event: Product Viewed}, attributes: {v: count}}
        - {not: {trait: {key: first_name, exists: true}}}
    - {in_audience: a_performed}
    - {not: {performed: {event: Workout Completed, at_least: 3}}}`,
	} {
		defs = append(defs, mustDefinition(t, text))
	}
	return defs
}

// TestAttackSharesAgreeAtEveryCount runs every kind of condition through
// the runner with 1 to 8 queries (more than there are live profiles with
// most audiences' events) over ids up to the largest bigint, with merged
// and retired profiles: every count gives one query's members and
// attributes, and nothing shows twice.
func TestAttackSharesAgreeAtEveryCount(t *testing.T) {
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		mustSeedAttack(t, db)
		defs := attackDefinitions(t)
		one := NewRunner(db, defs, testNow, nil)
		one.SetQueriesPerAudience(1)
		// The audiences that in_audience reads need a saved result.
		for _, name := range []string{"a_trait", "a_performed"} {
			if _, err := one.Run(context.Background(), name); err != nil {
				t.Fatal(err)
			}
		}
		for _, def := range defs {
			want, err := one.members(context.Background(), def, testNow())
			if err != nil {
				t.Fatal(err)
			}
			if len(want) == 0 {
				t.Errorf("%s has no members; the comparison would prove little", def.Name)
			}
			for _, m := range want {
				if m.ProfileID == 8 || m.ProfileID == 9 {
					t.Errorf("%s: merged or retired profile %d is a member", def.Name, m.ProfileID)
				}
			}
			for n := 2; n <= 8; n++ {
				r := NewRunner(db, defs, testNow, nil)
				r.SetQueriesPerAudience(n)
				got, err := r.members(context.Background(), def, testNow())
				if err != nil {
					t.Fatalf("%s in %d queries: %v", def.Name, n, err)
				}
				if (len(got) != 0 || len(want) != 0) && !reflect.DeepEqual(got, want) {
					t.Errorf("%s in %d queries:\n got %v\nwant %v", def.Name, n, got, want)
				}
			}
		}
	})
}

// TestAttackQueriesPerAudienceBelowOne: zero and negative counts compute
// in one query rather than in none.
func TestAttackQueriesPerAudienceBelowOne(t *testing.T) {
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		mustSeedAttack(t, db)
		def := mustDefinition(t, `name: x
include_anonymous: true
condition: {performed: {event: Product Viewed}}`)
		for _, n := range []int{0, -3} {
			r := NewRunner(db, []Definition{def}, testNow, nil)
			r.SetQueriesPerAudience(n)
			got, err := r.members(context.Background(), def, testNow())
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(attackIDs) {
				t.Errorf("with %d queries: %d members, want %d", n, len(got), len(attackIDs))
			}
		}
	})
}

// savedMembers is the audience's current result.
func savedMembers(t *testing.T, db *sqldb.DB, audience string) []int64 {
	t.Helper()
	var ids []int64
	if err := db.Select(&ids, db.Rebind(`SELECT profile_id FROM audience_members
		WHERE audience = ? ORDER BY profile_id`), audience); err != nil {
		t.Fatal(err)
	}
	return ids
}

// openTagged opens a second pool on db's schema whose sessions carry a
// name of their own, so pg_stat_activity shows which backends are its.
func openTagged(t *testing.T, db *sqldb.DB) (*sqldb.DB, string) {
	t.Helper()
	var schema string
	if err := db.Get(&schema, `SELECT current_schema()`); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(sqltestServer(t))
	if err != nil {
		t.Fatal(err)
	}
	tag := "knit_attack_" + schema
	query := u.Query()
	query.Set("search_path", schema)
	query.Set("application_name", tag)
	u.RawQuery = query.Encode()
	tagged, err := sqldb.OpenPostgres(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tagged.Close() })
	return tagged, tag
}

func sqltestServer(t *testing.T) string {
	server := os.Getenv(sqltest.PostgresEnv)
	if server == "" {
		t.Skipf("%s is not set", sqltest.PostgresEnv)
	}
	return server
}

// busyBackends lists the tagged sessions that are not idle, with what
// they run.
func busyBackends(t *testing.T, admin *sqldb.DB, tag string) []string {
	t.Helper()
	var busy []string
	if err := admin.Select(&busy, `SELECT state || ': ' || left(query, 60)
		FROM pg_stat_activity WHERE application_name = $1 AND state <> 'idle'
		AND pid <> pg_backend_pid()`, tag); err != nil {
		t.Fatal(err)
	}
	return busy
}

// waitIdle waits a while for the tagged sessions to go idle and returns
// those that stay busy.
func waitIdle(t *testing.T, admin *sqldb.DB, tag string, within time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		busy := busyBackends(t, admin, tag)
		if len(busy) == 0 || time.Now().After(deadline) {
			return busy
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAttackAbortWhileSharesWaitKeepsTheResult starts a run in four
// queries while another session holds the events table, so the run waits
// on the lock, then aborts the runner: the run is recorded as
// aborted, the previous result stays, and once the lock is gone no
// session of the runner is left in a transaction.
func TestAttackAbortWhileSharesWaitKeepsTheResult(t *testing.T) {
	db := sqltest.MustOpenPostgres(t)
	mustSeedAttack(t, db)
	tagged, tag := openTagged(t, db)
	def := mustDefinition(t, `name: viewers
include_anonymous: true
condition: {performed: {event: Product Viewed}}`)
	first := NewRunner(tagged, []Definition{def}, testNow, nil)
	if _, err := first.Run(context.Background(), "viewers"); err != nil {
		t.Fatal(err)
	}
	before := savedMembers(t, db, "viewers")
	if len(before) == 0 {
		t.Fatal("no members to keep")
	}
	mustExec(t, db, `DELETE FROM events WHERE event = 'Product Viewed'`)

	locker, err := db.BeginTxx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = locker.Rollback() }()
	if _, err := locker.Exec(`LOCK TABLE events IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}

	r := NewRunner(tagged, []Definition{def}, testNow, nil)
	r.SetQueriesPerAudience(4)
	done := make(chan error, 1)
	var run Run
	go func() {
		var err error
		run, err = r.Run(context.Background(), "viewers")
		done <- err
	}()
	// Wait until the run waits on the lock: the first transaction locks
	// the tables it reads before the others join it, so one session
	// waits, and no other share has started.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		if err := db.Get(&waiting, `SELECT COUNT(*) FROM pg_stat_activity
			WHERE application_name = $1 AND wait_event_type = 'Lock'`, tag); err != nil {
			t.Fatal(err)
		}
		if waiting == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions wait on the lock, want the first share's 1", waiting)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.Abort()
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the aborted run did not return")
	}
	if err == nil || run.Status != StatusAborted {
		t.Fatalf("run = %+v, err = %v; want aborted", run, err)
	}
	_ = locker.Rollback()
	if busy := waitIdle(t, db, tag, 10*time.Second); len(busy) > 0 {
		t.Errorf("sessions still busy after the abort: %q", busy)
	}
	if after := savedMembers(t, db, "viewers"); !reflect.DeepEqual(after, before) {
		t.Errorf("after the abort the result is %v, want the previous %v", after, before)
	}
}

// mustBoobyTrapEvents puts a view in place of events whose event column
// fails for one profile and sleeps for another: a query over a share
// reads only its profiles' rows, cheapest condition first.
func mustBoobyTrapEvents(t *testing.T, db *sqldb.DB, fails, sleeps int64) {
	t.Helper()
	var columns []string
	if err := db.Select(&columns, `SELECT column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = 'events'
		ORDER BY ordinal_position`); err != nil {
		t.Fatal(err)
	}
	for i, c := range columns {
		if c == "event" {
			columns[i] = "attack_trap(profile_id, event) AS event"
		}
	}
	mustExec(t, db, fmt.Sprintf(`CREATE FUNCTION attack_trap(pid bigint, ev text)
		RETURNS text LANGUAGE plpgsql COST 10000 AS $$
		BEGIN
			IF pid = %d THEN RAISE EXCEPTION 'attack: profile %% fails', pid; END IF;
			IF pid = %d THEN PERFORM pg_sleep(1); END IF;
			RETURN ev;
		END $$`, fails, sleeps))
	mustExec(t, db, `ALTER TABLE events RENAME TO events_base`)
	mustExec(t, db, `CREATE VIEW events AS SELECT `+strings.Join(columns, ", ")+
		` FROM events_base`)
}

// TestAttackOneShareFailsTheRunWithItsError: the share with profile 3
// fails while the share with profile 2 sleeps; the run fails with the
// first share's error, not with the cancellation of the other, keeps the
// previous result, and does not wait for the sleeper.
func TestAttackOneShareFailsTheRunWithItsError(t *testing.T) {
	db := sqltest.MustOpenPostgres(t)
	mustSeedAttack(t, db)
	def := mustDefinition(t, `name: workouts
include_anonymous: true
condition: {performed: {event: Workout Completed}}`)
	ok := NewRunner(db, []Definition{def}, testNow, nil)
	if _, err := ok.Run(context.Background(), "workouts"); err != nil {
		t.Fatal(err)
	}
	before := savedMembers(t, db, "workouts")
	mustBoobyTrapEvents(t, db, 3, 2)

	r := NewRunner(db, []Definition{def}, testNow, nil)
	r.SetQueriesPerAudience(2)
	run, err := r.Run(context.Background(), "workouts")
	if err == nil {
		t.Fatal("the run succeeded")
	}
	if !strings.Contains(err.Error(), "attack: profile 3 fails") ||
		!strings.Contains(run.Error, "attack: profile 3 fails") {
		t.Errorf("err = %v, recorded %q; want the failing share's error", err, run.Error)
	}
	if run.Status != StatusFailed {
		t.Errorf("status %q, want %q", run.Status, StatusFailed)
	}
	if after := savedMembers(t, db, "workouts"); !reflect.DeepEqual(after, before) {
		t.Errorf("result %v after the failure, want the previous %v", after, before)
	}
}

// TestAttackManyRunsAtOnceOnAFullPool runs 14 audiences at once, each
// asking for 8 queries, on a pool of 20: the lock connections and the
// first transactions fill the pool, the extra queries are given up, and
// every run finishes with one query's members.
func TestAttackManyRunsAtOnceOnAFullPool(t *testing.T) {
	db := sqltest.MustOpenPostgres(t)
	mustSeedAttack(t, db)
	var defs []Definition
	for i := range 14 {
		defs = append(defs, mustDefinition(t, fmt.Sprintf(`name: many%d
include_anonymous: true
condition: {aggregate: {event: Workout Completed, function: sum, property: distance,
  at_least: %d}}`, i, 150+i*40)))
	}
	one := NewRunner(db, defs, testNow, nil)
	one.SetQueriesPerAudience(1)
	want := map[string][]Member{}
	for _, def := range defs {
		m, err := one.members(context.Background(), def, testNow())
		if err != nil {
			t.Fatal(err)
		}
		want[def.Name] = m
	}

	r := NewRunner(db, defs, testNow, nil)
	r.SetQueriesPerAudience(8)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for round := range 3 {
		for _, def := range defs {
			wg.Go(func() {
				if round%2 == 0 {
					if _, err := r.Run(ctx, def.Name); err != nil {
						t.Errorf("run %s: %v", def.Name, err)
					}
					return
				}
				got, err := r.members(ctx, def, testNow())
				if err != nil {
					t.Errorf("members of %s: %v", def.Name, err)
				} else if !reflect.DeepEqual(got, want[def.Name]) {
					t.Errorf("%s: %d members, want %d", def.Name, len(got), len(want[def.Name]))
				}
			})
		}
	}
	wg.Wait()
	for _, def := range defs {
		var ids []int64
		for _, m := range want[def.Name] {
			ids = append(ids, m.ProfileID)
		}
		if got := savedMembers(t, db, def.Name); !reflect.DeepEqual(got, ids) {
			t.Errorf("%s saved %v, want %v", def.Name, got, ids)
		}
	}
}

// TestAttackMergesDuringSharedRuns merges profiles pairwise, each merge
// one transaction that moves identifiers and events to the survivor and
// retires the other, while audiences are computed in 2 and 3 queries and
// other events are written. The two of a pair are in different shares of
// two; a share that saw the database at another moment than the others
// would count a pair's workouts twice or not at all. Every computation
// must count every workout once.
func TestAttackMergesDuringSharedRuns(t *testing.T) {
	db := sqltest.MustOpenPostgres(t)
	const people = 240
	total := 0
	var eventID int64
	for id := int64(1); id <= people; id++ {
		mustExec(t, db, `INSERT INTO profiles (id, created_ms, updated_ms) VALUES (?, 0, 0)`, id)
		mustExec(t, db, `INSERT INTO identities (type, value, profile_id, first_seen_ms,
			first_message_id, source) VALUES ('user_id', ?, ?, 0, 'm', 'test')`,
			fmt.Sprintf("u%d", id), id)
		for k := int64(0); k <= id%3; k++ {
			eventID++
			total++
			mustExec(t, db, `INSERT INTO events (id, message_id, source, type, event,
				profile_id, ts_ms, received_ms, properties, raw)
				VALUES (?, ?, 'test', 'track', 'Workout Completed', ?, ?, 0, '{}', '{}')`,
				eventID, fmt.Sprintf("m%d", eventID), id, ago(day).UnixMilli())
		}
	}
	def := mustDefinition(t, `name: workouts
include_anonymous: true
condition:
  performed: {event: Workout Completed}
  attributes: {n: count}`)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	merged := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // the merges
		defer close(merged)
		for a := int64(1); a < people; a += 2 {
			err := db.WithTx(ctx, func(tx *sqlx.Tx) error {
				for _, stmt := range []string{
					`UPDATE identities SET profile_id = ? WHERE profile_id = ?`,
					`UPDATE events SET profile_id = ? WHERE profile_id = ?`,
					`UPDATE profiles SET merged_into = ? WHERE id = ?`,
				} {
					if _, err := tx.ExecContext(ctx, tx.Rebind(stmt), a, a+1); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Errorf("merge %d into %d: %v", a+1, a, err)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	wg.Go(func() { // other ingestion meanwhile
		for i := 0; ; i++ {
			select {
			case <-merged:
				return
			default:
			}
			_, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO events (id, message_id,
				source, type, event, profile_id, ts_ms, received_ms, properties, raw)
				VALUES (?, ?, 'test', 'track', 'Page Viewed', ?, 0, 0, '{}', '{}')`),
				eventID+int64(i)+1, fmt.Sprintf("x%d", i), int64(i%people)+1)
			if err != nil {
				t.Errorf("ingest: %v", err)
				return
			}
		}
	})
	var computed sync.Map
	for w := range 4 {
		wg.Go(func() {
			r := NewRunner(db, []Definition{def}, testNow, nil)
			r.SetQueriesPerAudience(2 + w%2)
			for runs := 0; ; runs++ {
				select {
				case <-merged:
					computed.Store(w, runs)
					return
				default:
				}
				members, err := r.members(ctx, def, testNow())
				if err != nil {
					t.Errorf("compute: %v", err)
					return
				}
				counted := 0
				for _, m := range members {
					counted += int(m.Attributes["n"].(int64))
				}
				if counted != total {
					t.Errorf("%d queries counted %d workouts over %d members, want %d",
						2+w%2, counted, len(members), total)
					return
				}
			}
		})
	}
	wg.Wait()
	computed.Range(func(w, runs any) bool {
		if runs.(int) == 0 {
			t.Errorf("worker %v computed nothing while the merges ran", w)
		}
		return true
	})
}

// TestManyRunsAtOnceAllFinish starts 25 audiences' runs at once, more than
// the PostgreSQL pool's 20 connections: each run held one for its lock
// across processes and waited for another, so twenty of them waited for
// ever. Now every run finishes.
func TestManyRunsAtOnceAllFinish(t *testing.T) {
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		mustSeedAttack(t, db)
		var defs []Definition
		for i := range 25 {
			defs = append(defs, mustDefinition(t, fmt.Sprintf(`name: many%d
include_anonymous: true
condition: {performed: {event: Workout Completed}}`, i)))
		}
		r := NewRunner(db, defs, testNow, nil)
		// A guard against hanging only: the runs take well under a second.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var wg sync.WaitGroup
		for _, def := range defs {
			wg.Go(func() {
				if run, err := r.Run(ctx, def.Name); err != nil || run.Status != StatusOK {
					t.Errorf("run %s: %+v, %v", def.Name, run, err)
				}
			})
		}
		wg.Wait()
	})
}
