package migrations_test

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/mattn/go-sqlite3"

	"github.com/knit-cdp/knit/migrations"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

func TestMigrateEmptyDatabaseLeavesNothingPending(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite3", sqldb.SQLiteDSN(filepath.Join(t.TempDir(), "m.db")))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	pending, err := migrations.Pending(ctx, db, "sqlite")
	if err != nil || pending == 0 {
		t.Fatalf("before: %d pending, err %v; want some pending", pending, err)
	}
	applied, err := migrations.Up(ctx, db, "sqlite")
	if err != nil || applied != pending {
		t.Fatalf("applied %d of %d, err %v", applied, pending, err)
	}
	if pending, err = migrations.Pending(ctx, db, "sqlite"); err != nil || pending != 0 {
		t.Errorf("after: %d pending, err %v; want none", pending, err)
	}
	if again, err := migrations.Up(ctx, db, "sqlite"); err != nil || again != 0 {
		t.Errorf("second Up applied %d, err %v; want 0", again, err)
	}
}

func TestUnknownEngineIsRefused(t *testing.T) {
	if _, err := migrations.Up(context.Background(), nil, "oracle"); err == nil {
		t.Error("Up accepted an engine without a schema")
	}
}

func TestPostgresSchemaMigratesAndLeavesNothingPending(t *testing.T) {
	db := sqltest.MustOpenPostgres(t) // applies every migration
	ctx := context.Background()
	if pending, err := migrations.Pending(ctx, db.DB.DB, "postgres"); err != nil || pending != 0 {
		t.Fatalf("pending after migrating: %d, %v", pending, err)
	}
	if again, err := migrations.Up(ctx, db.DB.DB, "postgres"); err != nil || again != 0 {
		t.Fatalf("a second Up applied %d: %v", again, err)
	}
}

// A search_path naming no schema that exists is refused with what to do,
// not a scan error.
func TestPostgresWithoutTheSchemaSaysToCreateIt(t *testing.T) {
	server := os.Getenv(sqltest.PostgresEnv)
	if server == "" {
		t.Skipf("%s is not set: no PostgreSQL to test on", sqltest.PostgresEnv)
	}
	missing, err := url.Parse(server)
	if err != nil {
		t.Fatal(err)
	}
	query := missing.Query()
	query.Set("search_path", "knit_no_such_schema")
	missing.RawQuery = query.Encode()
	db, err := sql.Open("pgx", missing.String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = migrations.Up(context.Background(), db, "postgres")
	if err == nil || !strings.Contains(err.Error(), "CREATE SCHEMA") {
		t.Fatalf("Up with a missing schema: %v, want an error saying to create it", err)
	}
}
