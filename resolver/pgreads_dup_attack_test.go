package resolver

import (
	"context"
	"os"
	"reflect"
	"testing"

	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// Links are read once an event however often its id is listed, on
// PostgreSQL's array as with SQLite's IN list. No caller lists an id twice
// today (both read ids from a primary key), so this guards the helper's
// contract, not a live answer.
func TestPGReadsRepeatedEventIDsReadTheirLinksOnce(t *testing.T) {
	server := os.Getenv(sqltest.PostgresEnv)
	if server == "" {
		t.Skipf("%s is not set", sqltest.PostgresEnv)
	}
	ctx := context.Background()
	db, err := sqldb.OpenPostgres(ctx, server)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	// A temporary table comes first on the search path: no schema is touched.
	if _, err := tx.Exec(`CREATE TEMP TABLE identity_links (event_id BIGINT,
		type TEXT, value TEXT) ON COMMIT DROP`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`INSERT INTO identity_links VALUES (1, 'user_id', 'u'),
		(2, 'anonymous_id', 'a'), (2, 'user_id', 'u')`); err != nil {
		t.Fatal(err)
	}
	links, err := messageLinks(ctx, tx, sqldb.Postgres, []int64{2, 1, 2, 9})
	if err != nil {
		t.Fatal(err)
	}
	want := []messageLink{{1, "user_id", "u"}, {2, "anonymous_id", "a"}, {2, "user_id", "u"}}
	if !reflect.DeepEqual(links, want) {
		t.Errorf("links %v, want %v", links, want)
	}
	none, err := messageLinks(ctx, tx, sqldb.Postgres, nil)
	if err != nil || len(none) != 0 {
		t.Errorf("no ids: %v, %v", none, err)
	}
}
