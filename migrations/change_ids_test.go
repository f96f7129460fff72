package migrations_test

import (
	"slices"
	"testing"

	"github.com/knit-cdp/knit/resolver/sqldb"
)

// On SQLite, migration 18 copies audience_changes into a table whose ids
// are never reused: every row keeps its id, the next id follows the
// highest ever handed out even after the newest rows are deleted, and
// rolling it back keeps the rows as well.
func TestChangeIDsMigrationKeepsRowsAndNeverReusesIDs(t *testing.T) {
	db, dialect := openUnmigrated(t)
	if dialect != "sqlite" {
		t.Skip("runs in the SQLite pass: migration 18 changes nothing on " +
			"PostgreSQL, whose identity column never reuses an id")
	}
	laMigrate(t, db, dialect, 17, true)
	laExec(t, db,
		`INSERT INTO audience_runs (id, audience, started_ms, evaluated_ms, status)
			VALUES (1, 'a', 0, 0, 'ok')`,
		`INSERT INTO audience_changes (id, audience, run_id, change, profile_id,
			identifiers, attributes, at_ms) VALUES
			(1, 'a', 1, 'entered', 10, '{}', '{}', 0),
			(5, 'a', 1, 'entered', 50, '{}', '{}', 0)`)

	laMigrate(t, db, dialect, 18, true)
	if got := changeIDs(t, db); !slices.Equal(got, []int64{1, 5}) {
		t.Errorf("ids after migrating up: %v, want [1 5]", got)
	}
	insertChange := `INSERT INTO audience_changes (audience, run_id, change, profile_id,
		identifiers, attributes, at_ms) VALUES ('a', 1, 'exited', 10, '{}', '{}', 0)`
	laExec(t, db, insertChange, `DELETE FROM audience_changes WHERE id = 6`, insertChange)
	if got := changeIDs(t, db); !slices.Equal(got, []int64{1, 5, 7}) {
		t.Errorf("ids after adding, deleting the newest and adding: %v, want [1 5 7]", got)
	}

	laMigrate(t, db, dialect, 17, false)
	if got := changeIDs(t, db); !slices.Equal(got, []int64{1, 5, 7}) {
		t.Errorf("ids after rolling back: %v, want [1 5 7]", got)
	}
	laMigrate(t, db, dialect, 18, true)
	laExec(t, db, insertChange)
	if got := changeIDs(t, db); !slices.Equal(got, []int64{1, 5, 7, 8}) {
		t.Errorf("ids after migrating up again and adding: %v, want [1 5 7 8]", got)
	}
}

func changeIDs(t *testing.T, db *sqldb.DB) []int64 {
	t.Helper()
	var ids []int64
	if err := db.Select(&ids, `SELECT id FROM audience_changes ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	return ids
}
