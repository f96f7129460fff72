package audiences

import (
	"context"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// TestAudienceQueriesPlanWithoutMemoizeOrJIT checks that an audience's
// transaction on PostgreSQL turns memoize and jit off, and has the server
// check every second that knit is still connected, for itself only, and
// that on SQLite tunePlanner sends nothing (no PostgreSQL-only SQL).
func TestAudienceQueriesPlanWithoutMemoizeOrJIT(t *testing.T) {
	db := sqltest.MustOpen(t)
	runner := NewRunner(db, nil, testNow, nil)
	ctx := context.Background()

	var inside [3]string
	err := db.Snapshot(ctx, func(tx *sqlx.Tx) error {
		if err := runner.tunePlanner(ctx, tx); err != nil {
			return err
		}
		if db.Dialect() != sqldb.Postgres {
			return nil
		}
		return tx.QueryRowContext(ctx, `SELECT current_setting('enable_memoize'),
			current_setting('jit'), current_setting('client_connection_check_interval')`).
			Scan(&inside[0], &inside[1], &inside[2])
	})
	if err != nil {
		t.Fatalf("tune planner: %v", err)
	}
	if db.Dialect() != sqldb.Postgres {
		return
	}

	if inside != [3]string{"off", "off", "1s"} {
		t.Errorf("inside the audience's transaction enable_memoize, jit, "+
			"client_connection_check_interval = %v, want off, off, 1s", inside)
	}
	var after [2]string
	if err := db.QueryRowContext(ctx, `SELECT current_setting('enable_memoize'),
		current_setting('client_connection_check_interval')`).
		Scan(&after[0], &after[1]); err != nil {
		t.Fatal(err)
	}
	if after != [2]string{"on", "0"} {
		t.Errorf("after the transaction enable_memoize, client_connection_check_interval "+
			"= %v, want on, 0 (set locally)", after)
	}
}
