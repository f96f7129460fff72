package migrations_test

import (
	"context"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/knit-cdp/knit/migrations"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// openUnmigrated opens a fresh, empty database on the engine the tests run
// on, and names its dialect.
func openUnmigrated(t *testing.T) (*sqldb.DB, string) {
	t.Helper()
	ctx := context.Background()
	dsn := sqltest.MustDSN(t, "links.db")
	open, dialect := sqldb.OpenSQLite, "sqlite"
	if os.Getenv(sqltest.PostgresEnv) != "" {
		open, dialect = sqldb.OpenPostgres, "postgres"
	}
	db, err := open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, dialect
}

// linkRows reads identity_links with the columns given, sorted bytewise.
func linkRows(t *testing.T, db *sqldb.DB, columns string) []string {
	t.Helper()
	var rows []string
	err := db.Select(&rows, `SELECT `+strings.ReplaceAll(columns, ", ", " || ' ' || ")+
		` FROM identity_links`)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(rows)
	return rows
}

// Links stored before version 15 name their event by messageId; the
// migration gives each its event's id, a link whose event is gone a
// negative id of its own message, and rolling back restores them.
func TestLinksByEventMigrationKeepsEveryLink(t *testing.T) {
	ctx := context.Background()
	db, dialect := openUnmigrated(t)
	if err := migrations.UpTo(ctx, db.DB.DB, dialect, 14); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`INSERT INTO profiles (id, created_ms, updated_ms) VALUES (1, 0, 0)`,
		`INSERT INTO events (id, message_id, source, type, profile_id, ts_ms,
			received_ms, raw) VALUES (7, 'kept', 's', 'track', 1, 0, 0, '{}')`,
		`INSERT INTO identity_links (message_id, type, value) VALUES
			('kept', 'user_id', 'u1'), ('kept', 'anonymous_id', 'a1'),
			('gone-b', 'user_id', 'u1'), ('gone-a', 'email', 'x@y.z'),
			('gone-a', 'user_id', 'u1')`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	before := linkRows(t, db, "message_id, type, value")

	if err := migrations.UpTo(ctx, db.DB.DB, dialect, 15); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"-1 email x@y.z gone-a", "-1 user_id u1 gone-a", "-2 user_id u1 gone-b",
		"7 anonymous_id a1 kept", "7 user_id u1 kept",
	}
	got := linkRows(t, db, "CAST(event_id AS TEXT), type, value, message_id")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after the migration:\n got %q\nwant %q", got, want)
	}

	if err := migrations.DownTo(ctx, db.DB.DB, dialect, 14); err != nil {
		t.Fatal(err)
	}
	if after := linkRows(t, db, "message_id, type, value"); !reflect.DeepEqual(after, before) {
		t.Errorf("rolled back:\n got %q\nwant %q", after, before)
	}
}
