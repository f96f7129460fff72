package resolver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// eaStore opens a store over db whose profiles may hold many identifiers
// of a type (user ids stay at one).
func eaStore(db *sqldb.DB) *resolver.Store {
	rules := resolver.DefaultRules()
	rules.DefaultLimit = 5000
	rules.MaxIdentifiers = 5000
	clock := func() time.Time { return time.Date(2026, 12, 4, 15, 8, 0, 0, time.UTC) }
	return resolver.NewStore(db, rules, clock, nil)
}

// eaFresh opens an empty database of db's engine.
func eaFresh(t *testing.T, db *sqldb.DB) *sqldb.DB {
	t.Helper()
	if db.Dialect() == sqldb.Postgres {
		return sqltest.MustOpenPostgres(t)
	}
	return sqltest.MustOpenSQLite(t)
}

// eaJSON quotes s as a JSON string.
func eaJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// eaTrack is a track message of id with the given userId and anonymousId
// (either may be empty), at minute min.
func eaTrack(id, user, anon string, min int) string {
	var ids []string
	if user != "" {
		ids = append(ids, `"userId":`+eaJSON(user))
	}
	if anon != "" {
		ids = append(ids, `"anonymousId":`+eaJSON(anon))
	}
	return liTrack(id, strings.Join(ids, ","), min%60, "A")
}

// eaManyRun gives u1 700 anonymousIds (the erasure reads the links naming
// them in two chunks), u2 events carrying three of them and a gone event
// of its own, u1 two gone events (one carrying only an anonymousId), then
// erases u1 through the API or a delete message inside a batch, and
// returns the tables.
func eaManyRun(t *testing.T, db *sqldb.DB, viaBatch bool) map[string][]string {
	t.Helper()
	store := eaStore(db)
	var raws []string
	for i := range 700 {
		raws = append(raws, eaTrack(fmt.Sprintf("m%03d", i), "u1", fmt.Sprintf("a%03d", i), i))
	}
	liBatch(t, store, raws...)
	liBatch(t, store, eaTrack("o0", "u2", "", 1), eaTrack("g2", "u2", "", 2))
	liBatch(t, store, eaTrack("o1", "u2", "a699", 3), eaTrack("o2", "u2", "a000", 4),
		eaTrack("o3", "u2", "b1", 5), eaTrack("g1", "", "a650", 6))
	if n := mustCount(t, db, `SELECT COUNT(*) FROM identities WHERE value = 'a699'
		AND profile_id = (SELECT profile_id FROM identities WHERE value = 'u1')`); n != 1 {
		t.Fatalf("u1 does not hold a699 (%d)", n)
	}
	liGone(t, db, "g1", "g2", "m100")

	if viaBatch {
		out := liBatch(t, store, eaTrack("x1", "u3", "", 7),
			`{"type":"delete","messageId":"d1","userId":"u1"}`, eaTrack("x2", "u4", "", 8))
		if out[1].Status != resolver.StatusDeleted {
			t.Errorf("delete message: %s", out[1].Status)
		}
	} else {
		result, err := store.Delete(context.Background(),
			resolver.Identifier{Type: "user_id", Value: "u1"}, "test")
		if err != nil {
			t.Fatal(err)
		}
		if result.Identifiers != 701 || result.Events != 701 {
			t.Errorf("erased %d identifiers and %d events, want 701 and 701",
				result.Identifiers, result.Events)
		}
	}

	for query, want := range map[string]int{
		`SELECT COUNT(*) FROM identity_links WHERE value LIKE 'a%' OR value = 'u1'`: 0,
		`SELECT COUNT(*) FROM identities WHERE value LIKE 'a%' OR value = 'u1'`:     0,
		`SELECT COUNT(*) FROM events WHERE message_id LIKE 'm%'`:                    0,
		`SELECT COUNT(*) FROM erased_messages`:                                      701,
		`SELECT COUNT(*) FROM erased_messages WHERE message_id IN ('g1', 'm100')`:   2,
		`SELECT COUNT(*) FROM erased_messages WHERE message_id LIKE 'o%'
			OR message_id LIKE 'x%' OR message_id = 'g2'`: 0,
		`SELECT COUNT(*) FROM events WHERE message_id LIKE 'o%'`:      4,
		`SELECT COUNT(*) FROM identity_links WHERE value = 'u2'`:      5,
		`SELECT COUNT(*) FROM identity_links WHERE value = 'b1'`:      1,
		`SELECT COUNT(*) FROM identities WHERE value IN ('u2', 'b1')`: 2,
	} {
		if n := mustCount(t, db, query); n != want {
			t.Errorf("%s: %d, want %d", query, n, want)
		}
	}
	if n := mustCount(t, db, liMisnamed); n != 0 {
		t.Errorf("%d links name another message's event", n)
	}
	return lkTables(t, db)
}

