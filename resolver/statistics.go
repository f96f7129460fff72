package resolver

import (
	"context"
	"fmt"

	"github.com/knit-cdp/knit/resolver/sqldb"
)

// Autovacuum's defaults for when a table's statistics are out of date:
// more than 50 rows plus a tenth of the table changed since its last
// ANALYZE (autovacuum_analyze_threshold, autovacuum_analyze_scale_factor).
const (
	staleRows  = 50
	staleShare = 0.1
)

// eventRowCounts is what PostgreSQL knows of the size of events: the live
// rows its partitions hold now, and the rows the partitioned table held when
// it was last analyzed (below 0 when it never was).
type eventRowCounts struct {
	Live     float64 `db:"live"`
	Analyzed float64 `db:"analyzed"`
}

// stale reports whether the partitioned table's statistics are missing or
// describe a table of another size.
func (c eventRowCounts) stale() bool {
	if c.Analyzed < 0 {
		return c.Live > 0
	}
	drift := c.Live - c.Analyzed
	if drift < 0 {
		drift = -drift
	}
	return drift > staleRows+staleShare*c.Analyzed
}

// RefreshEventStatistics runs ANALYZE on the partitioned events table when
// it was never analyzed or its partitions' live rows drifted from the count
// it was analyzed at by more than autovacuum's defaults allow, and reports
// whether it did. Autovacuum analyzes each partition but never the
// partitioned table, whose statistics PostgreSQL plans with when a query
// reads events as a whole, as every audience does. Rows changed in place
// are not counted. On SQLite it does nothing.
func RefreshEventStatistics(ctx context.Context, db *sqldb.DB) (bool, error) {
	if db.Dialect() != sqldb.Postgres {
		return false, nil
	}

	var counts eventRowCounts
	err := db.GetContext(ctx, &counts, `SELECT p.reltuples AS analyzed,
		COALESCE((SELECT SUM(s.n_live_tup) FROM pg_inherits i
			JOIN pg_stat_user_tables s ON s.relid = i.inhrelid
			WHERE i.inhparent = p.oid), 0) AS live
		FROM pg_class p
		WHERE p.relname = 'events' AND p.relnamespace = current_schema()::regnamespace`)
	if err != nil {
		return false, fmt.Errorf("read the row counts of events: %w", err)
	}
	if !counts.stale() {
		return false, nil
	}

	if _, err := db.ExecContext(ctx, "ANALYZE events"); err != nil {
		return false, fmt.Errorf("analyze events: %w", err)
	}
	return true, nil
}
