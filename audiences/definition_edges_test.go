package audiences

// Edge cases of the audience definition language: each test compiles a
// definition written as a user would (YAML), runs it on a fresh database
// at testNow, and checks who is a member and what they carry, or checks
// that Validate refuses it with a message naming the audience and key.
// Tests that go through evaluateOn also run on PostgreSQL, and fail if
// the engines disagree, when sqltest.PostgresEnv names a server.

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// defFromYAML reads one audience definition from YAML, named adv unless
// the text names it.
func defFromYAML(t testing.TB, text string) Definition {
	t.Helper()
	var d Definition
	if err := yaml.Unmarshal([]byte(text), &d); err != nil {
		t.Fatalf("parse definition: %v\n%s", err, text)
	}
	if d.Name == "" {
		d.Name = "adv"
	}
	return d
}

// conditionDef is the audience adv whose condition is the YAML given.
func conditionDef(t testing.TB, condition string) Definition {
	t.Helper()
	body := strings.TrimSpace(condition)
	indented := "  " + strings.ReplaceAll(body, "\n", "\n  ")
	return defFromYAML(t, "name: adv\ncondition:\n"+indented+"\n")
}

// isMember reports whether the one person of evaluateOn, with history, is
// a member.
func isMember(t testing.TB, def Definition, history ...testEvent) bool {
	t.Helper()
	return evaluateOn(t, def, history) != nil
}

// validateMessage returns Validate's message for defs, or "" when they
// pass, and what Validate panicked with, if it did.
func validateMessage(defs ...Definition) (msg string, panicked any) {
	defer func() { panicked = recover() }()
	if err := Validate(defs); err != nil {
		return err.Error(), nil
	}
	return "", nil
}

// memberCase is one person's history and whether a condition admits
// them.
type memberCase struct {
	name      string
	condition string
	history   []testEvent
	member    bool
}

func runMembership(t *testing.T, cases []memberCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			def := conditionDef(t, tt.condition)
			if got := isMember(t, def, tt.history...); got != tt.member {
				t.Errorf("member = %v, want %v\ncondition:\n%s",
					got, tt.member, tt.condition)
			}
		})
	}
}

// ev is a track event whose properties are the key, value pairs kv.
func ev(name string, at time.Time, kv ...any) testEvent {
	props := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		props[kv[i].(string)] = kv[i+1]
	}
	return testEvent{Name: name, Time: at, Properties: props}
}

// sameNumber compares two numbers whatever their Go type: results carry
// int64(2) and 2.0 alike.
func sameNumber(a, b any) bool {
	f := func(v any) (float64, bool) {
		switch n := v.(type) {
		case int64:
			return float64(n), true
		case float64:
			return n, true
		}
		return 0, false
	}
	x, ok1 := f(a)
	y, ok2 := f(b)
	return ok1 && ok2 && x == y
}

// yamlQuote writes s as a YAML double-quoted scalar.
func yamlQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// memberIDs lists the profile ids from 1 to 10 that are members.
func memberIDs(m map[int64]map[string]any) []int64 {
	var out []int64
	for id := int64(1); id <= 10; id++ {
		if _, ok := m[id]; ok {
			out = append(out, id)
		}
	}
	return out
}

// refusesNumericStep checks that Validate refuses the audience adv with
// condition, in a message naming key and saying a step may not be a
// number.
func refusesNumericStep(t *testing.T, condition, key string) {
	t.Helper()
	msg, p := validateMessage(conditionDef(t, condition))
	if p != nil {
		t.Fatalf("Validate panicked: %v", p)
	}
	if !strings.Contains(msg, key) ||
		!strings.Contains(msg, "a step may not be a number") {
		t.Errorf("Validate = %q\nwant it to name %s and say "+
			"a step may not be a number", msg, key)
	}
}

