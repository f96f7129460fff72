package resolver_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

func TestSQLiteHasNoEventStatisticsToRefresh(t *testing.T) {
	db := sqltest.MustOpenSQLite(t)

	analyzed, err := resolver.RefreshEventStatistics(context.Background(), db)
	if err != nil || analyzed {
		t.Errorf("analyzed %v (%v), want nothing done on SQLite", analyzed, err)
	}
}

func TestEventsAreAnalyzedWhenTheirStatisticsAreMissingOrOld(t *testing.T) {
	db := sqltest.MustOpenPostgres(t)
	ctx := context.Background()
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	store := resolver.NewStore(db, resolver.DefaultRules(),
		func() time.Time { return now }, nil)
	if _, err := resolver.MaintainEvents(ctx, db, now, 0); err != nil {
		t.Fatal(err)
	}

	mustRefresh(t, db, false, "an empty table needs no statistics")

	mustIngestTracks(t, store, 0, 200)
	waitForLiveEvents(t, db, 200)
	mustRefresh(t, db, true, "200 events never analyzed")
	if got := analyzedEventRows(t, db); got != 200 {
		t.Errorf("events analyzed at %v rows, want 200", got)
	}
	mustRefresh(t, db, false, "nothing changed since the last analyze")

	// 50 plus a tenth of 200 is 70 rows of drift allowed.
	mustIngestTracks(t, store, 200, 60)
	waitForLiveEvents(t, db, 260)
	mustRefresh(t, db, false, "60 more rows is within the drift allowed")

	mustIngestTracks(t, store, 260, 20)
	waitForLiveEvents(t, db, 280)
	mustRefresh(t, db, true, "80 more rows is past the drift allowed")
	if got := analyzedEventRows(t, db); got != 280 {
		t.Errorf("events analyzed at %v rows, want 280", got)
	}
}

// mustRefresh calls RefreshEventStatistics and fails the test unless it
// analyzed exactly when want says so.
func mustRefresh(t *testing.T, db *sqldb.DB, want bool, why string) {
	t.Helper()
	analyzed, err := resolver.RefreshEventStatistics(context.Background(), db)
	if err != nil {
		t.Fatalf("%s: %v", why, err)
	}
	if analyzed != want {
		t.Errorf("%s: analyzed %v, want %v", why, analyzed, want)
	}
}

// mustIngestTracks stores n track events of n people, numbered from first.
func mustIngestTracks(t *testing.T, store *resolver.Store, first, n int) {
	t.Helper()
	var batch []*resolver.Message
	for i := first; i < first+n; i++ {
		batch = append(batch, mustParseMessage(t, fmt.Sprintf(`{"type":"track",
			"event":"Viewed","anonymousId":"a%d","messageId":"m%d"}`, i, i)))
	}
	if _, err := store.Ingest(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
}

// waitForLiveEvents waits until PostgreSQL's statistics count want live
// rows in the partitions of events: a backend reports what it wrote after
// its transaction, within a second or so of going idle.
func waitForLiveEvents(t *testing.T, db *sqldb.DB, want int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var live int
		err := db.Get(&live, `SELECT COALESCE(SUM(s.n_live_tup), 0)
			FROM pg_inherits i JOIN pg_stat_user_tables s ON s.relid = i.inhrelid
			WHERE i.inhparent = 'events'::regclass`)
		if err != nil {
			t.Fatal(err)
		}
		if live == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the statistics count %d live events after a minute, want %d",
				live, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// analyzedEventRows is the row count the partitioned events table was last
// analyzed at.
func analyzedEventRows(t *testing.T, db *sqldb.DB) float64 {
	t.Helper()
	var rows float64
	if err := db.Get(&rows, `SELECT reltuples FROM pg_class
		WHERE oid = 'events'::regclass`); err != nil {
		t.Fatal(err)
	}
	return rows
}
