package resolver

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

func TestStatementSizesCoverEveryRowOnceInFewShapes(t *testing.T) {
	for _, tc := range []struct{ n, limit int }{
		{0, 100}, {1, 100}, {3, 100}, {800, 2142}, {2143, 2142}, {5000, 1000}, {7, 1},
	} {
		next, shapes := 0, map[int]bool{}
		for start, size := range statementSizes(tc.n, tc.limit) {
			if start != next {
				t.Fatalf("n=%d: statement starts at %d, want %d", tc.n, start, next)
			}
			if size > tc.limit || size&(size-1) != 0 || size%3 == 2 {
				t.Errorf("n=%d: size %d is not a power of four under %d", tc.n, size, tc.limit)
			}
			shapes[size] = true
			next += size
		}
		if next != tc.n {
			t.Errorf("n=%d limit=%d: statements cover %d rows", tc.n, tc.limit, next)
		}
		if len(shapes) > 6 {
			t.Errorf("n=%d: %d distinct sizes", tc.n, len(shapes))
		}
	}
}

// The kept statements are prepared before the write transaction: on a
// pool of one connection, which the transaction holds, ingestion of every
// size still goes through, and nothing but the kept statements is kept.
func TestStatementsAreKeptOnAOneConnectionPool(t *testing.T) {
	db := sqltest.MustOpenSQLite(t)
	db.SetMaxOpenConns(1)
	store := NewStore(db, DefaultRules(), time.Now, nil)

	for i, n := range []int{1, 7, 100, 333, 1025} {
		messages := make([]*Message, n)
		for j := range messages {
			raw := fmt.Sprintf(`{"type":"identify","messageId":"m-%d-%d",
				"userId":"u-%d","anonymousId":"a-%d-%d","traits":{"email":"p%d@example.com"},
				"timestamp":"2026-12-01T10:00:00Z"}`, i, j, j%50, i, j, j)
			m, err := ParseMessage([]byte(raw), Envelope{Source: "test", ReceivedAt: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			messages[j] = m
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := store.Ingest(ctx, messages)
		cancel()
		if err != nil {
			t.Fatalf("batch of %d on one connection: %v", n, err)
		}
	}
	if got, want := store.statements.size(), len(keptStatements()); got != want {
		t.Errorf("kept %d statements, want the %d of keptStatements", got, want)
	}
}

// On SQLite the writer prepares only the kept statements itself and hands
// every other query to the driver, whose own cache keeps it prepared; on
// PostgreSQL every query goes to the driver.
func TestOnlyKeptStatementsArePreparedByTheWriter(t *testing.T) {
	db := sqltest.MustOpenSQLite(t)
	store := NewStore(db, DefaultRules(), time.Now, nil)
	store.statements.warm(context.Background())
	kept := keptStatements()[0]
	lookup := `SELECT profile_id FROM identities WHERE type = ? AND value = ?`

	sqlite := &writer{dialect: db.Dialect(), shared: store.statements}
	if sqlite.direct(kept) || !sqlite.direct(lookup) {
		t.Errorf("SQLite: kept statement direct %v, lookup direct %v; want false, true",
			sqlite.direct(kept), sqlite.direct(lookup))
	}
	unshared := &writer{dialect: db.Dialect()}
	if !unshared.direct(kept) {
		t.Errorf("SQLite without kept statements: want every query direct")
	}
	postgres := &writer{dialect: sqldb.Postgres, shared: store.statements}
	if !postgres.direct(kept) || !postgres.direct(lookup) {
		t.Errorf("PostgreSQL: want every query direct")
	}
}
