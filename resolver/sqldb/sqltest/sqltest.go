// Package sqltest opens real, migrated databases for tests: a fresh SQLite
// file in the test's temporary folder, or, when PostgresEnv names a server,
// a fresh schema there; either is removed when the test ends. Plain
// `go test ./...` runs on SQLite, and the same tests run on PostgreSQL with
// KNIT_TEST_POSTGRES set.
package sqltest

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	// The SQLite driver; only test helpers and cmd/ import drivers.
	_ "github.com/mattn/go-sqlite3"

	"github.com/knit-cdp/knit/migrations"
	"github.com/knit-cdp/knit/resolver/sqldb"
)

// MustOpen returns a fresh, migrated database for the test: on PostgreSQL
// when PostgresEnv is set (see MustOpenPostgres), on SQLite otherwise.
func MustOpen(t testing.TB) *sqldb.DB {
	t.Helper()
	if os.Getenv(PostgresEnv) != "" {
		return MustOpenPostgres(t)
	}
	return MustOpenSQLite(t)
}

// MustOpenSQLite returns a migrated SQLite database in a new file under
// t.TempDir(), closed when the test ends, whatever PostgresEnv says.
func MustOpenSQLite(t testing.TB) *sqldb.DB {
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
