package sqldb_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// TestOpenPostgresTakesTheSchemeInAnyCase opens the test server with the
// URL's scheme in upper and mixed case, which DialectFromDSN already
// calls PostgreSQL.
func TestOpenPostgresTakesTheSchemeInAnyCase(t *testing.T) {
	url := os.Getenv(sqltest.PostgresEnv)
	if url == "" {
		t.Skip("needs PostgreSQL: set " + sqltest.PostgresEnv)
	}
	scheme, rest, _ := strings.Cut(url, "://")
	for _, typed := range []string{strings.ToUpper(scheme), "PostgreSQL", "POSTGRES"} {
		dsn := typed + "://" + rest
		if sqldb.DialectFromDSN(dsn) != sqldb.Postgres {
			t.Fatalf("%s is not PostgreSQL to DialectFromDSN", typed)
		}
		db, err := sqldb.OpenPostgres(context.Background(), dsn)
		if err != nil {
			t.Errorf("%s://...: %v", typed, err)
			continue
		}
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	}
}
