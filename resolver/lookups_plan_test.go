package resolver

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// The batch's lookups run as statements pgx keeps prepared, and
// PostgreSQL may settle on one generic plan for each while the tables are
// still small. With autovacuum off nothing replans them as the tables
// grow, so a plan that reads a whole table then stays for good: each
// lookup must be a probe of an index in every plan, generic ones included.
func TestBatchLookupsProbeIndexesInGenericPlans(t *testing.T) {
	db := sqltest.MustOpenPostgres(t)
	ctx := context.Background()

	ids := make([]Identifier, 300)
	messages := make([]string, 300)
	profiles := make([]int64, 300)
	for i := range ids {
		ids[i] = Identifier{Type: "anonymous_id", Value: fmt.Sprintf("anon-%d", i)}
		messages[i] = fmt.Sprintf("message-%d", i)
		profiles[i] = int64(i + 1)
	}
	owners, ownerArgs := ownersQuery(db.Dialect(), ids)
	held, heldArgs, err := identifiersOfQuery(db.Dialect(), profiles)
	if err != nil {
		t.Fatal(err)
	}
	known, knownArgs, err := knownMessagesQuery(db.Dialect(), messages)
	if err != nil {
		t.Fatal(err)
	}
	links, linkArgs, err := eventLinksQuery(db.Dialect(), profiles)
	if err != nil {
		t.Fatal(err)
	}

	for i, lookup := range []struct {
		name  string
		query string
		args  []any
	}{
		{"owners", owners, ownerArgs}, {"identifiers of profiles", held, heldArgs},
		{"known messages", known, knownArgs}, {"links of events", links, linkArgs},
	} {
		name := fmt.Sprintf("lookup_%d", i)
		plan := genericPlan(ctx, t, db.DB, name, lookup.query, lookup.args)
		if strings.Contains(plan, "Seq Scan") || strings.Contains(plan, "Hash Join") {
			t.Errorf("%s: the generic plan reads a table whole:\n%s", lookup.name, plan)
		}
	}
}

// genericPlan is the plan PostgreSQL caches for query once it stops
// planning each execution, prepared as name with args written into the
// EXECUTE.
func genericPlan(ctx context.Context, t *testing.T, db *sqlx.DB, name, query string,
	args []any) string {
	t.Helper()
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()

	types := make([]string, len(args))
	values := make([]string, len(args))
	for i, arg := range args {
		types[i], values[i] = arrayLiteral(t, arg)
	}
	steps := []string{
		"SET LOCAL plan_cache_mode = force_generic_plan",
		"PREPARE " + name + " (" + strings.Join(types, ", ") + ") AS " + db.Rebind(query),
	}
	for _, step := range steps {
		if _, err := tx.ExecContext(ctx, step); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	var lines []string
	err = tx.SelectContext(ctx, &lines,
		"EXPLAIN EXECUTE "+name+" ("+strings.Join(values, ", ")+")")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// arrayLiteral writes a lookup's argument (an array, or a number of an IN
// list) as SQL, with its type; the tests' values need no quoting.
func arrayLiteral(t *testing.T, arg any) (string, string) {
	switch values := arg.(type) {
	case []string:
		return "TEXT[]", "ARRAY['" + strings.Join(values, "', '") + "']"
	case []int64:
		text := strings.Trim(strings.Join(strings.Fields(fmt.Sprint(values)), ", "), "[]")
		return "BIGINT[]", "ARRAY[" + text + "]::BIGINT[]"
	case int64:
		return "BIGINT", fmt.Sprint(values)
	}
	t.Fatalf("no array literal for %T", arg)
	return "", ""
}

// A page of events reads its identifiers by event id. On a table of links
// that was never analyzed the planner takes a few dozen ids to match a
// quarter of it, and an IN list read the whole table (1.7 s a page at a
// million profiles): each id must stay a probe of the primary key.
func TestEventLinksProbeTheKeyWithoutStatistics(t *testing.T) {
	db := sqltest.MustOpenPostgres(t)
	ctx := context.Background()
	_, err := db.ExecContext(ctx, `INSERT INTO identity_links
		(event_id, type, value, message_id)
		SELECT g / 3, 'anonymous_id', 'anon-' || g, 'message-' || g / 3
		FROM generate_series(3, 150000) AS g`)
	if err != nil {
		t.Fatal(err)
	}

	ids := make([]int64, 51)
	for i := range ids {
		ids[i] = int64(1000 + i)
	}
	query, args, err := eventLinksQuery(db.Dialect(), ids)
	if err != nil {
		t.Fatal(err)
	}
	var custom []string
	err = db.SelectContext(ctx, &custom, "EXPLAIN "+db.Rebind(query), args...)
	if err != nil {
		t.Fatal(err)
	}
	generic := genericPlan(ctx, t, db.DB, "event_links", query, args)
	for _, plan := range []string{strings.Join(custom, "\n"), generic} {
		if strings.Contains(plan, "Seq Scan") || strings.Contains(plan, "Hash Join") {
			t.Errorf("a page's links read the table whole:\n%s", plan)
		}
	}
}
