package sqltest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	// The PostgreSQL driver; only test helpers and cmd/ import drivers.
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/knit-cdp/knit/migrations"
	"github.com/knit-cdp/knit/resolver/sqldb"
)

// PostgresEnv names the environment variable that holds the URL of a
// PostgreSQL server for tests, such as
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
const PostgresEnv = "KNIT_TEST_POSTGRES"

// MustOpenPostgres returns a migrated PostgreSQL database in a schema of
// its own, dropped when the test ends. It skips the test when PostgresEnv
// is not set.
func MustOpenPostgres(t testing.TB) *sqldb.DB {
	t.Helper()
	return MustOpenPostgresPools(t, 1)[0]
}

// MustOpenPostgresPools returns n separate connection pools over one fresh,
// migrated schema, as n processes sharing a database would hold.
func MustOpenPostgresPools(t testing.TB, n int) []*sqldb.DB {
	t.Helper()
	server := os.Getenv(PostgresEnv)
	if server == "" {
		t.Skipf("%s is not set: no PostgreSQL to test on", PostgresEnv)
	}
	schema := mustCreateSchema(t, server)

	withSchema, err := url.Parse(server)
	if err != nil {
		t.Fatalf("%s: %v", PostgresEnv, err)
	}
	query := withSchema.Query()
	query.Set("search_path", schema)
	withSchema.RawQuery = query.Encode()

	pools := make([]*sqldb.DB, n)
	for i := range pools {
		db, err := sqldb.OpenPostgres(context.Background(), withSchema.String())
		if err != nil {
			t.Fatalf("open postgres: %v", err)
		}
		t.Cleanup(func() { _ = db.Close() })
		pools[i] = db
	}
	if _, err := migrations.Up(context.Background(), pools[0].DB.DB, "postgres"); err != nil {
		t.Fatalf("migrate postgres: %v", err)
	}
	return pools
}

// mustCreateSchema makes a fresh schema on server and drops it, with all it
// holds, when the test ends.
func mustCreateSchema(t testing.TB, server string) string {
	t.Helper()
	admin, err := sql.Open("pgx", server)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	random := make([]byte, 8)
	_, _ = rand.Read(random)
	schema := "knit_test_" + hex.EncodeToString(random)

	// The name is generated here, never taken from input.
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		_ = admin.Close()
		t.Fatalf("create schema on %s: %v", PostgresEnv, err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		_ = admin.Close()
	})
	return schema
}

// MustDSN names a fresh, empty database for a test that opens it itself
// (as `knit --db` does): a URL to a new schema on PostgreSQL when
// PostgresEnv is set, otherwise the path of a new SQLite file called name
// under t.TempDir().
func MustDSN(t testing.TB, name string) string {
	t.Helper()
	server := os.Getenv(PostgresEnv)
	if server == "" {
		return filepath.Join(t.TempDir(), name)
	}
	withSchema, err := url.Parse(server)
	if err != nil {
		t.Fatalf("%s: %v", PostgresEnv, err)
	}
	query := withSchema.Query()
	query.Set("search_path", mustCreateSchema(t, server))
	withSchema.RawQuery = query.Encode()
	return withSchema.String()
}
