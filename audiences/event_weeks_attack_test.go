package audiences

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// Extreme event times (ms) that Segment timestamps can carry and
// ingestion keeps: the first instant of year 0000 and the last of 9999.
var (
	attackYear0    = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	attackYear9999 = time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC).UnixMilli()
)

// attackTimes draws event times from every era: week edges (before 1970,
// where division truncates upwards, around the epoch and now), the ends
// of the years ingestion accepts, and arbitrary instants between them.
func attackTimes(rng *rand.Rand, n int) []int64 {
	pick := func() int64 {
		switch rng.IntN(6) {
		case 0:
			week := rng.Int64N(40) - 20
			if rng.IntN(2) == 0 {
				week += 2900
			}
			return week*eventWeekMs + rng.Int64N(5) - 2
		case 1:
			return attackYear0 + rng.Int64N(3*eventWeekMs)
		case 2:
			return attackYear9999 - rng.Int64N(3*eventWeekMs)
		case 3:
			return attackYear0 + rng.Int64N(attackYear9999-attackYear0+1)
		case 4:
			return testNow().UnixMilli() - rng.Int64N(60*24*3600000)
		default:
			return rng.Int64N(4*eventWeekMs) - 2*eventWeekMs
		}
	}
	times := make([]int64, n)
	for i := range times {
		times[i] = pick()
	}
	return times
}

// attackWindow is a window as YAML and the span it means, in ms before
// now: the events from now-early to now-late, both ends included.
type attackWindow struct {
	yaml        string
	early, late time.Duration
}

// randomWindow draws within or between windows, tiny to the largest a
// Duration holds, often a whole number of weeks so that ends fall on week
// edges, with between's durations in either order.
func randomWindow(rng *rand.Rand) attackWindow {
	durations := []time.Duration{time.Nanosecond, time.Millisecond, 2 * time.Millisecond,
		time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 14 * 24 * time.Hour,
		7*24*time.Hour - time.Millisecond, 7*24*time.Hour + time.Millisecond,
		36600 * 24 * time.Hour, 2562047 * time.Hour, time.Duration(1<<63 - 1)}
	pick := func() time.Duration {
		if rng.IntN(3) == 0 {
			return time.Duration(rng.Int64N(int64(300 * 24 * time.Hour)))
		}
		return durations[rng.IntN(len(durations))]
	}
	if rng.IntN(2) == 0 {
		d := pick()
		return attackWindow{yaml: "within: " + d.String(), early: d}
	}
	a, b := pick(), pick()
	for a == b {
		b = pick()
	}
	early, late := max(a, b), min(a, b)
	return attackWindow{yaml: fmt.Sprintf("between: [%s, %s]", a, b), early: early, late: late}
}

// holds reports whether an event at ms lies in w evaluated at now (ms).
func (w attackWindow) holds(now, at int64) bool {
	return at >= now-w.early.Milliseconds() && at <= now-w.late.Milliseconds()
}

// attackEvent is one stored event of the property test.
type attackEvent struct {
	profile int64
	name    string
	at      int64
	amount  int64
	sku     string
}

// TestWindowsHoldTheSameEventsAtAnyTime stores events at random times of
// every era and checks, for random windows evaluated at random times, that
// every windowed leaf kind (performed with and without counts, where
// filters through an array, not_performed, aggregates over a property and
// through an array, nested in or/not) holds exactly for the profiles a
// plain Go range over the stored times picks, on each engine.
func TestWindowsHoldTheSameEventsAtAnyTime(t *testing.T) {
	onEachEngine(t, testWindowsHoldTheSameEventsAtAnyTime)
}

