package audiences

// Edge cases of the audience definition language: each test compiles a
// definition written as a user would (YAML), runs it on a fresh database
// at testNow, and checks who is a member and what they carry, or checks
// that Validate refuses it with a message naming the audience and key.
// Tests that go through evaluateOn also run on PostgreSQL, and fail if
// the engines disagree, when sqltest.PostgresEnv names a server.

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Edge cases of aggregates, units and anchors.

// TestAggregateFunctionsAndEmptyWindows runs every function on a known
// set of values, and on windows with no values.
func TestAggregateFunctionsAndEmptyWindows(t *testing.T) {
	history := []testEvent{
		ev("W", ago(3*day), "d", 10), ev("W", ago(2*day), "d", -4.5),
		ev("W", ago(day), "d", 10), ev("W", ago(day), "d", "99"),
		ev("W", ago(day)), ev("W", ago(10*day), "d", 1000),
		ev("W", testNow().Add(time.Hour), "d", 1000),
	}
	tests := []struct {
		function string
		want     any // the value attribute over 7d
	}{
		{"count", int64(5)},
		{"sum", 15.5},
		{"avg", 5.17},
		{"min", -4.5},
		{"max", int64(10)},
		{"distinct_count", int64(3)},
	}
	for _, tt := range tests {
		t.Run(tt.function, func(t *testing.T) {
			property := "property: d,"
			if tt.function == "count" {
				property = ""
			}
			def := conditionDef(t, fmt.Sprintf(`
aggregate: {event: W, within: 7d, function: %s, %s greater_than: -1000}
attributes: {v: value}`, tt.function, property))
			got := evaluateOn(t, def, history)
			if got == nil || !sameNumber(got["v"], tt.want) {
				t.Errorf("got %#v, want v = %#v", got, tt.want)
			}
		})
	}

	// An empty window is 0 for count, sum and distinct_count, and no value
	// (never a member) for avg, min and max.
	agg := func(rest string) string {
		return "aggregate: {event: W, " + rest + "}"
	}
	d := func(values ...any) []testEvent {
		var out []testEvent
		for _, v := range values {
			out = append(out, ev("W", ago(day), "d", v))
		}
		return out
	}
	runMembership(t, []memberCase{
		{"count of nothing is at most 0",
			agg("function: count, at_most: 0"), nil, true},
		{"sum of nothing is at most 0",
			agg("function: sum, property: d, at_most: 0"), nil, true},
		{"sum of nothing is not above 0",
			agg("function: sum, property: d, greater_than: 0"), nil, false},
		{"distinct_count of nothing is 0",
			agg("function: distinct_count, property: d, less_than: 1"), nil, true},
		{"avg of nothing is no value",
			agg("function: avg, property: d, less_than: 100"), nil, false},
		{"min of nothing is no value",
			agg("function: min, property: d, less_than: 100"), nil, false},
		{"max of nothing is no value",
			agg("function: max, property: d, at_most: 100"), nil, false},
		{"avg of only text values is no value",
			agg("function: avg, property: d, less_than: 100"), d("5"), false},
		{"sum of only text values is 0",
			agg("function: sum, property: d, at_most: 0"), d("5"), true},
		{"sum of negative values",
			agg("function: sum, property: d, less_than: -10"), d(-6, -5), true},
		{"huge values do not error",
			agg("function: sum, property: d, at_least: 1e300"),
			d(1e308, 1e308), true},
		{"huge integers do not overflow",
			agg("function: sum, property: d, greater_than: 1e19"),
			d(int64(9e18), int64(9e18)), true},
		{"sum bound at exactly the sum",
			agg("function: sum, property: d, at_least: 0.3"), d(0.1, 0.2), true},
	})
}

// TestAverageOfHugeValuesDoesNotOverflow: the average of two values of
// 1e308 is 1e308, on both engines, not the overflow of their sum.
func TestAverageOfHugeValuesDoesNotOverflow(t *testing.T) {
	def := conditionDef(t, "aggregate: "+
		"{event: W, function: avg, property: d, at_most: 1e308}\n"+
		"attributes: {v: value}")
	got := evaluateOn(t, def, []testEvent{
		ev("W", ago(day), "d", 1e308), ev("W", ago(day), "d", 1e308)})
	if got == nil || got["v"] != 1e308 {
		t.Errorf("got %v, want a member with v = 1e308", got)
	}
}

