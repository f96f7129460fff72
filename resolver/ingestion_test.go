package resolver_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
)

// receivedEvent is an event as the ingestion chart counts it.
type receivedEvent struct {
	kind, source string
	received     time.Time
}

func mustStoreReceived(t *testing.T, db *sqldb.DB, events []receivedEvent) {
	t.Helper()
	for i, e := range events {
		_, err := db.Exec(db.Rebind(`INSERT INTO events
			(message_id, source, type, ts_ms, received_ms, raw)
			VALUES (?, ?, ?, ?, ?, '{}')`), "m"+string(rune('a'+i)), e.source, e.kind,
			e.received.UnixMilli(), e.received.UnixMilli())
		if err != nil {
			t.Fatalf("store event %d: %v", i, err)
		}
	}
}

func TestEventRatesCountTheLastDayByMinuteTypeAndSource(t *testing.T) {
	end := time.Date(2026, 12, 4, 15, 8, 30, 500e6, time.UTC)
	start := time.Date(2026, 12, 3, 15, 9, 0, 0, time.UTC) // 1,439 minutes before 15:08
	at := func(day, hour, minute, second, ms int) time.Time {
		return time.Date(2026, 12, day, hour, minute, second, ms*1e6, time.UTC)
	}
	events := []receivedEvent{
		{"track", "webhook", end},                           // the last minute, at end itself
		{"identify", "webhook", end.Add(time.Millisecond)},  // after end: not counted
		{"identify", "webhook", end.Add(time.Hour)},         // after end: not counted
		{"track", "wk_a", at(4, 15, 8, 0, 0)},               // the last minute's start
		{"page", "wk_a", start},                             // the first minute's start
		{"screen", "webhook", start.Add(-time.Millisecond)}, // before the first minute
		{"group", "wk_a", at(4, 3, 0, 15, 0)},               // minute 711
		{"alias", "webhook", at(4, 3, 0, 59, 999)},          // minute 711
		{"track", "webhook", at(4, 3, 0, 0, 0)},             // minute 711
		{"identify", "wk_a", at(4, 14, 0, 0, 0)},            // minute 1,371
		{"track", "webhook", at(2, 12, 0, 0, 0)},            // two days ago
	}
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		mustStoreReceived(t, db, events)
		rates, err := resolver.NewProfiles(db).EventRates(context.Background(), end)
		if err != nil {
			t.Fatal(err)
		}
		if !rates.Start.Equal(start) || !rates.End.Equal(end) || rates.Total != 7 {
			t.Errorf("start %v, end %v, total %d; want %v, %v, 7",
				rates.Start, rates.End, rates.Total, start, end)
		}
		want := map[string]map[int]int64{
			"track": {711: 1, 1439: 2}, "identify": {1371: 1}, "page": {0: 1},
			"group": {711: 1}, "alias": {711: 1},
		}
		if got := nonZeroMinutes(t, rates.PerMinute); !reflect.DeepEqual(got, want) {
			t.Errorf("per minute = %v, want %v", got, want)
		}
		wantSources := map[string]map[string]int64{
			"webhook": {"track": 2, "alias": 1},
			"wk_a":    {"track": 1, "page": 1, "group": 1, "identify": 1},
		}
		if !reflect.DeepEqual(rates.BySource, wantSources) {
			t.Errorf("by source = %v, want %v", rates.BySource, wantSources)
		}
	})
}

// nonZeroMinutes returns, for each type, its minutes with events.
func nonZeroMinutes(t *testing.T, perMinute map[string][]int64) map[string]map[int]int64 {
	t.Helper()
	out := map[string]map[int]int64{}
	for kind, counts := range perMinute {
		if len(counts) != resolver.RateMinutes {
			t.Errorf("%s has %d minutes, want %d", kind, len(counts), resolver.RateMinutes)
		}
		out[kind] = map[int]int64{}
		for minute, n := range counts {
			if n != 0 {
				out[kind][minute] = n
			}
		}
	}
	return out
}

func TestEventRatesOfAnEmptyDay(t *testing.T) {
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		rates, err := resolver.NewProfiles(db).EventRates(context.Background(), fixedNow)
		if err != nil {
			t.Fatal(err)
		}
		if rates.Total != 0 || len(rates.PerMinute) != 0 || len(rates.BySource) != 0 {
			t.Errorf("empty day: %+v", rates)
		}
		if got := fixedNow.Sub(rates.Start); got != (resolver.RateMinutes-1)*time.Minute {
			t.Errorf("start is %v before end, want 1,439 minutes", got)
		}
	})
}

func TestEventTypesAreTheSixCalls(t *testing.T) {
	types := resolver.EventTypes()
	want := []string{"track", "identify", "page", "screen", "group", "alias"}
	if !reflect.DeepEqual(types, want) {
		t.Errorf("EventTypes() = %v, want %v", types, want)
	}
	types[0] = "changed"
	if resolver.EventTypes()[0] != "track" {
		t.Error("EventTypes shares its slice with callers")
	}
}