func testWindowsHoldTheSameEventsAtAnyTime(t *testing.T, db *sqldb.DB) {
	rng := rand.New(rand.NewPCG(47, 19))
	const profiles = 60
	var events []attackEvent
	for p := int64(1); p <= profiles; p++ {
		mustExec(t, db, `INSERT INTO profiles (id, created_ms, updated_ms) VALUES (?, 0, 0)`, p)
		var history []testEvent
		for _, at := range attackTimes(rng, 1+rng.IntN(4)) {
			e := attackEvent{profile: p, name: "Ran", at: at, amount: rng.Int64N(3),
				sku: []string{"a", "b"}[rng.IntN(2)]}
			if rng.IntN(5) == 0 {
				e.name = "Other"
			}
			events = append(events, e)
			history = append(history, testEvent{Name: e.name, Time: time.UnixMilli(at),
				Properties: map[string]any{"amount": e.amount,
					"products": []any{map[string]any{"sku": e.sku, "n": e.amount}}}})
		}
		mustStoreEvents(t, db, p, history)
	}

	type leaf struct {
		yaml string
		want func(w attackWindow, now int64, mine []attackEvent) bool
	}
	inWindow := func(w attackWindow, now int64, mine []attackEvent,
		keep func(attackEvent) bool) (n, sum, top int64) {
		top = -1
		for _, e := range mine {
			if e.name == "Ran" && w.holds(now, e.at) && keep(e) {
				n, sum, top = n+1, sum+e.amount, max(top, e.amount)
			}
		}
		return n, sum, top
	}
	every := func(attackEvent) bool { return true }
	leaves := []leaf{
		{"performed: {event: Ran, %s}", func(w attackWindow, now int64, m []attackEvent) bool {
			n, _, _ := inWindow(w, now, m, every)
			return n >= 1
		}},
		{"performed: {event: Ran, exactly: 2, %s}",
			func(w attackWindow, now int64, m []attackEvent) bool {
				n, _, _ := inWindow(w, now, m, every)
				return n == 2
			}},
		{"performed: {event: Ran, where: [{property: 'products[].sku', equals: a}], %s}",
			func(w attackWindow, now int64, m []attackEvent) bool {
				n, _, _ := inWindow(w, now, m, func(e attackEvent) bool { return e.sku == "a" })
				return n >= 1
			}},
		{"not_performed: {event: Ran, %s}", func(w attackWindow, now int64, m []attackEvent) bool {
			n, _, _ := inWindow(w, now, m, every)
			return n == 0
		}},
		{"aggregate: {event: Ran, function: sum, property: amount, at_least: 2, %s}",
			func(w attackWindow, now int64, m []attackEvent) bool {
				_, sum, _ := inWindow(w, now, m, every)
				return sum >= 2
			}},
		{"aggregate: {event: Ran, function: count, at_most: 1, %s}",
			func(w attackWindow, now int64, m []attackEvent) bool {
				n, _, _ := inWindow(w, now, m, every)
				return n <= 1
			}},
		{"aggregate: {event: Ran, function: max, property: 'products[].n', at_least: 1, %s}",
			func(w attackWindow, now int64, m []attackEvent) bool {
				_, _, top := inWindow(w, now, m, every)
				return top >= 1
			}},
		{"or: [{performed: {event: Ran, at_least: 2, %[1]s}}, " +
			"{not: {performed: {event: Ran, %[1]s}}}]",
			func(w attackWindow, now int64, m []attackEvent) bool {
				n, _, _ := inWindow(w, now, m, every)
				return n >= 2 || n == 0
			}},
	}

	byProfile := map[int64][]attackEvent{}
	for _, e := range events {
		byProfile[e.profile] = append(byProfile[e.profile], e)
	}
	eventTimes := make([]int64, len(events))
	for i, e := range events {
		eventTimes[i] = e.at
	}
	r := NewRunner(db, nil, testNow, nil)
	for round := range 40 {
		now := testNow().UnixMilli()
		switch round % 4 {
		case 0:
			now = eventTimes[rng.IntN(len(eventTimes))] + rng.Int64N(3) - 1
		case 1:
			now = attackTimes(rng, 1)[0]
		case 2:
			now = attackYear9999
		}
		w := randomWindow(rng)
		for _, l := range leaves {
			text := fmt.Sprintf(l.yaml, w.yaml)
			def := mustDefinition(t, "include_anonymous: true\ncondition: {"+text+"}")
			if err := Validate([]Definition{def}); err != nil {
				t.Fatalf("%s: %v", text, err)
			}
			got := memberIDsAt(t, r, def, time.UnixMilli(now))
			var wrong []string
			for p := int64(1); p <= profiles; p++ {
				if want := l.want(w, now, byProfile[p]); want != got[p] {
					wrong = append(wrong, fmt.Sprintf("profile %d (events %v) member %v, want %v",
						p, timesOf(byProfile[p]), got[p], want))
				}
			}
			if len(wrong) > 0 {
				t.Errorf("%s at now=%d:\n%s", text, now, strings.Join(wrong, "\n"))
			}
		}
	}
}

// timesOf lists the times of events, sorted.
func timesOf(events []attackEvent) []string {
	var times []string
	for _, e := range events {
		times = append(times, fmt.Sprintf("%s@%d", e.name, e.at))
	}
	slices.Sort(times)
	return times
}

// TestSQLiteFindsEveryWindowedLeafByWeek checks SQLite's plan for each leaf
// kind that takes a window, with where filters, through arrays and nested
// in and/or/not: each of its windows reads the events index by name and a
// range of weeks, as many times as the definition has windowed leaves.
func TestSQLiteFindsEveryWindowedLeafByWeek(t *testing.T) {
	db := sqltest.MustOpenSQLite(t)
	const byWeek = "USING INDEX events_event_week (event=? AND <expr>>? AND <expr><?)"
	for _, c := range []struct {
		condition string
		windows   int
	}{
		{"not_performed: {event: Ran, between: [1h, 9d]}", 1},
		{"performed: {event: Ran, exactly: 2, within: 1ns}", 1},
		{"performed: {event: Ran, where: [{property: 'products[].sku', equals: a}], " +
			"within: 2d}", 1},
		{"performed: {event: Ran, where: [{property: amount, at_least: 1}], within: 2d}", 1},
		{"aggregate: {event: Ran, function: sum, property: 'products[].n', at_least: 1, " +
			"within: 3d}", 1},
		{"aggregate: {event: Ran, function: distinct_count, property: sku, at_least: 2, " +
			"between: [3d, 2562047h]}", 1},
		{"and: [{trait: {key: plan, equals: pro}}, " +
			"{not: {performed: {event: Ran, within: 14d}}}]", 1},
		{"or: [{performed: {event: Ran, within: 1h}}, " +
			"{aggregate: {event: Bought, function: count, at_most: 3, between: [0s, 36600d]}}]",
			2},
	} {
		def := mustDefinition(t, "condition: {"+c.condition+"}")
		if err := Validate([]Definition{def}); err != nil {
			t.Fatalf("%s: %v", c.condition, err)
		}
		compiled, err := compile(def, testNow(), sqliteDialect{})
		if err != nil {
			t.Fatal(err)
		}
		plan := queryPlan(t, db, compiled)
		if n := strings.Count(plan, byWeek); n != c.windows {
			t.Errorf("%s: the plan reads %d windows by week, want %d:\n%s",
				c.condition, n, c.windows, plan)
		}
	}
}