// TestUnitsMatchIgnoringCaseAndSpaces checks unit conversion: units match
// their factor keys whatever the case and surrounding spaces; unknown
// units and units that are not text keep the value.
func TestUnitsMatchIgnoringCaseAndSpaces(t *testing.T) {
	def := conditionDef(t, `
aggregate:
  event: W
  function: sum
  property: d
  units: {property: u, factors: {KM: 0.5, Mi: 1, Yards: 0.001}}
  greater_than: -1
attributes: {v: value}`)
	tests := []struct {
		name string
		unit any
		want float64
	}{
		{"upper case key, lower case unit", "km", 50},
		{"mixed case unit", "kM", 50},
		{"unit with spaces", "  KM  ", 50},
		{"unit with a tab keeps its value", "\tkm", 100},
		{"unknown unit keeps the value", "furlongs", 100},
		{"a numeric unit keeps the value", 5, 100},
		{"missing unit keeps the value", nil, 100},
		{"mixed case key", "YARDS", 0.1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := ev("W", ago(day), "d", 100)
			if tt.unit != nil {
				e.Properties["u"] = tt.unit
			}
			got := evaluateOn(t, def, []testEvent{e})
			if got == nil || got["v"] != tt.want {
				t.Errorf("got %#v, want v = %v", got, tt.want)
			}
		})
	}
}

// TestAUnitWithNonASCIICapitalsMatchesItsFactor: factor keys and event
// units fold case alike, beyond ASCII, so a unit written exactly like its
// factor key matches it.
func TestAUnitWithNonASCIICapitalsMatchesItsFactor(t *testing.T) {
	def := conditionDef(t, `
aggregate:
  event: W
  function: sum
  property: d
  units: {property: u, factors: {KILOMÈTRES: 0.5}}
  at_least: 0
attributes: {v: value}`)
	got := evaluateOn(t, def,
		[]testEvent{ev("W", ago(day), "d", 100, "u", "KILOMÈTRES")})
	if got == nil || got["v"] != 50.0 {
		t.Errorf("got %v, want v = 50 "+
			"(the unit is written exactly as the factor key)", got)
	}
}

// TestUnitsOnDistinctCountAreRefused: units cannot change which values
// are distinct, so distinct_count refuses them, as count does.
func TestUnitsOnDistinctCountAreRefused(t *testing.T) {
	def := conditionDef(t, `
aggregate:
  event: W
  function: distinct_count
  property: d
  units: {property: u, factors: {km: 0.5}}
  at_least: 1`)
	msg, _ := validateMessage(def)
	if !strings.Contains(msg, "audiences.adv.condition.aggregate") {
		t.Errorf("Validate = %q; want units on distinct_count refused", msg)
	}
}

