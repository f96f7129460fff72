package migrations_test

import (
	"context"
	"database/sql"
	"slices"
	"testing"

	"github.com/knit-cdp/knit/migrations"
)

// Migration 16 drops the indexes of links and identities by identifier and
// by value; rolling it back makes them again, and migrating up drops them.
func TestFewerIdentifierIndexesMigrationRollsBack(t *testing.T) {
	ctx := context.Background()
	db, dialect := openUnmigrated(t)
	dropped := []string{"identities_value", "identity_links_identifier"}
	query := `SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name`
	if dialect == "postgres" {
		query = `SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()
			ORDER BY indexname`
	}
	has := func() []string {
		var names, found []string
		if err := db.Select(&names, query); err != nil {
			t.Fatal(err)
		}
		for _, name := range dropped {
			if slices.Contains(names, name) {
				found = append(found, name)
			}
		}
		return found
	}

	for _, step := range []struct {
		move    func(context.Context, *sql.DB, string, int64) error
		version int64
		want    []string
	}{
		{migrations.UpTo, 16, nil}, {migrations.DownTo, 15, dropped},
		{migrations.UpTo, 16, nil},
	} {
		if err := step.move(ctx, db.DB.DB, dialect, step.version); err != nil {
			t.Fatal(err)
		}
		if got := has(); !slices.Equal(got, step.want) {
			t.Errorf("at version %d the indexes %v exist, want %v", step.version, got,
				step.want)
		}
	}
}

// On PostgreSQL, migration 17 drops the foreign keys from events,
// identities and traits to profiles; rolling it back makes them again.
func TestProfileReferencesMigrationRollsBack(t *testing.T) {
	ctx := context.Background()
	db, dialect := openUnmigrated(t)
	if dialect != "postgres" {
		t.Skip("runs in the PostgreSQL pass (KNIT_TEST_POSTGRES): migration 17 " +
			"changes nothing on SQLite, which keeps its foreign keys")
	}
	keys := func() []string {
		var tables []string
		err := db.Select(&tables, `SELECT conrelid::regclass::text FROM pg_constraint
			WHERE contype = 'f' AND conparentid = 0
			AND connamespace = current_schema()::regnamespace
			AND confrelid = 'profiles'::regclass
			AND conrelid IN ('events'::regclass, 'identities'::regclass,
				'traits'::regclass)
			ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		return tables
	}

	for _, step := range []struct {
		move    func(context.Context, *sql.DB, string, int64) error
		version int64
		want    []string
	}{
		{migrations.UpTo, 16, []string{"events", "identities", "traits"}},
		{migrations.UpTo, 17, nil},
		{migrations.DownTo, 16, []string{"events", "identities", "traits"}},
	} {
		if err := step.move(ctx, db.DB.DB, dialect, step.version); err != nil {
			t.Fatal(err)
		}
		if got := keys(); !slices.Equal(got, step.want) {
			t.Errorf("at version %d the tables with keys to profiles are %v, want %v",
				step.version, got, step.want)
		}
	}
}