// A person holding 700 identifiers is erased whole, through the API and
// through a delete message in a batch, on each engine, leaving the other
// person's events and links alone; both engines leave the same rows.
func TestEraseAttackPersonWithManyIdentifiers(t *testing.T) {
	results := map[string]map[string][]string{}
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		api := eaManyRun(t, db, false)
		batch := eaManyRun(t, eaFresh(t, db), true)
		delete(batch, "events")
		results[string(db.Dialect())] = api
		results[string(db.Dialect())+"-batch"] = batch
	})
	if results["postgres"] == nil {
		return // no PostgreSQL to test on: nothing to compare
	}
	if !reflect.DeepEqual(results["sqlite"], results["postgres"]) {
		t.Errorf("engines differ:\n  sqlite %v\npostgres %v", results["sqlite"],
			results["postgres"])
	}
	if !reflect.DeepEqual(results["sqlite-batch"], results["postgres-batch"]) {
		t.Errorf("engines differ in batches:\n  sqlite %v\npostgres %v",
			results["sqlite-batch"], results["postgres-batch"])
	}
}

// eaOdd are values with LIKE's and SQL's special characters and unicode;
// eaNear are other people's values that a pattern or a prefix would
// confuse with them.
var (
	eaOdd  = []string{`50%`, `a_b`, `back\slash`, `quo'te"`, `ünï😀`, `ab`, `%`, `_`}
	eaNear = []string{`50x`, `5%`, `aXb`, `a_b2`, `back\\slash`, `quo'te"2`, `ünï`,
		`abc`, `%%`, `x_`}
)

// Erasing a person whose identifiers hold quotes, percent, underscore,
// backslash and unicode removes exactly their links and identifiers:
// another person's near-identical values, and their events, stay.
func TestEraseAttackOddValuesTakeOnlyTheirOwn(t *testing.T) {
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		store := eaStore(db)
		var raws []string
		for i, v := range eaOdd {
			raws = append(raws, eaTrack(fmt.Sprintf("p%d", i), "u1", v, i))
		}
		for i, v := range eaNear {
			raws = append(raws, eaTrack(fmt.Sprintf("q%d", i), "u2", v, 20+i))
		}
		liBatch(t, store, raws...)
		// u2's message carrying u1's 50%: a link to u1 on u2's event.
		liBatch(t, store, eaTrack("q-shared", "u2", `50%`, 40))
		liGone(t, db, "q0")
		before := rowsOf(t, db, `SELECT l.message_id, l.type, l.value FROM identity_links l
			WHERE l.message_id LIKE 'q%' ORDER BY 1, 2, 3`)
		liErase(t, store, "u1")

		after := rowsOf(t, db, `SELECT l.message_id, l.type, l.value FROM identity_links l
			ORDER BY 1, 2, 3`)
		var want []string
		for _, row := range before {
			if row != "q-sharedanonymous_id50%" { // rowsOf joins strings bare
				want = append(want, row)
			}
		}
		if !reflect.DeepEqual(after, want) {
			t.Errorf("links after erasure:\n got %q\nwant %q", after, want)
		}
		ids := rowsOf(t, db, `SELECT value FROM identities ORDER BY value`)
		wantIDs := append([]string{"u2"}, eaNear...)
		slices.Sort(wantIDs)
		slices.Sort(ids)
		if !reflect.DeepEqual(ids, wantIDs) {
			t.Errorf("identities after erasure:\n got %q\nwant %q", ids, wantIDs)
		}
		if n := mustCount(t, db, `SELECT COUNT(*) FROM events WHERE message_id LIKE 'q%'`); n !=
			len(eaNear) {
			t.Errorf("u2 has %d events, want %d", n, len(eaNear))
		}
		got := liErased(t, db)
		for _, id := range got {
			if !strings.HasPrefix(id, "p") {
				t.Errorf("erased %s, not u1's", id)
			}
		}
		if len(got) != len(eaOdd) {
			t.Errorf("erased_messages %v, want the %d of u1", got, len(eaOdd))
		}
	})
}

// An identifier nobody holds (a limit kept it off) that a gone message
// alone carried: erasing it takes that message (into erased_messages, with
// its links) and leaves the person whose identifier the message also
// carried. One a live message carried takes that message's person.
func TestEraseAttackIdentifierNobodyHolds(t *testing.T) {
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		store := liStore(db) // anonymousIds: five a profile
		var raws []string
		for i := range 6 {
			raws = append(raws, eaTrack(fmt.Sprintf("m%d", i), "u1", fmt.Sprintf("a%d", i), i))
		}
		raws = append(raws, eaTrack("k1", "u2", "", 10))
		liBatch(t, store, raws...)
		if n := mustCount(t, db, `SELECT COUNT(*) FROM identities WHERE value = 'a5'`); n != 0 {
			t.Fatalf("a5 is held (%d): the limit did not keep it off", n)
		}
		liGone(t, db, "m5")
		_, err := store.Delete(ctx, resolver.Identifier{Type: "anonymous_id", Value: "a5"},
			"test")
		if err != nil {
			t.Fatal(err)
		}
		if got := liErased(t, db); !reflect.DeepEqual(got, []string{"m5"}) {
			t.Errorf("erased_messages %v, want [m5]", got)
		}
		for query, want := range map[string]int{
			`SELECT COUNT(*) FROM identity_links WHERE message_id = 'm5'`: 0,
			`SELECT COUNT(*) FROM identity_links WHERE value = 'u1'`:      5,
			`SELECT COUNT(*) FROM identities`:                             7,
			`SELECT COUNT(*) FROM events`:                                 6,
		} {
			if n := mustCount(t, db, query); n != want {
				t.Errorf("%s: %d, want %d", query, n, want)
			}
		}
		// A second erasure of a5 finds nothing.
		_, err = store.Delete(ctx, resolver.Identifier{Type: "anonymous_id", Value: "a5"},
			"test")
		if resolver.ErrorCode(err) != resolver.ENotFound {
			t.Errorf("second erasure of a5: %v, want not found", err)
		}
		// An erasure of someone never seen, by a delete message, is a no-op.
		out := liBatch(t, store, `{"type":"delete","messageId":"d9","userId":"nobody"}`)
		if out[0].Status != resolver.StatusDeleted {
			t.Errorf("delete of nobody: %s", out[0].Status)
		}
		if n := mustCount(t, db, `SELECT COUNT(*) FROM identity_links`); n != 11 {
			t.Errorf("%d links after erasing nobody, want 11", n)
		}
	})
}

