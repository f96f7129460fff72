package audiences

import (
	"context"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver/sqldb"
)

// sharedDefinitions are the built-in audiences and one of each kind of
// leaf, with attributes, over the benchmark's people.
func sharedDefinitions(t *testing.T) []Definition {
	defs := Builtins()
	for _, text := range []string{
		`name: viewers
condition:
  performed: {event: Product Viewed, at_least: 3}
  attributes: {views: count, first_view: first_at}`,
		`name: no_recent_order
condition: {not_performed: {event: Order Completed, within: 30d}}`,
		`name: pats
condition:
  trait: {key: first_name, equals: Pat}
  attributes: {first_name: value}`,
		`name: long_distance
condition:
  aggregate: {event: Workout Completed, function: sum, property: distance,
    within: 90d, at_least: 100}
  attributes: {total: value}`,
		`name: either
include_anonymous: true
condition:
  or:
    - {performed: {event: Order Completed}}
    - {not: {trait: {key: first_name, exists: true}}}`,
	} {
		defs = append(defs, mustDefinition(t, text))
	}
	return defs
}

// TestSharesTogetherAreTheWholeQuery computes each audience in one query
// and in 2 and 3 shares of the profiles, on each engine: the shares'
// members, joined in profile order, must be the one query's, attributes
// and all. In thirds no share may be empty: a share predicate that kept
// no one would otherwise pass for audiences without members. (Halves can
// be: the benchmark's people take turns by kind, one in four, so each
// audience's profile ids all have one parity.)
func TestSharesTogetherAreTheWholeQuery(t *testing.T) {
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		mustSeedBench(t, db, 200)
		r := NewRunner(db, nil, testNow, nil)
		for _, def := range sharedDefinitions(t) {
			whole := mustEvaluateShare(t, r, def, share{})
			if len(whole) == 0 {
				t.Errorf("%s has no members; the comparison would prove little", def.Name)
			}
			for _, of := range []int{2, 3} {
				parts := make([][]memberRow, of)
				for i := range of {
					parts[i] = mustEvaluateShare(t, r, def, share{index: i, of: of})
					if of == 3 && len(parts[i]) == 0 {
						t.Errorf("%s: share %d of %d is empty", def.Name, i, of)
					}
				}
				if got := inProfileOrder(parts); !reflect.DeepEqual(got, whole) {
					t.Errorf("%s in %d shares: %d members, want the whole query's %d",
						def.Name, of, len(got), len(whole))
				}
			}
		}
	})
}

func mustEvaluateShare(t *testing.T, r *Runner, def Definition, part share) []memberRow {
	t.Helper()
	var found []memberRow
	err := r.db.Snapshot(context.Background(), func(tx *sqlx.Tx) error {
		var err error
		found, err = r.evaluate(context.Background(), tx, def, testNow(), part)
		return err
	})
	if err != nil {
		t.Fatalf("%s, share %+v: %v", def.Name, part, err)
	}
	return found
}

// TestQueriesPerAudienceGiveTheSameMembers computes every audience
// through the runner with one query and with three at once: on
// PostgreSQL the three read one snapshot on three connections, and the
// members, with their identifiers, must be the same.
func TestQueriesPerAudienceGiveTheSameMembers(t *testing.T) {
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		mustSeedBench(t, db, 200)
		one := NewRunner(db, nil, testNow, nil)
		one.SetQueriesPerAudience(1)
		three := NewRunner(db, nil, testNow, nil)
		three.SetQueriesPerAudience(3)
		for _, def := range sharedDefinitions(t) {
			want, err := one.members(context.Background(), def, testNow())
			if err != nil {
				t.Fatal(err)
			}
			got, err := three.members(context.Background(), def, testNow())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: %d members in three queries, %d in one", def.Name,
					len(got), len(want))
			}
		}
	})
}

func TestFirstCauseSkipsTheCancellationItCaused(t *testing.T) {
	cause := context.DeadlineExceeded
	canceled := context.Canceled
	for _, tt := range []struct {
		errs []error
		want error
	}{
		{[]error{nil, nil}, nil},
		{[]error{canceled, cause}, cause},
		{[]error{cause, canceled}, cause},
		{[]error{nil, canceled}, canceled},
	} {
		if got := firstCause(tt.errs); got != tt.want {
			t.Errorf("firstCause(%v) = %v, want %v", tt.errs, got, tt.want)
		}
	}
}

// TestQueriesReadOnlyTheTablesTheyLock reads the table names after FROM
// and JOIN in every compiled query of sharedDefinitions, and of the
// identifier reading: each must be one tablesRead locks, a table the query
// itself defines (its WITH tables), or a function's rows (json_each).
func TestQueriesReadOnlyTheTablesTheyLock(t *testing.T) {
	locked := map[string]bool{}
	for _, name := range tablesRead() {
		locked[name] = true
	}
	tableAfter := regexp.MustCompile(`(?i)\b(?:FROM|JOIN)\s+([a-z_][a-z0-9_]*)(\s*\()?`)
	defined := regexp.MustCompile(`(?i)\b([a-z_][a-z0-9_]*) AS \(`)
	check := func(name, sql string) {
		own := map[string]bool{"lateral": true}
		for _, m := range defined.FindAllStringSubmatch(sql, -1) {
			own[strings.ToLower(m[1])] = true
		}
		for _, m := range tableAfter.FindAllStringSubmatch(sql, -1) {
			table := strings.ToLower(m[1])
			function := m[2] != "" // json_each(...), a table-valued function
			if !locked[table] && !own[table] && !function {
				t.Errorf("%s reads %s, which tablesRead does not lock", name, table)
			}
		}
	}
	for _, def := range append(sharedDefinitions(t), mustDefinition(t,
		"name: inner\ncondition: {in_audience: cart_abandonment}")) {
		for _, d := range []dialect{sqliteDialect{}, postgresDialect{}} {
			compiled, err := compileShare(def, testNow(), d, share{index: 1, of: 2})
			if err != nil {
				t.Fatal(err)
			}
			check(def.Name, compiled.sql)
		}
	}
	check("identifiers", identifiersQuery)
}
