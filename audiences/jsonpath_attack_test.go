package audiences

// Attacks on how the engines read JSON (PostgreSQL member by member with
// -> and ->>, SQLite by a quoted JSON path), on the identifier checks of
// require_email and include_anonymous, and on running every built-in
// audience. Each test checks SQLite against what the language promises,
// and PostgreSQL against SQLite when sqltest.PostgresEnv names a server.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// engines is one fresh database of every engine available: SQLite first,
// then PostgreSQL when sqltest.PostgresEnv is set.
type engines []*sqldb.DB

func openEngines(t *testing.T) engines {
	t.Helper()
	dbs := engines{sqltest.MustOpenSQLite(t)}
	if os.Getenv(sqltest.PostgresEnv) != "" {
		dbs = append(dbs, sqltest.MustOpenPostgres(t))
	}
	return dbs
}

// members computes def on every engine, fails the test if an engine
// fails or the engines disagree, and returns SQLite's members.
func (dbs engines) members(t *testing.T, def Definition) map[int64]map[string]any {
	t.Helper()
	if err := Validate([]Definition{def}); err != nil {
		t.Fatalf("definition does not validate: %v", err)
	}
	var first map[int64]map[string]any
	for i, db := range dbs {
		r := NewRunner(db, []Definition{def}, testNow, nil)
		found, err := r.members(context.Background(), def, testNow())
		if err != nil {
			t.Fatalf("%s: compute: %v", db.Dialect(), err)
		}
		got := map[int64]map[string]any{}
		for _, m := range found {
			got[m.ProfileID] = m.Attributes
		}
		if i == 0 {
			first = got
		} else if !reflect.DeepEqual(got, first) {
			t.Errorf("engines disagree:\nsqlite   %v\n%s %v", first, db.Dialect(), got)
		}
	}
	return first
}

// TestAttackStepNamesReadAlikeOnBothEngines reads property names full of
// path, SQL and parameter syntax, unicode and number-like text, at the
// top, three levels deep, through an array, in filters, keys and anchor
// captures; a name that looks like a number never indexes an array.
func TestAttackStepNamesReadAlikeOnBothEngines(t *testing.T) {
	names := []string{" ", "a b", "$", "$1", "'", "a'b", "1e3", " 1", "1 ", "0x1",
		"١", "NaN", "null", "*", "{a}", "a,b", "{}", "R&D", "<b>", "日本", "🎉",
		"e\u0301", "\u200b", "\u2028", "%_", "::text", "x')--", "\u00a0"}
	for i, n := range names {
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkStepName(t, n) })
	}
}

// checkStepName reads the property name n in every place a path goes.
func checkStepName(t *testing.T, n string) {
	t.Helper()
	dbs := openEngines(t)
	deep := map[string]any{n: map[string]any{n: map[string]any{n: "deep"}}}
	arr := []any{map[string]any{n: "w1"}, map[string]any{n: "w2", "c": "S"}}
	histories := [][]testEvent{
		{ev("A", ago(2*day), n, "top")},
		{ev("A", ago(2*day), "o", deep)},
		{ev("A", ago(2*day), "arr", arr)},
		// Arrays where a number-like step could index them.
		{ev("A", ago(2*day), "o", map[string]any{n: []any{"z", "y"}},
			n, []any{"a", "b"})},
		{ev("A", ago(2*day), "o", map[string]any{n: nil}, n, nil)},
	}
	for _, db := range dbs {
		for p, h := range histories {
			mustStorePerson(t, db, int64(p+1), h)
		}
	}
	q := yamlQuote
	where := func(path, test string) Definition {
		return conditionDef(t, fmt.Sprintf(
			"performed: {event: A, where: [{property: %s, %s}]}", q(path), test))
	}
	keyOf := func(path string) Definition {
		return conditionDef(t, fmt.Sprintf(`then_not:
  first: {event: A, key: %s}
  not_followed_by: [{event: Z, key: x}]
attributes: {k: keys}`, q(path)))
	}
	checks := []struct {
		what string
		def  Definition
		want map[int64]map[string]any
	}{
		{"key at the top", keyOf(n),
			map[int64]map[string]any{1: {"k": []string{"top"}}}},
		{"key three deep", keyOf("o." + n + "." + n + "." + n),
			map[int64]map[string]any{2: {"k": []string{"deep"}}}},
		{"key through an array", keyOf("arr[]." + n),
			map[int64]map[string]any{3: {"k": []string{"w1", "w2"}}}},
		{"a step over an array finds nothing", keyOf(n + "." + n), nil},
		{"exists on an object's field", where("o."+n, "exists: true"),
			map[int64]map[string]any{2: {}, 4: {}}},
		{"exists false on null and missing", where("o."+n, "exists: false"),
			map[int64]map[string]any{1: {}, 3: {}, 5: {}}},
		{"an element passes a filter", where("arr[]."+n, "equals: w2"),
			map[int64]map[string]any{3: {}}},
		{"anchor captures", conditionDef(t, fmt.Sprintf(`aggregate:
  event: B
  function: count
  since_latest: {event: A, where: [{property: 'arr[].c', equals: S}]}
  at_least: 0
attributes: {k: %s}`, q("anchor.arr[]."+n))),
			map[int64]map[string]any{3: {"k": "w2"}}},
	}
	for _, c := range checks {
		got := dbs.members(t, c.def)
		if len(got) == 0 && len(c.want) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s (name %q): got %v, want %v", c.what, n, got, c.want)
		}
	}
}

