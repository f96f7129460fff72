package resolver_test

import (
	"context"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// benchDayEvents is how many events the ingestion benchmarks spread over
// the day they read.
const benchDayEvents = 1_000_000

// mustSeedDay writes n events received over the day up to end, in one
// transaction of one statement: six types (track the most), three
// sources, evenly apart over the 1,439 minutes (86,340,000 ms) before end.
func mustSeedDay(b testing.TB, db *sqldb.DB, n int, end time.Time) {
	b.Helper()
	err := db.WithTx(context.Background(), func(tx *sqlx.Tx) error {
		_, err := tx.Exec(tx.Rebind(`INSERT INTO events
			(message_id, source, type, ts_ms, received_ms, raw)
			WITH RECURSIVE seq (i) AS (
				SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < ?)
			SELECT 'bench-' || i,
				CASE i % 3 WHEN 0 THEN 'webhook' WHEN 1 THEN 'wk_1' ELSE 'wk_2' END,
				CASE i % 20 WHEN 0 THEN 'identify' WHEN 1 THEN 'identify'
					WHEN 2 THEN 'page' WHEN 3 THEN 'page' WHEN 4 THEN 'page'
					WHEN 5 THEN 'screen' WHEN 6 THEN 'group' WHEN 7 THEN 'alias'
					ELSE 'track' END,
				? - CAST(i AS BIGINT) * 86340000 / ?,
				? - CAST(i AS BIGINT) * 86340000 / ?, '{}'
			FROM seq`), n-1, end.UnixMilli(), n, end.UnixMilli(), n)
		return err
	})
	if err != nil {
		b.Fatalf("seed %d events: %v", n, err)
	}
	if db.Dialect() == sqldb.Postgres {
		// What autovacuum does soon after: statistics for the planner, and
		// the visibility map that lets it read the index alone.
		if _, err := db.Exec(`VACUUM ANALYZE events`); err != nil {
			b.Fatalf("vacuum: %v", err)
		}
	}
}

// BenchmarkIngestionPage runs the ingestion page's queries (events a
// minute by type and source over the last day, and the latest refusals)
// over a day of a million events; ns/op is one page's worth.
func BenchmarkIngestionPage(b *testing.B) {
	onEachEngineB(b, func(b *testing.B, db *sqldb.DB) {
		mustSeedDay(b, db, benchDayEvents, fixedNow)
		profiles := resolver.NewProfiles(db)
		ctx := context.Background()
		for b.Loop() {
			rates, err := profiles.EventRates(ctx, fixedNow)
			if err != nil {
				b.Fatal(err)
			}
			if rates.Total != benchDayEvents {
				b.Fatalf("counted %d events, want %d", rates.Total, benchDayEvents)
			}
			if _, err := profiles.RecentRejections(ctx, fixedNow, 50); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// onEachEngineB runs bench on SQLite, and on PostgreSQL when
// sqltest.PostgresEnv is set.
func onEachEngineB(b *testing.B, bench func(b *testing.B, db *sqldb.DB)) {
	b.Run("sqlite", func(b *testing.B) { bench(b, sqltest.MustOpen(b)) })
	b.Run("postgres", func(b *testing.B) { bench(b, sqltest.MustOpenPostgres(b)) })
}
