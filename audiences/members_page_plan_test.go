package audiences

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// A page of an audience's members must read just the page by key, never
// all of the audience's members to sort them: on PostgreSQL, with the
// members table analyzed, the page once hashed and sorted all 188,000
// members of cart_abandonment for each 100 (500 ms a page). SQLite's plan
// shows no row counts: there the page must be a keyed search inside its
// own subquery, the form that cut PostgreSQL's reads.
func TestMembersPageReadsThePageByKey(t *testing.T) {
	engines := map[string]func(testing.TB) *sqldb.DB{
		"sqlite": sqltest.MustOpenSQLite, "postgres": sqltest.MustOpenPostgres,
	}
	for engine, open := range engines {
		t.Run(engine, func(t *testing.T) {
			db := open(t)
			seedMembers(t, db, map[string]int{"big": 60000, "small": 20000})

			plan := explainPage(t, db, "big", 30000, 101)
			if read := membersRead(plan); engine == "postgres" && (read < 0 || read > 101) {
				t.Errorf("the page read %d members for 101:\n%s", read, plan)
			}
			if engine == "sqlite" && (!strings.Contains(plan,
				"SEARCH audience_members USING INDEX") || strings.Contains(plan, "SEARCH m ")) {
				t.Errorf("the page is not cut by key in a subquery of its own:\n%s",
					plan)
			}
		})
	}
}

// membersRead is how many rows PostgreSQL's plan read from
// audience_members, by EXPLAIN ANALYZE; -1 when it read none.
func membersRead(plan string) int {
	found := regexp.MustCompile(`on audience_members .*actual rows=(\d+)`).
		FindStringSubmatch(plan)
	if found == nil {
		return -1
	}
	read, _ := strconv.Atoi(found[1])
	return read
}

// seedMembers stores one successful run for each audience with that many
// members, and on PostgreSQL gathers the tables' statistics.
func seedMembers(t *testing.T, db *sqldb.DB, sizes map[string]int) {
	t.Helper()
	ctx := context.Background()
	for audience, size := range sizes {
		_, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO audience_runs
			(audience, started_ms, finished_ms, evaluated_ms, size, status)
			VALUES (?, 1, 2, 1, ?, 'ok')`), audience, size)
		if err != nil {
			t.Fatal(err)
		}
		_, err = db.ExecContext(ctx, db.Rebind(`WITH RECURSIVE n(i) AS
			(SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
			INSERT INTO audience_members
			  (audience, profile_id, run_id, identifiers, attributes)
			SELECT ?, i, (SELECT MAX(id) FROM audience_runs), '{}', '{}' FROM n`),
			size, audience)
		if err != nil {
			t.Fatal(err)
		}
	}
	if db.Dialect() == sqldb.Postgres {
		if _, err := db.ExecContext(ctx, "ANALYZE"); err != nil {
			t.Fatal(err)
		}
	}
}

// explainPage is the plan of the page of size after the profile id, with
// the rows each step read on PostgreSQL.
func explainPage(t *testing.T, db *sqldb.DB, audience string, after, size int) string {
	t.Helper()
	explain := "EXPLAIN (ANALYZE, TIMING OFF) "
	if db.Dialect() == sqldb.SQLite {
		explain = "EXPLAIN QUERY PLAN "
	}
	rows, err := db.QueryContext(context.Background(),
		explain+db.Rebind(membersPageQuery), audience, audience, after, audience, size)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	columns, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for rows.Next() {
		values := make([]any, len(columns))
		for i := range values {
			values[i] = new(any)
		}
		if err := rows.Scan(values...); err != nil {
			t.Fatal(err)
		}
		line := *(values[len(values)-1].(*any))
		lines = append(lines, strings.TrimSpace(toText(line)))
	}
	return strings.Join(lines, "\n")
}

func toText(v any) string {
	if b, ok := v.([]byte); ok {
		return string(b)
	}
	s, _ := v.(string)
	return s
}
