package migrations_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/knit-cdp/knit/migrations"
	"github.com/knit-cdp/knit/resolver/sqldb"
)

// TestEventsByWeekMigrationOnOddTimes writes events with the extreme and
// odd ts_ms values a file may hold (the ends of int64, the years 0000 and
// 9999, week edges before 1970, a real and a text) at version 18, as an
// older knit left it, closes the file, and opens it again to migrate it
// all the way up as knit does. The index must then be whole
// (integrity_check) and find every integer event by its week; down to 18
// and up again must keep it whole and lose no event.
func TestEventsByWeekMigrationOnOddTimes(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "odd.db")
	old, err := sqldb.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := migrations.UpTo(ctx, old.DB.DB, "sqlite", 18); err != nil {
		t.Fatal(err)
	}
	const week = 604800000
	whole := []int64{-1 << 63, 1<<63 - 1, -62167219200000, 253402300799999,
		-week - 1, -week, -week + 1, -1, 0, 1, week - 1, week, 2919 * week}
	var odd []any
	for _, at := range whole {
		odd = append(odd, at)
	}
	odd = append(odd, 1764979200000.5, "not a time")
	storeRanEvents(t, old, odd...)
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := sqldb.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := migrations.Up(ctx, db.DB.DB, "sqlite"); err != nil {
		t.Fatal(err)
	}
	check := func(step string) {
		t.Helper()
		var integrity string
		if err := db.Get(&integrity, `PRAGMA integrity_check`); err != nil ||
			integrity != "ok" {
			t.Errorf("%s: integrity_check says %q (%v)", step, integrity, err)
		}
		var n int
		if err := db.Get(&n, `SELECT COUNT(*) FROM events`); err != nil || n != len(odd) {
			t.Errorf("%s: %d events (%v), want %d", step, n, err, len(odd))
		}
	}
	check("after opening the old file")
	if got := eventNameIndexes(t, db); len(got) != 1 || got[0] != "events_event_week" {
		t.Errorf("the events indexes by name are %v, want events_event_week", got)
	}
	for _, at := range whole {
		var found int
		err := db.Get(&found, `SELECT COUNT(*) FROM events INDEXED BY events_event_week
			WHERE event = 'Ran' AND ts_ms / 604800000 BETWEEN ? / 604800000 AND ? / 604800000
			AND ts_ms >= ? AND ts_ms <= ?`, at, at, at, at)
		if err != nil || found != 1 {
			t.Errorf("the event at %d is found %d times through its week (%v)", at, found, err)
		}
	}

	if err := migrations.DownTo(ctx, db.DB.DB, "sqlite", 18); err != nil {
		t.Fatal(err)
	}
	check("down to 18")
	if _, err := migrations.Up(ctx, db.DB.DB, "sqlite"); err != nil {
		t.Fatal(err)
	}
	check("up again")
}
