package resolver

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// Search matches a value under every type a profile holds it as, through
// the identities' key alone.
func TestSearchFindsAValueUnderAnyType(t *testing.T) {
	db := sqltest.MustOpen(t)
	ctx := context.Background()
	for _, row := range []struct {
		kind, value string
		profile     int64
	}{
		{"anonymous_id", "shared", 1}, {"user_id", "shared", 2},
		{"email", "shared", 3}, {"user_id", "other", 4}, {"zz.custom", "shared", 5},
	} {
		mustExec(t, db, `INSERT INTO profiles (id, created_ms, updated_ms) VALUES (?, 0, 0)`,
			row.profile)
		mustExec(t, db, `INSERT INTO identities (type, value, profile_id, first_seen_ms,
			first_message_id, source) VALUES (?, ?, ?, 0, 'm', 's')`,
			row.kind, row.value, row.profile)
	}

	got, err := NewProfiles(db).Search(ctx, "shared")
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{1, 2, 3, 5}; !slices.Equal(got, want) {
		t.Errorf("Search(shared) = %v, want %v", got, want)
	}
	if got, _ := NewProfiles(db).Search(ctx, "nobody"); len(got) != 0 {
		t.Errorf("Search(nobody) = %v, want none", got)
	}
}

// The search probes the key for each type and value, and never reads the
// identities whole: there is no index on the value alone to fall back on.
func TestSearchProbesTheIdentitiesKey(t *testing.T) {
	db := sqltest.MustOpen(t)
	query, args, err := sqlx.In(searchQuery, []string{"email", "user_id"},
		[]string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	plan := explain(t, db, db.Rebind(query), args)
	// SQLite names a whole read SCAN; PostgreSQL reads the whole key when
	// its condition starts at the value, the key's second column.
	for _, whole := range []string{"SCAN identities", "Seq Scan", "Cond: (value"} {
		if strings.Contains(plan, whole) {
			t.Errorf("the search reads identities whole (%s):\n%s", whole, plan)

		}
	}
}

// explain returns the engine's plan for query. PostgreSQL is told to avoid
// whole-table reads where any other way exists, since its tables here are
// too small for it to prefer an index; the test asks whether one exists.
func explain(t *testing.T, db *sqldb.DB, query string, args []any) string {
	t.Helper()
	ctx := context.Background()
	var lines []string
	err := db.WithTx(ctx, func(tx *sqlx.Tx) error {
		if db.Dialect() == sqldb.SQLite {
			rows, err := tx.QueryxContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					return err
				}
				lines = append(lines, detail)
			}
			return rows.Err()
		}
		if _, err := tx.ExecContext(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
			return err
		}
		return tx.SelectContext(ctx, &lines, "EXPLAIN "+query, args...)
	})
	if err != nil {
		t.Fatalf("explain %s: %v", query, err)
	}
	return strings.Join(lines, "\n")
}

func mustExec(t *testing.T, db *sqldb.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.Exec(db.Rebind(query), args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}