// TestAttackNumberLikeStepsStayRefused checks that the validator still
// refuses every step strconv reads as a number, the steps that would
// index an array on PostgreSQL if they reached a path array.
func TestAttackNumberLikeStepsStayRefused(t *testing.T) {
	for _, step := range []string{"0", "-1", "+1", "01", "007", "-0"} {
		refusesNumericStep(t, fmt.Sprintf(
			"performed: {event: E, where: [{property: %s, exists: true}]}",
			yamlQuote("a."+step)), step)
		refusesNumericStep(t, fmt.Sprintf(
			"performed: {event: E, where: [{property: %s, exists: true}]}",
			yamlQuote("a[]."+step)), step)
	}
}

// TestAttackValuesOfEveryJSONTypeReadAlike reads, as a then_not key (the
// value as text) and as a number in max, values of every JSON type that
// both engines write the same way: null, booleans, text holding numbers,
// objects, arrays, whole numbers up to 1e18, decimals, negative zero.
func TestAttackValuesOfEveryJSONTypeReadAlike(t *testing.T) {
	values := []struct {
		v    any
		text []string // the keys; nil when the person is not a member
		max  any      // the max attribute; nil when there is no number
	}{
		{nil, nil, nil},
		{true, []string{"true"}, nil},
		{false, []string{"false"}, nil},
		{"", []string{}, nil}, // a member whose empty key is not listed
		{"42", []string{"42"}, nil},
		{"1e3", []string{"1e3"}, nil},
		{map[string]any{"a": 1}, nil, nil},
		{[]any{1, 2}, nil, nil},
		{[]any{}, nil, nil},
		{json.Number("1e18"), []string{"1000000000000000000"}, 1e18},
		{json.Number("100.0"), []string{"100"}, 100.0},
		{json.Number("1e2"), []string{"100"}, 100.0},
		{json.Number("-0"), []string{"0"}, 0.0},
		{json.Number("0.1"), []string{"0.1"}, 0.1},
		{json.Number("1.5"), []string{"1.5"}, 1.5},
		{json.Number("-2.5e-5"), []string{"-2.5e-05"}, 0.0},
		{json.Number("123456789012345678901234567890"),
			[]string{"1.2345678901234568e+29"}, 1.2345678901234568e+29},
		{"ünï 🎉", []string{"ünï 🎉"}, nil},
	}
	dbs := openEngines(t)
	for _, db := range dbs {
		for i, v := range values {
			mustStorePerson(t, db, int64(i+1), []testEvent{ev("A", ago(day), "p",
				map[string]any{"x y": map[string]any{"$": v.v}})})
		}
	}
	keys := dbs.members(t, conditionDef(t, `then_not:
  first: {event: A, key: "p.x y.$"}
  not_followed_by: [{event: Z, key: x}]
attributes: {k: keys}`))
	maxes := dbs.members(t, conditionDef(t, `or:
- aggregate: {event: A, function: max, property: "p.x y.$", at_least: -1e300}
  attributes: {m: value}
- performed: {event: A}`))
	for i, v := range values {
		id := int64(i + 1)
		var gotText []string
		if k, ok := keys[id]; ok {
			gotText, _ = k["k"].([]string)
			gotText = append([]string{}, gotText...)
		}
		if !reflect.DeepEqual(gotText, v.text) {
			t.Errorf("%#v as text: got %q, want %q", v.v, gotText, v.text)
		}
		gotMax := maxes[id]["m"]
		if (gotMax == nil) != (v.max == nil) ||
			(v.max != nil && !sameNumber(gotMax, v.max)) {
			t.Errorf("%#v as a number: got %#v, want %#v", v.v, gotMax, v.max)
		}
	}
}

