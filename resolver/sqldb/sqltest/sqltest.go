// Package sqltest opens real, migrated databases for tests: a fresh SQLite
// file in the test's temporary folder, removed when the test ends.
package sqltest

import (
	"context"
	"path/filepath"
	"testing"

	// The SQLite driver; only test helpers and cmd/ import drivers.
	_ "github.com/mattn/go-sqlite3"

	"github.com/knit-cdp/knit/migrations"
	"github.com/knit-cdp/knit/resolver/sqldb"
)

// MustOpen returns a migrated SQLite database in a new file under
// t.TempDir(), closed when the test ends.
func MustOpen(t testing.TB) *sqldb.DB {
	t.Helper()

	path := filepath.Join(t.TempDir(), "knit-test.db")
	db, err := sqldb.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })

	if _, err := migrations.Up(context.Background(), db.DB.DB, "sqlite"); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if err := db.CheckWAL(context.Background()); err != nil {
		t.Fatalf("check WAL: %v", err)
	}
	return db
}