// eaSearchRules declare a custom type, loyalty_id, stored lower-cased.
func eaSearchRules() resolver.Rules {
	rules := resolver.DefaultRules()
	rules.Custom = []resolver.CustomType{{Type: "loyalty_id", Keys: []string{"loyaltyId"},
		Normaliser: "lower"}}
	return rules
}

// eaSearch runs the profile search for each query and returns the users
// found (each profile named by its user_id, or by its first identifier).
func eaSearch(t *testing.T, db *sqldb.DB, queries []string) map[string][]string {
	t.Helper()
	ctx := context.Background()
	profiles := resolver.NewProfiles(db).WithRules(eaSearchRules())
	out := map[string][]string{}
	for _, q := range queries {
		found, err := profiles.Search(ctx, q)
		if err != nil {
			t.Fatalf("Search(%q): %v", q, err)
		}
		names := []string{}
		for _, p := range found {
			ids, err := profiles.Identifiers(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			name := ids[0].Value
			for _, id := range ids {
				if id.Type == "user_id" {
					name = id.Value
				}
			}
			names = append(names, name)
		}
		slices.Sort(names)
		out[q] = names
	}
	return out
}

// The profile search finds a value under every type, custom ones and the
// "type:value" form included, never a value it is only a prefix of, and
// nothing (without an error) on an empty database; both engines agree.
func TestEraseAttackSearch(t *testing.T) {
	queries := []string{"u1", "u", "JANE@x.test", "ABC", "user_id:u1", "loyalty_id:ABC",
		"email:Jane@X.TEST", "50%", "5_%", `quo'te`, "ünï😀", "anonymous_id:ünï😀",
		" u1 ", "", "u1x"}
	want := map[string][]string{
		"u1": {"u1"}, "u": {}, "JANE@x.test": {"jane@x.test", "u1"},
		"ABC": {"abc", "u5"}, "user_id:u1": {"u1"}, "loyalty_id:ABC": {"abc", "u5"},
		"email:Jane@X.TEST": {"jane@x.test", "u1"}, "50%": {"u6"}, "5_%": {},
		`quo'te`: {"u6"}, "ünï😀": {"u6"}, "anonymous_id:ünï😀": {"u6"}, " u1 ": {"u1"},
		"": {}, "u1x": {"u1x"},
	}
	results := map[string]map[string][]string{}
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		empty := eaSearch(t, db, queries)
		for q, got := range empty {
			if len(got) != 0 {
				t.Errorf("empty database: Search(%q) = %v", q, got)
			}
		}
		clock := func() time.Time { return time.Date(2026, 12, 4, 15, 8, 0, 0, time.UTC) }
		store := resolver.NewStore(db, eaSearchRules(), clock, nil)
		liBatch(t, store,
			`{"type":"identify","messageId":"s1","userId":"u1",`+
				`"traits":{"email":"Jane@X.test"}}`,
			`{"type":"identify","messageId":"s2","userId":"jane@x.test"}`,
			`{"type":"identify","messageId":"s3","anonymousId":"u1x"}`,
			`{"type":"identify","messageId":"s4","anonymousId":"abc"}`,
			`{"type":"identify","messageId":"s5","userId":"u5",`+
				`"traits":{"loyaltyId":"ABC"}}`,
			`{"type":"identify","messageId":"s6","userId":"u6","anonymousId":"50%"}`,
			`{"type":"identify","messageId":"s7","userId":"u6","anonymousId":"quo'te"}`,
			`{"type":"identify","messageId":"s8","userId":"u6","anonymousId":"ünï😀"}`)
		got := eaSearch(t, db, queries)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("search:\n got %v\nwant %v", got, want)
		}
		results[string(db.Dialect())] = got
	})
	if results["postgres"] == nil {
		return // no PostgreSQL to test on: nothing to compare
	}
	if !reflect.DeepEqual(results["sqlite"], results["postgres"]) {
		t.Errorf("engines differ:\n  sqlite %v\npostgres %v", results["sqlite"],
			results["postgres"])
	}
}