// TestAttackIdentifierChecksOfEveryCombination runs require_email and
// include_anonymous in all four combinations over people with both
// identifiers, only an email, only a user_id, only an anonymous id, and
// none: checking only the email where one is required admits exactly
// the people the two checks together admitted.
func TestAttackIdentifierChecksOfEveryCombination(t *testing.T) {
	dbs := openEngines(t)
	people := [][]string{
		{"user_id", "email"}, {"email"}, {"user_id"}, {"anonymous_id"}, nil,
	}
	for _, db := range dbs {
		for i, types := range people {
			id := int64(i + 1)
			mustExec(t, db, `INSERT INTO profiles (id, created_ms, updated_ms)
				VALUES (?, 0, 0)`, id)
			for _, typ := range types {
				mustExec(t, db, `INSERT INTO identities (type, value, profile_id,
					first_seen_ms, first_message_id, source)
					VALUES (?, ?, ?, 0, 'm', 'test')`,
					typ, fmt.Sprintf("%s-%d@example.com", typ, id), id)
			}
			mustStoreEvents(t, db, id, []testEvent{ev("E", ago(day))})
		}
	}
	tests := []struct {
		options string
		want    []int64
	}{
		{"", []int64{1, 2, 3}},
		{"include_anonymous: true\n", []int64{1, 2, 3, 4, 5}},
		{"require_email: true\n", []int64{1, 2}},
		{"require_email: true\ninclude_anonymous: true\n", []int64{1, 2}},
		{"require_email: false\n", []int64{1, 2, 3}},
	}
	for _, tt := range tests {
		def := defFromYAML(t, "name: adv\n"+tt.options+
			"condition:\n  performed: {event: E}\n")
		if got := memberIDs(dbs.members(t, def)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: members %v, want %v", tt.options, got, tt.want)
		}
	}
}

// TestAttackEveryBuiltinRunsAndPreviewsOnEachEngine feeds a small data set
// through the resolver and runs and previews every built-in audience on
// every engine (memoize and jit off on PostgreSQL), each with members,
// and the engines agree on who they are and what they carry.
func TestAttackEveryBuiltinRunsAndPreviewsOnEachEngine(t *testing.T) {
	track := func(id, user, event string, daysAgo int,
		props map[string]any) map[string]any {
		return map[string]any{"type": "track", "messageId": id, "userId": user,
			"event": event, "properties": props,
			"timestamp": FormatTime(ago(time.Duration(daysAgo) * day))}
	}
	identify := func(id, user, email string) map[string]any {
		return map[string]any{"type": "identify", "messageId": id, "userId": user,
			"traits":    map[string]any{"email": email},
			"timestamp": FormatTime(ago(10 * day))}
	}
	messages := []map[string]any{
		identify("i1", "u1", "u1@example.com"),
		identify("i2", "u2", "u2@example.com"),
		track("c1", "u1", "Product Added", 2, map[string]any{"product_id": "sku's 1"}),
		track("c2", "u1", "Product Added", 2, map[string]any{"product_id": 12}),
		track("c3", "u1", "Order Completed", 1, map[string]any{
			"products": []any{map[string]any{"product_id": 12}}}),
		track("c4", "u3", "Product Added", 2, map[string]any{"product_id": "x"}),
		track("s1", "u2", "Order Completed", 9, map[string]any{"products": []any{
			map[string]any{"product_id": "sock", "category": "Socks"},
			// ignore_case folds, never trims: not a shoe.
			map[string]any{"product_id": "run-1", "category": " SHOES"},
			map[string]any{"product_id": "run-2", "category": "shoes"}}}),
		track("s2", "u2", "Workout Completed", 5, map[string]any{
			"distance": 300, "distance_unit": "KM "}),
		track("s3", "u2", "Workout Completed", 4, map[string]any{
			"distance": json.Number("150.5"), "distance_unit": "mi"}),
	}

	results := map[string][]string{}
	for _, db := range openEngines(t) {
		store := resolver.NewStore(db, resolver.DefaultRules(), testNow, nil)
		ingestMessages(t, store, messages...)
		runner := NewRunner(db, WithBuiltins(nil), testNow, nil)
		for _, def := range Builtins() {
			run, err := runner.Run(context.Background(), def.Name)
			if err != nil || run.Status != StatusOK {
				t.Fatalf("%s: run %s: %v %+v", db.Dialect(), def.Name, err, run)
			}
			size, sample, err := runner.Preview(context.Background(), def.Name, 10)
			if err != nil {
				t.Fatalf("%s: preview %s: %v", db.Dialect(), def.Name, err)
			}
			if size == 0 || size != run.Size {
				t.Errorf("%s: %s previews %d members and ran %d, want the same, "+
					"more than none", db.Dialect(), def.Name, size, run.Size)
			}
			var described []string
			for _, m := range sample {
				b, _ := json.Marshal(m.Attributes)
				described = append(described, m.UserID+" "+m.Email+" "+string(b))
			}
			key := def.Name
			if prev, ok := results[key]; ok && !reflect.DeepEqual(prev, described) {
				t.Errorf("%s: engines disagree:\nsqlite   %q\n%s %q",
					key, prev, db.Dialect(), described)
			}
			results[key] = described
		}
	}
	want := map[string][]string{
		"cart_abandonment": {`u1 u1@example.com {"abandoned_products":["sku's 1"],` +
			`"added_at":"` + FormatTime(ago(2*day)) + `"}`},
		"shoe_reorder": {`u2 u2@example.com {"miles_since_purchase":336.9,` +
			`"purchased_at":"` + FormatTime(ago(9*day)) + `","shoe":"run-2"}`},
	}
	for name, w := range want {
		if !reflect.DeepEqual(results[name], w) {
			t.Errorf("%s: got %q, want %q", name, results[name], w)
		}
	}
}
