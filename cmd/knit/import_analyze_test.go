package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// TestImportAnalyzesWhatItStoredOnPostgres imports into a fresh schema and
// checks that each table the import wrote, the partitioned events table
// included (autovacuum never analyzes it), has planner statistics.
func TestImportAnalyzesWhatItStoredOnPostgres(t *testing.T) {
	if os.Getenv(sqltest.PostgresEnv) == "" {
		t.Skipf("%s is not set: statistics are PostgreSQL's", sqltest.PostgresEnv)
	}
	dsn := sqltest.MustDSN(t, "import.db")
	input := filepath.Join(t.TempDir(), "messages.ndjson")
	lines := []string{
		`{"type":"identify","messageId":"i1","userId":"u1","traits":{"email":"a@b.c"}}`,
		`{"type":"track","messageId":"t1","userId":"u1","event":"E"}`,
	}
	if err := os.WriteFile(input, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}

	var stdout, stderr bytes.Buffer
	getenv := func(k string) string { return map[string]string{"KNIT_LOG_LEVEL": "warn"}[k] }
	if err := run(context.Background(), []string{"import", "--db", dsn, input}, getenv,
		&stdout, &stderr); err != nil {
		t.Fatalf("import: %v\n%s", err, stderr.String())
	}

	mustHaveStatistics(t, dsn)
}

// TestBenchSeedAnalyzesWhatItStoredOnPostgres checks the same of a seed,
// which benchmarks of audiences read next.
func TestBenchSeedAnalyzesWhatItStoredOnPostgres(t *testing.T) {
	if os.Getenv(sqltest.PostgresEnv) == "" {
		t.Skipf("%s is not set: statistics are PostgreSQL's", sqltest.PostgresEnv)
	}
	dsn := sqltest.MustDSN(t, "seed.db")

	mustRun(t, "bench", "seed", "--db", dsn, "--profiles", "20", "--events", "200",
		"--clock", seedClock)

	mustHaveStatistics(t, dsn)
}

// mustHaveStatistics fails the test unless each table an import or a seed
// writes, the partitioned events table included, has planner statistics.
func mustHaveStatistics(t *testing.T, dsn string) {
	t.Helper()
	db, err := sqldb.OpenPostgres(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var unanalyzed []string
	err = db.Select(&unanalyzed, `SELECT c.relname FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
		AND c.relname IN ('events', 'profiles', 'identities', 'identity_links', 'traits')
		AND NOT EXISTS (SELECT 1 FROM pg_statistic st WHERE st.starelid = c.oid)
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	if len(unanalyzed) > 0 {
		t.Errorf("tables without statistics: %v", unanalyzed)
	}
}