// TestMetacharactersInDefinitionsAreValues puts SQL and JSON-path
// metacharacters in event names, property names and values: each is
// matched as the exact text, never as a pattern, never spliced into the
// SQL, and never breaks the query.
func TestMetacharactersInDefinitionsAreValues(t *testing.T) {
	nasty := []string{
		`it's`, `"quoted"`, `100%`, `a_b`, `$`, `$.x`,
		`'); DROP TABLE events; --`, `? ?`, `:name @p $1`, `back\slash`,
		`ünïcødé 日本 🎉`, `R&D <b>`, "tab\there", "line\u2028sep",
		strings.Repeat("long", 5000),
	}
	for i, s := range nasty {
		t.Run(fmt.Sprintf("%d", i), func(t *testing.T) {
			key := strings.NewReplacer(`"`, "", `\`, "", ".", "", "\t", "").
				Replace(s)
			q, k := yamlQuote(s), yamlQuote(key)
			def := conditionDef(t, fmt.Sprintf(`
performed:
  event: %s
  where:
    - property: %s
      equals: %s
    - property: %s
      contains: %s
    - property: %s
      starts_with: %s
    - property: %s
      one_of: [%s]
`, q, k, q, k, q, k, q, k, q))
			if msg, p := validateMessage(def); msg != "" || p != nil {
				t.Fatalf("does not validate: %s %v", msg, p)
			}
			compiled, err := compile(def, testNow(), sqliteDialect{})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(compiled.sql, s) ||
				(len(key) > 2 && strings.Contains(compiled.sql, key)) {
				t.Errorf("user text %q is in the SQL instead of a placeholder", s)
			}
			if !isMember(t, def, ev(s, ago(day), key, s)) {
				t.Errorf("the exact value is not matched")
			}
			if isMember(t, def, ev(s, ago(day), key, s+"x"+s)) {
				t.Errorf("a different value is matched")
			}
			if isMember(t, def, ev(s+" ", ago(day), key, s)) {
				t.Errorf("another event name is matched")
			}
		})
	}

	// LIKE-style wildcards have no meaning.
	runMembership(t, []memberCase{
		{name: "percent is not a wildcard in contains",
			condition: "performed: {event: E, where: [{property: x, contains: '%'}]}",
			history:   []testEvent{ev("E", ago(day), "x", "abc")}},
		{name: "underscore is not a wildcard in starts_with",
			condition: "performed: {event: E, where: " +
				"[{property: x, starts_with: 'a_'}]}",
			history: []testEvent{ev("E", ago(day), "x", "abc")}},
		{name: "percent event name matches nothing else",
			condition: "performed: {event: '%'}",
			history:   []testEvent{ev("Order", ago(day))}},
	})
}

// TestMetacharactersInTraitKeysAreValues stores a trait whose key and
// value hold SQL metacharacters and reads it through trait conditions:
// the key matches exactly, never as a prefix or pattern.
func TestMetacharactersInTraitKeysAreValues(t *testing.T) {
	db := sqltest.MustOpen(t)
	mustStorePerson(t, db, 1, nil)
	mustExec(t, db, `INSERT INTO traits (profile_id, key, value, ts_ms, message_id)
		VALUES (1, ?, ?, 0, 'm')`, "o'ne\x1f%_$", `"it's \"x\""`)
	def := conditionDef(t, `trait: {key: "o'ne.%_$", equals: "it's \"x\""}
attributes: {v: value}`)
	got := mustMembers(t, db, def)
	want := map[int64]map[string]any{1: {"v": `it's "x"`}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	prefix := conditionDef(t, `trait: {key: "o'ne.%_", exists: true}`)
	if got := mustMembers(t, db, prefix); len(got) != 0 {
		t.Errorf("a prefix of the key matched: %v", got)
	}
}

// TestPathsThroughArrays reads paths through arrays of scalars and
// objects, and through values that are not arrays at all.
func TestPathsThroughArrays(t *testing.T) {
	obj := func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	tagVIP := "performed: {event: E, where: [{property: 'tags[]', equals: vip}]}"
	catShoes := "performed: {event: E, where: " +
		"[{property: 'products[].category', equals: Shoes}]}"
	shoesAnd42 := "performed: {event: E, where: [" +
		"{property: 'products[].category', equals: Shoes}, " +
		"{property: 'products[].size', equals: 42}]}"
	shoesAndX := "performed: {event: E, where: [" +
		"{property: 'products[].category', equals: Shoes}, " +
		"{property: 'coupons[].code', equals: X}]}"
	couponAbsent := "performed: {event: E, where: " +
		"[{property: 'products[].coupon', exists: false}]}"
	tags := func(v any) []testEvent {
		return []testEvent{ev("E", ago(day), "tags", v)}
	}
	runMembership(t, []memberCase{
		{"an array of scalars holding the value", tagVIP,
			tags([]any{"new", "vip"}), true},
		{"an array of scalars without the value", tagVIP,
			tags([]any{"new", "vipx"}), false},
		{"a string where an array is expected", tagVIP, tags("vip"), false},
		{"an object where an array is expected", tagVIP,
			tags(obj("a", "vip")), false},
		{"an object whose key is the value where an array is expected", tagVIP,
			tags(obj("vip", "vip")), false},
		{"an empty array", tagVIP, tags([]any{}), false},
		{"a null array", tagVIP, tags(nil), false},
		{"a nested array is not flattened", tagVIP,
			tags([]any{[]any{"vip"}}), false},
		{"objects missing the key", catShoes,
			[]testEvent{ev("E", ago(day), "products",
				[]any{obj("sku", "Shoes"), "Shoes", nil})}, false},
		{"one object of several has the value", catShoes,
			[]testEvent{ev("E", ago(day), "products", []any{
				obj("category", "Socks"), 7, obj("category", "Shoes")})}, true},
		{"two filters on one array need one element passing both", shoesAnd42,
			[]testEvent{ev("E", ago(day), "products", []any{
				obj("category", "Shoes", "size", 41),
				obj("category", "Socks", "size", 42)})}, false},
		{"two filters on one array held by the same element", shoesAnd42,
			[]testEvent{ev("E", ago(day), "products", []any{
				obj("category", "Socks", "size", 41),
				obj("category", "Shoes", "size", 42)})}, true},
		{"filters on two different arrays each need a passing element", shoesAndX,
			[]testEvent{ev("E", ago(day),
				"products", []any{obj("category", "Shoes")},
				"coupons", []any{obj("code", "Y")})}, false},
		{"filters on two different arrays both held", shoesAndX,
			[]testEvent{ev("E", ago(day),
				"products", []any{obj("category", "Shoes")},
				"coupons", []any{obj("code", "Y"), obj("code", "X")})}, true},
		{"a nested path through an array",
			"performed: {event: E, where: " +
				"[{property: 'order.items[].product.sku', equals: p1}]}",
			[]testEvent{ev("E", ago(day), "order",
				obj("items", []any{obj("product", obj("sku", "p1"))}))}, true},
		{"a path without [] does not look into an array",
			"performed: {event: E, where: " +
				"[{property: 'products.category', equals: Shoes}]}",
			[]testEvent{ev("E", ago(day), "products",
				[]any{obj("category", "Shoes")})}, false},
		{"a count counts events, not matching elements",
			"performed: {event: E, exactly: 1, where: " +
				"[{property: 'tags[]', equals: vip}]}",
			tags([]any{"vip", "vip", "vip"}), true},
		{"exists false on an array element that lacks the key", couponAbsent,
			[]testEvent{ev("E", ago(day), "products",
				[]any{obj("coupon", "A"), obj("sku", "s")})}, true},
		{"exists false is not met by an event without the array", couponAbsent,
			[]testEvent{ev("E", ago(day))}, false},
	})

	t.Run("a numeric step is refused, not read as a key or an index",
		func(t *testing.T) {
			refusesNumericStep(t, "performed: {event: E, where: "+
				"[{property: 'products.0', equals: Shoes}]}",
				"audiences.adv.condition.performed.where[0].property")
		})
}

// TestNumericPathStepsAreRefused: a numeric step would be an object key
// to one engine and an array index to another, so Validate refuses it,
// naming the key that holds the path.
func TestNumericPathStepsAreRefused(t *testing.T) {
	for _, property := range []string{"products.0", "p.-1", "items[].0"} {
		t.Run(property, func(t *testing.T) {
			refusesNumericStep(t, "performed: {event: E, where: "+
				"[{property: '"+property+"', equals: z}]}",
				"audiences.adv.condition.performed.where[0].property")
		})
	}
}

// TestAggregatesThroughArrays sums a field of the elements that pass the
// filters on the same array, and reads values through other arrays once
// per event.
func TestAggregatesThroughArrays(t *testing.T) {
	item := func(cat string, price any) map[string]any {
		return map[string]any{"category": cat, "price": price}
	}
	history := []testEvent{
		ev("Order", ago(2*day),
			"items", []any{item("Shoes", 100), item("Socks", 5), item("Shoes", 50)},
			"coupons", []any{map[string]any{"code": "A"}, map[string]any{"code": "B"}}),
		ev("Order", ago(day), "items", []any{item("Shoes", 10)}),
		ev("Order", ago(day), "items", "not an array"),
	}
	tests := []struct {
		name, condition string
		want            any
	}{
		{"sum over the matching elements", `
aggregate:
  event: Order
  where: [{property: 'items[].category', equals: Shoes}]
  function: sum
  property: 'items[].price'
  at_least: 0
attributes: {v: value}`, 160.0},
		{"a filter on another array does not multiply the sum", `
aggregate:
  event: Order
  where: [{property: 'coupons[].code', one_of: [A, B]}]
  function: sum
  property: 'items[].price'
  at_least: 0
attributes: {v: value}`, 155.0},
		{"count through an array filter counts events", `
aggregate:
  event: Order
  where: [{property: 'items[].category', equals: Shoes}]
  function: count
  at_least: 0
attributes: {v: value}`, int64(2)},
		{"distinct_count over elements", `
aggregate:
  event: Order
  function: distinct_count
  property: 'items[].category'
  at_least: 0
attributes: {v: value}`, int64(2)},
		{"max over elements", `
aggregate:
  event: Order
  function: max
  property: 'items[].price'
  at_least: 0
attributes: {v: value}`, int64(100)},
		{"avg over elements", `
aggregate:
  event: Order
  function: avg
  property: 'items[].price'
  at_least: 0
attributes: {v: value}`, 41.25},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := evaluateOn(t, conditionDef(t, tt.condition), history)
			if got == nil || !sameNumber(got["v"], tt.want) {
				t.Errorf("got %#v, want v = %#v", got, tt.want)
			}
		})
	}
}

// TestFilterTestsAcrossJSONTypes pins how equals, not_equals, one_of, the
// text tests, exists and bounds treat numbers, numeric text, booleans,
// null and missing values.
func TestFilterTestsAcrossJSONTypes(t *testing.T) {
	where := func(filter string) string {
		return "performed: {event: E, where: [{property: x, " + filter + "}]}"
	}
	x := func(v any) []testEvent { return []testEvent{ev("E", ago(day), "x", v)} }
	none := []testEvent{ev("E", ago(day))}
	runMembership(t, []memberCase{
		{"number equals number", where("equals: 42"), x(42), true},
		{"number equals a float of the same value", where("equals: 1"),
			x(json.Number("1.0")), true},
		{"float equals an integer of the same value", where("equals: 1.0"),
			x(1), true},
		{"number does not equal numeric text", where("equals: 42"), x("42"), false},
		{"text equals a number written as that text", where("equals: '42'"),
			x(42), true},
		{"text equals numeric text", where("equals: '42'"), x("42"), true},
		{"true does not equal 1", where("equals: true"), x(1), false},
		{"true equals boolean true", where("equals: true"), x(true), true},
		{"false does not equal missing", where("equals: false"), none, false},
		{"false does not equal null", where("equals: false"), x(nil), false},
		{"0 does not equal false", where("equals: 0"), x(false), false},
		{"empty text equals empty text", where("equals: ''"), x(""), true},
		{"empty text does not equal missing", where("equals: ''"), none, false},
		{"equals is case sensitive", where("equals: Shoes"), x("shoes"), false},
		{"ignore_case folds ASCII", where("equals: SHOES, ignore_case: true"),
			x("shoes"), true},
		{"ignore_case on a number", where("equals: 5, ignore_case: true"),
			x(5), true},
		{"equals does not match an object", where("equals: a"),
			x(map[string]any{"a": "a"}), false},
		{"equals does not match an array holding it", where("equals: a"),
			x([]any{"a"}), false},
		{"negative numbers", where("equals: -3.5"), x(-3.5), true},
		{"not_equals on a different value", where("not_equals: a"), x("b"), true},
		{"not_equals on the same value", where("not_equals: a"), x("a"), false},
		{"not_equals on a missing value", where("not_equals: a"), none, false},
		{"not_equals on null", where("not_equals: a"), x(nil), false},
		{"not_equals with ignore_case", where("not_equals: A, ignore_case: true"),
			x("a"), false},
		{"not_equals a number on numeric text holds", where("not_equals: 5"),
			x("5"), true},
		{"one_of mixes types", where("one_of: [a, 7, true]"), x(7), true},
		{"one_of with none matching", where("one_of: [a, 7, true]"), x("b"), false},
		{"one_of ignore_case", where("one_of: [ABC, def], ignore_case: true"),
			x("aBc"), true},
		{"contains empty text holds for any text", where("contains: ''"),
			x("abc"), true},
		{"contains empty text does not hold for missing", where("contains: ''"),
			none, false},
		{"starts_with empty text", where("starts_with: ''"), x("abc"), true},
		{"starts_with longer than the value", where("starts_with: abcd"),
			x("abc"), false},
		{"starts_with counts characters, not bytes", where("starts_with: 'été'"),
			x("étés"), true},
		{"contains in a number's text", where("contains: '23'"), x(1234), true},
		{"contains ignore_case", where("contains: BC, ignore_case: true"),
			x("abcd"), true},
		{"exists true on a value", where("exists: true"), x(0), true},
		{"exists true on false", where("exists: true"), x(false), true},
		{"exists true on empty text", where("exists: true"), x(""), true},
		{"exists true on null", where("exists: true"), x(nil), false},
		{"exists true on missing", where("exists: true"), none, false},
		{"exists false on null", where("exists: false"), x(nil), true},
		{"exists false on missing", where("exists: false"), none, true},
		{"exists false on a value", where("exists: false"), x("a"), false},
		{"numeric bounds combine into a range",
			where("greater_than: 1, at_most: 3"), x(3), true},
		{"a range excludes its open end",
			where("greater_than: 1, at_most: 3"), x(1), false},
		{"a bound ignores numeric text", where("at_least: 1"), x("5"), false},
		{"a bound ignores booleans", where("at_least: 0"), x(true), false},
	})
}

// TestWindowsAtTheirEdges checks windows at their exact edges, counts
// against windows, and events after the evaluation time.
func TestWindowsAtTheirEdges(t *testing.T) {
	ms := time.Millisecond
	e := func(at ...time.Time) []testEvent {
		var out []testEvent
		for _, a := range at {
			out = append(out, ev("E", a))
		}
		return out
	}
	within7d := "performed: {event: E, within: 7d}"
	between := "performed: {event: E, between: [7d, 1d]}"
	reversed := "performed: {event: E, between: [1d, 7d]}"
	none1d := "performed: {event: E, exactly: 0, within: 1d}"
	notIn1d := "not_performed: {event: E, within: 1d}"
	runMembership(t, []memberCase{
		{"within includes its start", within7d, e(ago(7 * day)), true},
		{"within excludes one millisecond earlier", within7d,
			e(ago(7*day + ms)), false},
		{"within includes now", within7d, e(testNow()), true},
		{"within excludes the future", within7d, e(testNow().Add(ms)), false},
		{"no window excludes the future", "performed: {event: E}",
			e(testNow().Add(day)), false},
		{"between includes its older edge", between, e(ago(7 * day)), true},
		{"between includes its younger edge", between, e(ago(day)), true},
		{"between excludes after its younger edge", between,
			e(ago(day - ms)), false},
		{"between in reverse order", reversed, e(ago(3 * day)), true},
		{"between in reverse order excludes outside", reversed,
			e(ago(8 * day)), false},
		{"fractional days", "performed: {event: E, within: 1.5d}",
			e(ago(36 * time.Hour)), true},
		{"exactly 0 holds with no events", none1d, e(ago(2 * day)), true},
		{"exactly 0 fails with one in the window", none1d, e(ago(day)), false},
		{"at_most counts future events out", "performed: {event: E, at_most: 1}",
			e(ago(day), testNow().Add(ms)), true},
		{"at_least counts the window only",
			"performed: {event: E, at_least: 2, within: 2d}",
			e(ago(day), ago(3*day)), false},
		{"not_performed with no events", notIn1d, nil, true},
		{"not_performed ignores a future event", notIn1d,
			e(testNow().Add(time.Hour)), true},
		{"not_performed with a where that does not match",
			"not_performed: {event: E, where: [{property: x, equals: 1}]}",
			[]testEvent{ev("E", ago(time.Hour), "x", 2)}, true},
		{"not of performed equals not_performed",
			"not: {performed: {event: E, within: 1d}}",
			e(ago(time.Hour)), false},
	})
}

// TestThenNotSettlesByKeyAndTime checks sequences: keys of different JSON
// types, follow-ups in the same millisecond, within, and several
// follow-up kinds.
func TestThenNotSettlesByKeyAndTime(t *testing.T) {
	keyed := `
then_not:
  first: {event: Add, key: id}
  not_followed_by:
    - {event: Buy, key: 'items[].id'}
    - {event: Remove, key: id}
attributes: {keys: keys, n: count}`
	within := `
then_not:
  first: {event: Add, key: id}
  not_followed_by: [{event: Buy, key: id}]
  within: 1h
attributes: {keys: keys}`
	keyless := `
then_not:
  first: {event: Signup}
  not_followed_by: [{event: Activate}]
  between: [7d, 1d]
attributes: {at: last_at}`
	buy := func(at time.Time, ids ...any) testEvent {
		items := make([]any, len(ids))
		for i, id := range ids {
			items[i] = map[string]any{"id": id}
		}
		return ev("Buy", at, "items", items)
	}
	add := func(at time.Time, id any) testEvent { return ev("Add", at, "id", id) }
	ms := time.Millisecond
	tests := []struct {
		name      string
		condition string
		history   []testEvent
		want      map[string]any
	}{
		{"a numeric key is settled by its text", keyed,
			[]testEvent{add(ago(2*day), 42), buy(ago(day), "42")}, nil},
		{"a text key is settled by its number", keyed,
			[]testEvent{add(ago(2*day), "42"), buy(ago(day), 42)}, nil},
		{"a follow-up in the same millisecond settles", keyed,
			[]testEvent{add(ago(2*day), "p"), ev("Remove", ago(2*day), "id", "p")},
			nil},
		{"a follow-up one millisecond before does not settle", keyed,
			[]testEvent{ev("Remove", ago(2*day+ms), "id", "p"), add(ago(2*day), "p")},
			map[string]any{"keys": []string{"p"}, "n": int64(1)}},
		{"a follow-up after now does not settle", keyed,
			[]testEvent{add(ago(2*day), "p"), buy(testNow().Add(time.Minute), "p")},
			map[string]any{"keys": []string{"p"}, "n": int64(1)}},
		{"an add after now is not counted", keyed,
			[]testEvent{add(testNow().Add(time.Minute), "p")}, nil},
		{"a buy of other keys settles only those", keyed,
			[]testEvent{add(ago(3*day), "a"), add(ago(3*day), "b"),
				add(ago(3*day), 3), buy(ago(day), "b", "x")},
			map[string]any{"keys": []string{"3", "a"}, "n": int64(2)}},
		{"an add without a key is ignored", keyed,
			[]testEvent{ev("Add", ago(2*day)), add(ago(2*day), nil),
				add(ago(2*day), map[string]any{"a": 1})}, nil},
		{"a boolean key is text", keyed,
			[]testEvent{add(ago(2*day), true)},
			map[string]any{"keys": []string{"true"}, "n": int64(1)}},
		{"within: a buy inside it settles", within,
			[]testEvent{add(ago(2*day), "p"),
				ev("Buy", ago(2*day-time.Hour), "id", "p")}, nil},
		{"within: a buy after it does not settle", within,
			[]testEvent{add(ago(2*day), "p"),
				ev("Buy", ago(2*day-time.Hour-ms), "id", "p")},
			map[string]any{"keys": []string{"p"}}},
		{"within: an add younger than within is not yet abandoned", within,
			[]testEvent{add(ago(59*time.Minute), "p")}, nil},
		{"within: an add exactly within ago is abandoned", within,
			[]testEvent{add(ago(time.Hour), "p")},
			map[string]any{"keys": []string{"p"}}},
		{"keyless: settled by any follow-up", keyless,
			[]testEvent{ev("Signup", ago(3*day)), ev("Activate", ago(2*day))}, nil},
		{"keyless: a follow-up before does not settle", keyless,
			[]testEvent{ev("Activate", ago(4*day)), ev("Signup", ago(3*day))},
			map[string]any{"at": ago(3 * day)}},
		{"keyless: the latest first outside between hides an older one", keyless,
			[]testEvent{ev("Signup", ago(3*day)), ev("Signup", ago(time.Hour))}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := evaluateOn(t, conditionDef(t, tt.condition), tt.history)
			if !reflect.DeepEqual(got, formatted(tt.want)) {
				t.Errorf("got  %#v\nwant %#v", got, formatted(tt.want))
			}
		})
	}
}
