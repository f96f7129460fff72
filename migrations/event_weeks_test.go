package migrations_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"testing"

	"github.com/knit-cdp/knit/migrations"
	"github.com/knit-cdp/knit/resolver/sqldb"
)

// Migration 19 moves SQLite's events index by name from time to week over
// the events already stored, and rolling it back makes the old one again.
func TestEventsByWeekMigrationKeepsStoredEventsFindable(t *testing.T) {
	ctx := context.Background()
	db, err := sqldb.OpenSQLite(ctx, filepath.Join(t.TempDir(), "weeks.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := migrations.UpTo(ctx, db.DB.DB, "sqlite", 18); err != nil {
		t.Fatal(err)
	}
	times := []int64{-604800001, 0, 1764979200000, 1764979200001, 1765583999999}
	for _, at := range times {
		storeRanEvents(t, db, at)
	}

	for _, step := range []struct {
		move    func(context.Context, *sql.DB, string, int64) error
		version int64
		want    string
	}{
		{migrations.UpTo, 19, "events_event_week"}, {migrations.DownTo, 18, "events_event_ts"},
		{migrations.UpTo, 19, "events_event_week"},
	} {
		if err := step.move(ctx, db.DB.DB, "sqlite", step.version); err != nil {
			t.Fatal(err)
		}
		if got := eventNameIndexes(t, db); !slices.Equal(got, []string{step.want}) {
			t.Errorf("at version %d the events indexes by name are %v, want %s",
				step.version, got, step.want)
		}
	}

	// The week of each stored event, read through the index alone.
	for _, at := range times {
		var found int
		err := db.Get(&found, `SELECT COUNT(*) FROM events INDEXED BY events_event_week
			WHERE event = 'Ran' AND ts_ms / 604800000 = ? / 604800000 AND ts_ms = ?`, at, at)
		if err != nil || found != 1 {
			t.Errorf("the event at %d is found %d times through the index (%v)", at, found, err)
		}
	}
}

// storeRanEvents stores one "Ran" event at each of times, whatever their
// type, with message ids unique in the file.
func storeRanEvents(t *testing.T, db *sqldb.DB, times ...any) {
	t.Helper()
	for _, at := range times {
		_, err := db.Exec(`INSERT INTO events (message_id, source, type, event, ts_ms,
			received_ms, properties, raw)
			VALUES ('m' || (SELECT COUNT(*) FROM events), 'test', 'track', 'Ran', ?, 0,
			'{}', '{}')`, at)
		if err != nil {
			t.Fatal(err)
		}
	}
}

// eventNameIndexes lists the indexes of events whose first column is the
// event's name.
func eventNameIndexes(t *testing.T, db *sqldb.DB) []string {
	t.Helper()
	var names []string
	err := db.Select(&names, `SELECT m.name FROM sqlite_master AS m,
		pragma_index_xinfo(m.name) AS c WHERE m.type = 'index' AND m.tbl_name = 'events'
		AND c.seqno = 0 AND c.name = 'event' ORDER BY m.name`)
	if err != nil {
		t.Fatal(err)
	}
	return names
}
