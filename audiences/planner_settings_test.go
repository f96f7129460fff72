package audiences

import (
	"context"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// TestAudienceQueriesPlanWithoutMemoizeOrJIT checks that an audience's
// transaction on PostgreSQL turns memoize and jit off for itself only, and
// that on SQLite tunePlanner sends nothing (no PostgreSQL-only SQL).
func TestAudienceQueriesPlanWithoutMemoizeOrJIT(t *testing.T) {
	db := sqltest.MustOpen(t)
	runner := NewRunner(db, nil, testNow, nil)
	ctx := context.Background()

	var inside [2]string
	err := db.Snapshot(ctx, func(tx *sqlx.Tx) error {
		if err := runner.tunePlanner(ctx, tx); err != nil {
			return err
		}
		if db.Dialect() != sqldb.Postgres {
			return nil
		}
		return tx.QueryRowContext(ctx, `SELECT current_setting('enable_memoize'),
			current_setting('jit')`).Scan(&inside[0], &inside[1])
	})
	if err != nil {
		t.Fatalf("tune planner: %v", err)
	}
	if db.Dialect() != sqldb.Postgres {
		return
	}

	if inside != [2]string{"off", "off"} {
		t.Errorf("inside the audience's transaction enable_memoize, jit = %v, want off, off",
			inside)
	}
	var after string
	if err := db.QueryRowContext(ctx, `SELECT current_setting('enable_memoize')`).
		Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != "on" {
		t.Errorf("after the transaction enable_memoize = %q, want on (set locally)", after)
	}
}
