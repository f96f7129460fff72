package audiences

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// weekEdgeTimes are event times (ms) on both sides of week edges of SQLite's
// events index: before 1970, where truncating division rounds up, around
// the epoch, and in 2026.
func weekEdgeTimes() []int64 {
	var times []int64
	for _, week := range []int64{-3, -2, -1, 0, 1, 2, 2918, 2919, 2920} {
		edge := week * eventWeekMs
		for _, offset := range []int64{-eventWeekMs / 2, -1, 0, 1} {
			times = append(times, edge+offset)
		}
	}
	return times
}

// TestWindowsAtWeekEdges stores one event a profile at each of
// weekEdgeTimes and checks, for windows whose ends fall on, beside and
// between those times, that an audience holds exactly the profiles whose
// event is in the window: the weeks SQLite's compiler adds to a window
// never leave an event out, on either engine.
func TestWindowsAtWeekEdges(t *testing.T) {
	onEachEngine(t, testWindowsAtWeekEdges)
}

func testWindowsAtWeekEdges(t *testing.T, db *sqldb.DB) {
	times := weekEdgeTimes()
	for i, at := range times {
		profile := int64(i + 1)
		mustExec(t, db, `INSERT INTO profiles (id, created_ms, updated_ms) VALUES (?, 0, 0)`,
			profile)
		mustStoreEvents(t, db, profile, []testEvent{{Name: "Ran", Time: time.UnixMilli(at)}})
	}
	r := NewRunner(db, nil, testNow, nil)

	for _, now := range times {
		for _, window := range []struct {
			yaml     string
			from, to int64 // before now, in ms
		}{
			{"within: 1d", 24 * 3600000, 0},
			{"within: 7d", eventWeekMs, 0},
			{"within: 8d", eventWeekMs + 24*3600000, 0},
			{"between: [8d, 1d]", eventWeekMs + 24*3600000, 24 * 3600000},
			{"between: [1h, 10d]", 10 * 24 * 3600000, 3600000},
		} {
			def := mustDefinition(t, "include_anonymous: true\n"+
				"condition: {performed: {event: Ran, "+window.yaml+"}}")
			got := memberIDsAt(t, r, def, time.UnixMilli(now))
			want := map[int64]bool{}
			for i, at := range times {
				if at >= now-window.from && at <= now-window.to {
					want[int64(i+1)] = true
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s at %d: members %v, want %v", window.yaml, now, got, want)
			}
		}
	}
}

// memberIDsAt computes def as of now and returns its members' ids.
func memberIDsAt(t *testing.T, r *Runner, def Definition, now time.Time) map[int64]bool {
	t.Helper()
	members, err := r.members(context.Background(), def, now)
	if err != nil {
		t.Fatalf("compute %s: %v", def.Name, err)
	}
	ids := map[int64]bool{}
	for _, m := range members {
		ids[m.ProfileID] = true
	}
	return ids
}

// TestSQLiteFindsWindowsByEventAndWeek checks SQLite's plan for a window
// of events: it reads the events index by name and a range of weeks, not
// every event of the name.
func TestSQLiteFindsWindowsByEventAndWeek(t *testing.T) {
	db := sqltest.MustOpenSQLite(t)
	bounded := "USING INDEX events_event_week (event=? AND <expr>>? AND <expr><?)"
	for _, tt := range []struct{ leaf, want string }{
		{"performed: {event: Ran, within: 2d}", bounded},
		{"performed: {event: Ran, between: [8d, 1d]}", bounded},
		// Without a start, the weeks after now are left out.
		{"performed: {event: Ran}", "USING INDEX events_event_week (event=? AND <expr><?)"},
	} {
		def := mustDefinition(t, "condition: {"+tt.leaf+"}")
		compiled, err := compile(def, testNow(), sqliteDialect{})
		if err != nil {
			t.Fatal(err)
		}
		plan := queryPlan(t, db, compiled)
		if !strings.Contains(plan, tt.want) {
			t.Errorf("%s: the plan does not read %q:\n%s", tt.leaf, tt.want, plan)
		}
	}
}

// TestSQLiteFindsTimesStoredAsFractions stores event times as fractions,
// which only a hand edit can do (knit writes whole milliseconds; SQLite's
// INTEGER column keeps a fraction as it is): the weeks a window adds still
// hold them.
func TestSQLiteFindsTimesStoredAsFractions(t *testing.T) {
	db := sqltest.MustOpenSQLite(t)
	now := testNow().UnixMilli()
	times := []float64{float64(now) - 3600000 + 0.5, -float64(eventWeekMs)/2.5 + 0.5, 0.25}
	for i, at := range times {
		profile := int64(i + 1)
		mustExec(t, db, `INSERT INTO profiles (id, created_ms, updated_ms) VALUES (?, 0, 0)`,
			profile)
		mustExec(t, db, `INSERT INTO events (message_id, source, type, event, profile_id,
			ts_ms, received_ms, properties, raw)
			VALUES (?, 'test', 'track', 'Ran', ?, ?, 0, '{}', '{}')`,
			fmt.Sprint("m", profile), profile, at)
	}
	r := NewRunner(db, nil, testNow, nil)

	for i, at := range times {
		now := time.UnixMilli(int64(at) + 1000)
		def := mustDefinition(t, "include_anonymous: true\n"+
			"condition: {performed: {event: Ran, within: 1d}}")
		if got := memberIDsAt(t, r, def, now); !got[int64(i+1)] {
			t.Errorf("the event at %v is not in the day before %d: members %v", at,
				now.UnixMilli(), got)
		}
	}
}

// queryPlan is SQLite's EXPLAIN QUERY PLAN of a compiled query, a line a
// step.
func queryPlan(t *testing.T, db *sqldb.DB, compiled query) string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(),
		"EXPLAIN QUERY PLAN "+compiled.sql, compiled.args...)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rows.Close() }()

	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, "\n")
}