// TestSinceLatestAnchorsOnTheLatestMatchingEvent checks the anchor: no
// anchor, several anchors, several matching elements, anchors after now,
// and an anchor of the aggregated event.
func TestSinceLatestAnchorsOnTheLatestMatchingEvent(t *testing.T) {
	def := conditionDef(t, `
aggregate:
  event: W
  function: sum
  property: d
  since_latest:
    event: Order
    where: [{property: 'products[].category', equals: Shoes}]
  at_least: 10
attributes:
  shoe: 'anchor.products[].product_id'
  size: 'anchor.products[].size'
  order: anchor.order_id
  at: anchor_at
  v: value`)
	p := func(id, cat string, size any) map[string]any {
		m := map[string]any{"product_id": id, "category": cat}
		if size != nil {
			m["size"] = size
		}
		return m
	}
	order := func(at time.Time, id string, products ...any) testEvent {
		return ev("Order", at, "order_id", id, "products", products)
	}
	tests := []struct {
		name    string
		history []testEvent
		want    map[string]any
	}{
		{"no anchor: not a member whatever the sum",
			[]testEvent{ev("W", ago(day), "d", 100)}, nil},
		{"the first matching element of the latest anchor",
			[]testEvent{
				order(ago(5*day), "o1", p("s0", "Shoes", 40)),
				order(ago(3*day), "o2", p("sock", "Socks", 1),
					p("s1", "Shoes", 42), p("s2", "Shoes", 43)),
				ev("W", ago(2*day), "d", 10),
			},
			map[string]any{"shoe": "s1", "size": "42", "order": "o2",
				"at": ago(3 * day), "v": 10.0}},
		{"a matching element without the captured field gives null",
			[]testEvent{
				order(ago(3*day), "o2", p("s1", "Shoes", nil), p("s2", "Shoes", 43)),
				ev("W", ago(2*day), "d", 10),
			},
			map[string]any{"shoe": "s1", "size": nil, "order": "o2",
				"at": ago(3 * day), "v": 10.0}},
		{"an event in the anchor's millisecond is not after it",
			[]testEvent{
				order(ago(3*day), "o2", p("s1", "Shoes", 42)),
				ev("W", ago(3*day), "d", 10),
			}, nil},
		{"an anchor after now is ignored",
			[]testEvent{
				order(ago(3*day), "o1", p("s1", "Shoes", 42)),
				ev("W", ago(2*day), "d", 10),
				order(testNow().Add(time.Minute), "o9", p("s9", "Shoes", 42)),
			},
			map[string]any{"shoe": "s1", "size": "42", "order": "o1",
				"at": ago(3 * day), "v": 10.0}},
		{"an order without shoes is not an anchor",
			[]testEvent{
				order(ago(3*day), "o1", p("s1", "Shoes", 42)),
				order(ago(2*day), "o2", p("x", "Socks", 42)),
				ev("W", ago(day), "d", 10),
			},
			map[string]any{"shoe": "s1", "size": "42", "order": "o1",
				"at": ago(3 * day), "v": 10.0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := evaluateOn(t, def, tt.history)
			if !reflect.DeepEqual(got, formatted(tt.want)) {
				t.Errorf("got  %#v\nwant %#v", got, formatted(tt.want))
			}
		})
	}

	t.Run("anchor and aggregate on one event name", func(t *testing.T) {
		def := conditionDef(t, `
aggregate:
  event: Order
  function: count
  since_latest: {event: Order, where: [{property: big, equals: true}]}
  at_least: 2
attributes: {n: value}`)
		got := evaluateOn(t, def, []testEvent{
			ev("Order", ago(5*day), "big", true), ev("Order", ago(4*day)),
			ev("Order", ago(3*day)), ev("Order", ago(2*day), "big", true),
			ev("Order", ago(day)), ev("Order", ago(time.Hour)),
		})
		if want := map[string]any{"n": int64(2)}; !reflect.DeepEqual(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
}

// TestAnAnchorAttributeNeverChangesMembership: naming an anchor attribute
// through an array (anchor.products[].product_id) does not make an anchor
// event without that array, or with an empty one, stop being the anchor.
func TestAnAnchorAttributeNeverChangesMembership(t *testing.T) {
	base := `
aggregate:
  event: W
  function: sum
  property: d
  since_latest: {event: Order}
  at_least: 300`
	plain := conditionDef(t, base+"\nattributes: {at: anchor_at}")
	withShoe := conditionDef(t, base+
		"\nattributes: {at: anchor_at, shoe: 'anchor.products[].product_id'}")
	for _, latest := range []testEvent{
		ev("Order", ago(5*day), "products", []any{}),
		ev("Order", ago(5*day)),
	} {
		history := []testEvent{
			ev("Order", ago(30*day), "products",
				[]any{map[string]any{"product_id": "s1"}}),
			ev("W", ago(20*day), "d", 400),
			latest,
		}
		a, b := evaluateOn(t, plain, history), evaluateOn(t, withShoe, history)
		if a != nil {
			t.Fatalf("without the attribute: %v, want no member "+
				"(nothing run since the latest order)", a)
		}
		if b != nil {
			t.Errorf("latest order %v: with the shoe attribute the person is "+
				"a member %v, anchored on the older order; want the same answer "+
				"as without it (not a member)", latest.Properties, b)
		}
	}
}

// TestPathsReadTogetherThroughDifferentArrays: an aggregated property and
// its units property through different arrays cannot be read together
// and are refused; anchor attributes through different arrays each read
// their own array.
func TestPathsReadTogetherThroughDifferentArrays(t *testing.T) {
	def := conditionDef(t, `
aggregate:
  event: W
  function: sum
  property: 'laps[].distance'
  units: {property: 'settings[].unit', factors: {km: 0.62}}
  at_least: 1`)
	msg, p := validateMessage(def)
	if p != nil {
		t.Fatalf("Validate panicked: %v", p)
	}
	if !strings.Contains(msg, "audiences.adv.condition.aggregate") ||
		!strings.Contains(msg, "different arrays") {
		t.Errorf("Validate = %q, want a problem at "+
			"audiences.adv.condition.aggregate about different arrays", msg)
	}

	def = conditionDef(t, `
aggregate:
  event: W
  function: sum
  property: d
  since_latest:
    event: Order
    where: [{property: 'products[].category', equals: Shoes}]
  at_least: 1
attributes:
  shoe: 'anchor.products[].product_id'
  coupon: 'anchor.coupons[].code'`)
	got := evaluateOn(t, def, []testEvent{
		ev("Order", ago(2*day), "products", []any{
			map[string]any{"product_id": "sock", "category": "Socks"},
			map[string]any{"product_id": "s1", "category": "Shoes"}},
			"coupons", []any{
				map[string]any{"code": "C1"}, map[string]any{"code": "C2"}}),
		ev("W", ago(day), "d", 5),
	})
	want := map[string]any{"shoe": "s1", "coupon": "C1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
