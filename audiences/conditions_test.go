package audiences

import (
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// person is one profile of the fixed event set conditions are tested on.
type person struct {
	id         int64
	name       string
	identified bool // has a user_id and an email
	traits     map[string]string
	events     []testEvent
}

func order(at time.Time, revenue float64, products ...map[string]any) testEvent {
	list := make([]any, len(products))
	for i, p := range products {
		list[i] = p
	}
	return testEvent{Name: "Order Completed", Time: at,
		Properties: map[string]any{"revenue": revenue, "products": list}}
}

func product(id, category string, price float64) map[string]any {
	return map[string]any{"product_id": id, "category": category, "price": price}
}

func viewed(at time.Time, id, category string) testEvent {
	return testEvent{Name: "Product Viewed", Time: at, Properties: map[string]any{
		"product_id": id, "category": category,
		"page": map[string]any{"path": "/shoes/" + id, "referrer": "Newsletter"},
	}}
}

// people is the fixed event set: five people at testNow.
func people() []person {
	return []person{
		{id: 1, name: "ana", identified: true,
			traits: map[string]string{"plan": `"pro"`, "address\x1fcountry": `"FR"`,
				"age": `34`},
			events: []testEvent{
				order(ago(90*day), 120, product("s1", "Shoes", 120)),
				order(ago(20*day), 80, product("k1", "Socks", 10), product("s2", "shoes", 70)),
				order(ago(2*day), 300, product("a1", "Apparel", 300)),
				workout(ago(10*day), 10.0, "km"),
				workout(ago(5*day), 5.0, "mi"),
			}},
		{id: 2, name: "ben", identified: true,
			traits: map[string]string{"plan": `"free"`, "age": `19`},
			events: []testEvent{
				viewed(ago(26*time.Hour), "s3", "Shoes"),
				viewed(ago(25*time.Hour), "s3", "Shoes"),
				viewed(ago(3*day), "k2", "Socks"),
			}},
		{id: 3, name: "cai", identified: true,
			events: []testEvent{
				order(ago(200*day), 50, product("s4", "Shoes", 50)),
				workout(ago(100*day), 42.0, nil),
			}},
		{id: 4, name: "dee", identified: false,
			events: []testEvent{viewed(ago(day), "s3", "Shoes")}},
		{id: 5, name: "eve", identified: true,
			traits: map[string]string{"plan": `"pro"`}},
	}
}

// mustPeople stores people in db.
func mustPeople(t testing.TB, db *sqldb.DB) {
	t.Helper()
	for _, p := range people() {
		mustExec(t, db, `INSERT INTO profiles (id, created_ms, updated_ms) VALUES (?, 0, 0)`,
			p.id)
		if p.identified {
			mustExec(t, db, `INSERT INTO identities (type, value, profile_id, first_seen_ms,
				first_message_id, source) VALUES ('user_id', ?, ?, 0, 'm', 'test'),
				('email', ?, ?, 0, 'm', 'test')`, p.name, p.id, p.name+"@example.com", p.id)
		} else {
			mustExec(t, db, `INSERT INTO identities (type, value, profile_id, first_seen_ms,
				first_message_id, source) VALUES ('anonymous_id', ?, ?, 0, 'm', 'test')`,
				"anon-"+p.name, p.id)
		}
		for key, value := range p.traits {
			mustExec(t, db, `INSERT INTO traits (profile_id, key, value, ts_ms, message_id)
				VALUES (?, ?, ?, 0, 'm')`, p.id, key, value)
		}
		mustStoreEvents(t, db, p.id, p.events)
	}
}

// names lists the members' names, sorted.
func names(members map[int64]map[string]any) []string {
	byID := map[int64]string{}
	for _, p := range people() {
		byID[p.id] = p.name
	}
	out := []string{}
	for id := range members {
		out = append(out, byID[id])
	}
	sort.Strings(out)
	return out
}

// mustDefinition reads an audience definition from YAML.
func mustDefinition(t testing.TB, text string) Definition {
	t.Helper()
	var def Definition
	if err := yaml.Unmarshal([]byte(text), &def); err != nil {
		t.Fatalf("parse %s: %v", text, err)
	}
	if def.Name == "" {
		def.Name = "test"
	}
	return def
}

func TestEachConditionKind(t *testing.T) {
	onEachEngine(t, testEachConditionKind)
}

func testEachConditionKind(t *testing.T, db *sqldb.DB) {
	mustPeople(t, db)
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"performed at least once, all time",
			"condition: {performed: {event: Order Completed}}", []string{"ana", "cai"}},
		{"performed at least twice within 30 days",
			"condition: {performed: {event: Order Completed, within: 30d, at_least: 2}}",
			[]string{"ana"}},
		{"performed exactly once within 100 days",
			"condition: {performed: {event: Order Completed, within: 100d, exactly: 1}}",
			[]string{}},
		{"performed at most once counts people who never did it",
			"condition: {performed: {event: Order Completed, at_most: 1}}",
			[]string{"ben", "cai", "eve"}},
		{"performed between 100 and 30 days ago, in either order",
			"condition: {performed: {event: Order Completed, between: [30d, 100d]}}",
			[]string{"ana"}},
		{"not performed within 30 days",
			"condition: {not_performed: {event: Order Completed, within: 30d}}",
			[]string{"ben", "cai", "eve"}},
		{"a filter on an array element's field",
			`condition: {performed: {event: Order Completed,
			  where: [{property: "products[].category", equals: Shoes}]}}`,
			[]string{"ana", "cai"}},
		{"filters on one array hold on the same element",
			`condition: {performed: {event: Order Completed, where: [
			  {property: "products[].category", equals: Socks},
			  {property: "products[].price", at_least: 50}]}}`,
			[]string{}},
		{"ignore_case folds the category",
			`condition: {performed: {event: Order Completed, within: 30d, where: [
			  {property: "products[].category", equals: SHOES, ignore_case: true}]}}`,
			[]string{"ana"}},
		{"a nested property starts with",
			`condition: {performed: {event: Product Viewed,
			  where: [{property: page.path, starts_with: /shoes/}]}}`,
			[]string{"ben"}},
		{"contains",
			`condition: {performed: {event: Product Viewed,
			  where: [{property: page.referrer, contains: letter}]}}`,
			[]string{"ben"}},
		{"one of",
			`condition: {performed: {event: Product Viewed,
			  where: [{property: product_id, one_of: [k2, zz]}]}}`,
			[]string{"ben"}},
		{"not equals holds only where the property exists",
			`condition: {performed: {event: Order Completed,
			  where: [{property: revenue, not_equals: 50}]}}`,
			[]string{"ana"}},
		{"a numeric comparison on a top-level number",
			`condition: {performed: {event: Order Completed,
			  where: [{property: revenue, greater_than: 100, less_than: 200}]}}`,
			[]string{"ana"}},
		{"exists false on a missing property",
			`condition: {performed: {event: Workout Completed,
			  where: [{property: distance_unit, exists: false}]}}`,
			[]string{"cai"}},
		{"then not: viewed shoes and did not order them",
			`condition: {then_not: {first: {event: Product Viewed, key: product_id},
			  not_followed_by: [{event: Order Completed, key: "products[].product_id"}],
			  between: [7d, 1h]}}`,
			[]string{"ben"}},
		{"then not within: an order more than a day later does not settle",
			`condition: {then_not: {first: {event: Order Completed},
			  not_followed_by: [{event: Workout Completed}], within: 1d}}`,
			[]string{"ana", "cai"}},
		{"aggregate sum within a window",
			`condition: {aggregate: {event: Order Completed, function: sum,
			  property: revenue, within: 30d, at_least: 380}}`,
			[]string{"ana"}},
		{"aggregate count with at_most includes people without events",
			`condition: {aggregate: {event: Order Completed, function: count,
			  at_most: 0}}`,
			[]string{"ben", "eve"}},
		{"aggregate average has no value without events",
			`condition: {aggregate: {event: Order Completed, function: avg,
			  property: revenue, at_most: 1000}}`,
			[]string{"ana", "cai"}},
		{"aggregate min and max",
			`condition: {and: [
			  {aggregate: {event: Order Completed, function: min, property: revenue,
			    less_than: 100}},
			  {aggregate: {event: Order Completed, function: max, property: revenue,
			    greater_than: 100}}]}`,
			[]string{"ana"}},
		{"aggregate distinct count over array elements",
			`condition: {aggregate: {event: Order Completed, function: distinct_count,
			  property: "products[].category", at_least: 3}}`,
			[]string{"ana"}},
		{"aggregate with unit conversion since the latest anchor",
			`condition: {aggregate: {event: Workout Completed, function: sum,
			  property: distance, units: {property: distance_unit, factors: {KM: 0.5}},
			  since_latest: {event: Order Completed,
			    where: [{property: "products[].category", equals: shoes}]},
			  at_least: 10, at_most: 10}}`,
			[]string{"ana"}},
		{"a trait equals",
			"condition: {trait: {key: plan, equals: pro}}", []string{"ana", "eve"}},
		{"a nested trait one of",
			"condition: {trait: {key: address.country, one_of: [FR, DE]}}", []string{"ana"}},
		{"a numeric trait",
			"condition: {trait: {key: age, at_least: 18, less_than: 30}}", []string{"ben"}},
		{"a trait that is absent",
			"condition: {trait: {key: plan, exists: false}}", []string{"cai"}},
		{"or",
			`condition: {or: [{trait: {key: plan, equals: free}},
			  {performed: {event: Workout Completed, within: 30d}}]}`,
			[]string{"ana", "ben"}},
		{"not",
			"condition: {not: {trait: {key: plan, equals: pro}}}", []string{"ben", "cai"}},
		{"and with not",
			`condition: {and: [{trait: {key: plan, equals: pro}},
			  {not: {performed: {event: Order Completed}}}]}`,
			[]string{"eve"}},
		{"anonymous profiles are left out by default",
			"condition: {performed: {event: Product Viewed}}", []string{"ben"}},
		{"include_anonymous lets them in",
			"include_anonymous: true\ncondition: {performed: {event: Product Viewed}}",
			[]string{"ben", "dee"}},
		{"events after the evaluation time do not count",
			"condition: {performed: {event: Future Thing}}", []string{}},
	}
	mustStoreEvents(t, db, 5, []testEvent{{Name: "Future Thing", Time: testNow().Add(time.Hour)}})

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			def := mustDefinition(t, tt.yaml)
			if got := names(mustMembers(t, db, def)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("members %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAttributesComeFromTheLeavesThatHold(t *testing.T) {
	onEachEngine(t, testAttributesComeFromTheLeavesThatHold)
}

func testAttributesComeFromTheLeavesThatHold(t *testing.T, db *sqldb.DB) {
	mustPeople(t, db)
	def := mustDefinition(t, `
condition:
  or:
    - trait: {key: plan, equals: pro}
      attributes: {plan: value}
    - then_not:
        first: {event: Product Viewed, key: product_id}
        not_followed_by: [{event: Order Completed, key: "products[].product_id"}]
      attributes: {viewed: keys, viewed_at: last_at, viewed_count: count}
    - aggregate:
        event: Workout Completed
        function: sum
        property: distance
        since_latest:
          event: Order Completed
          where: [{property: "products[].category", equals: Socks}]
        at_least: 0
      attributes: {product: "anchor.products[].product_id", bought_at: anchor_at,
        distance: value}
    - performed: {event: Order Completed, within: 30d}
      attributes: {orders: count, first_order: first_at}
`)
	if got := def.Attributes(); !reflect.DeepEqual(got, []string{"plan", "viewed",
		"viewed_at", "viewed_count", "product", "bought_at", "distance", "orders",
		"first_order"}) {
		t.Errorf("Attributes() = %v, want them in the order the leaves list them", got)
	}

	members := mustMembers(t, db, def)
	ana := map[string]any{
		"plan": "pro", "viewed": nil, "viewed_at": nil, "viewed_count": nil,
		"product": "k1", "bought_at": FormatTime(ago(20 * day)), "distance": 15.0,
		"orders": int64(2), "first_order": FormatTime(ago(20 * day)),
	}
	ben := map[string]any{
		"plan": nil, "viewed": []string{"k2", "s3"}, "viewed_at": FormatTime(ago(25 * time.Hour)),
		"viewed_count": int64(2), "product": nil, "bought_at": nil, "distance": nil,
		"orders": nil, "first_order": nil,
	}
	for name, want := range map[int64]map[string]any{1: ana, 2: ben} {
		if got := members[name]; !reflect.DeepEqual(got, want) {
			t.Errorf("profile %d attributes\n got %v\nwant %v", name, got, want)
		}
	}
}

func TestInAudienceReadsTheOtherAudiencesLatestResult(t *testing.T) {
	onEachEngine(t, testInAudienceReadsTheOtherAudiencesLatestResult)
}

func testInAudienceReadsTheOtherAudiencesLatestResult(t *testing.T, db *sqldb.DB) {
	mustPeople(t, db)
	buyers := mustDefinition(t, "name: buyers\ncondition: {performed: {event: Order Completed}}")
	pros := mustDefinition(t, `name: pro_non_buyers
condition: {and: [{trait: {key: plan, equals: pro}}, {not: {in_audience: buyers}}]}`)
	defs := []Definition{buyers, pros}
	if err := Validate(defs); err != nil {
		t.Fatal(err)
	}
	r := NewRunner(db, defs, testNow, nil)

	run := func(name string) []string {
		t.Helper()
		if _, err := r.Run(t.Context(), name); err != nil {
			t.Fatal(err)
		}
		def, _ := r.Definition(name)
		members, err := r.members(t.Context(), def, testNow())
		if err != nil {
			t.Fatal(err)
		}
		found := map[int64]map[string]any{}
		for _, m := range members {
			found[m.ProfileID] = m.Attributes
		}
		return names(found)
	}
	if got := run("pro_non_buyers"); !reflect.DeepEqual(got, []string{"ana", "eve"}) {
		t.Errorf("before buyers ever ran: %v, want ana and eve", got)
	}
	run("buyers")
	if got := run("pro_non_buyers"); !reflect.DeepEqual(got, []string{"eve"}) {
		t.Errorf("after buyers ran: %v, want eve", got)
	}
}

func TestValidateNamesTheAudienceAndKey(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // parts of the error; nil: valid
	}{
		{"a valid audience", "name: ok\ncondition: {performed: {event: A}}", nil},
		{"no condition", "name: empty", []string{"audiences.empty.condition is required"}},
		{"two kinds in one node", "name: two\ncondition: {performed: {event: A}, " +
			"trait: {key: k, exists: true}}",
			[]string{"audiences.two.condition needs exactly one of", "found 2"}},
		{"a missing event", "name: x\ncondition: {and: [{performed: {within: 1d}}]}",
			[]string{"audiences.x.condition.and[0].performed.event is required"}},
		{"a filter with two tests", "name: x\ncondition: {performed: {event: A, where: " +
			"[{property: p, equals: 1, contains: a}]}}",
			[]string{"audiences.x.condition.performed.where[0] needs exactly one test"}},
		{"a path through two arrays", "name: x\ncondition: {performed: {event: A, where: " +
			"[{property: \"a[].b[].c\", exists: true}]}}",
			[]string{"where[0].property", "more than one array"}},
		{"a path with a quote", "name: x\ncondition: {performed: {event: A, where: " +
			"[{property: 'a\"b', exists: true}]}}",
			[]string{"where[0].property"}},
		{"two counts", "name: x\ncondition: {performed: {event: A, at_least: 1, at_most: 2}}",
			[]string{"audiences.x.condition.performed", "one of at_least"}},
		{"within and between", "name: x\ncondition: {performed: {event: A, within: 1d, " +
			"between: [2d, 1d]}}", []string{"within or between"}},
		{"an unknown function", "name: x\ncondition: {aggregate: {event: A, function: median, " +
			"property: p, at_least: 1}}", []string{"aggregate.function \"median\""}},
		{"an aggregate without a bound", "name: x\ncondition: {aggregate: {event: A, " +
			"function: sum, property: p}}", []string{"aggregate needs a bound"}},
		{"then_not keys on one side only", "name: x\ncondition: {then_not: {first: " +
			"{event: A, key: k}, not_followed_by: [{event: B}]}}",
			[]string{"then_not.not_followed_by[0].key"}},
		{"an unknown attribute source", "name: x\ncondition: {performed: {event: A}, " +
			"attributes: {when: latest}}",
			[]string{"audiences.x.condition.attributes.when", "\"latest\""}},
		{"attributes under not", "name: x\ncondition: {not: {performed: {event: A}, " +
			"attributes: {n: count}}}", []string{"must not hold"}},
		{"anchor attributes without since_latest", "name: x\ncondition: {aggregate: " +
			"{event: A, function: sum, property: p, at_least: 1}, attributes: " +
			"{at: anchor_at}}", []string{"needs aggregate.since_latest"}},
		{"a trait key with an array", "name: x\ncondition: {trait: {key: \"a[]\", " +
			"exists: true}}", []string{"condition.trait.key"}},
		{"an unknown audience", "name: x\ncondition: {in_audience: nobody}",
			[]string{"audiences.x.condition.in_audience \"nobody\" is not a defined"}},
		{"an audience reading itself", "name: x\ncondition: {in_audience: x}",
			[]string{"cycle: x -> x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate([]Definition{mustDefinition(t, tt.yaml)})
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted it, want an error naming %q", tt.want)
			}
			for _, part := range tt.want {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("Validate = %q\nwant it to contain %q", err, part)
				}
			}
		})
	}
}

func TestACycleThroughSeveralAudiencesIsNamed(t *testing.T) {
	defs := []Definition{
		mustDefinition(t, "name: a\ncondition: {in_audience: b}"),
		mustDefinition(t, "name: b\ncondition: {not: {in_audience: c}}"),
		mustDefinition(t, "name: c\ncondition: {or: [{in_audience: a}, "+
			"{performed: {event: X}}]}"),
	}
	err := Validate(defs)
	if err == nil || !strings.Contains(err.Error(), "cycle: a -> b -> c -> a") {
		t.Errorf("Validate = %v, want the cycle a -> b -> c -> a named", err)
	}
}

func TestBuiltinsParseAndValidate(t *testing.T) {
	defs := Builtins()
	if err := Validate(defs); err != nil {
		t.Fatalf("Validate(Builtins()) = %v", err)
	}
	want := map[string][]string{
		"cart_abandonment": {"abandoned_products", "added_at"},
		"shoe_reorder":     {"shoe", "purchased_at", "miles_since_purchase"},
	}
	for _, d := range defs {
		if !reflect.DeepEqual(d.Attributes(), want[d.Name]) {
			t.Errorf("%s attributes %v, want %v", d.Name, d.Attributes(), want[d.Name])
		}
		if !d.NeedsEmail() {
			t.Errorf("%s does not require an email, want it to", d.Name)
		}
	}
}

func TestWhatAttributesReadNeverChangesMembership(t *testing.T) {
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		mustStorePerson(t, db, 1, []testEvent{
			order(ago(30*day), 10, product("s1", "Shoes", 10)),
			{Name: "Order Completed", Time: ago(20 * day),
				Properties: map[string]any{"revenue": 5}},
			workout(ago(10*day), 7.0, nil),
		})
		plain := mustDefinition(t, `condition:
  aggregate: {event: Workout Completed, function: sum, property: distance,
    since_latest: {event: Order Completed}, at_least: 1}
  attributes: {at: anchor_at}`)
		withProduct := mustDefinition(t, `condition:
  aggregate: {event: Workout Completed, function: sum, property: distance,
    since_latest: {event: Order Completed}, at_least: 1}
  attributes: {at: anchor_at, product: "anchor.products[].product_id", total: value}`)

		want := map[string]any{"at": FormatTime(ago(20 * day))}
		if got := mustMembers(t, db, plain)[1]; !reflect.DeepEqual(got, want) {
			t.Errorf("without the product: %v, want %v", got, want)
		}
		want = map[string]any{"at": FormatTime(ago(20 * day)), "product": nil, "total": 7.0}
		if got := mustMembers(t, db, withProduct)[1]; !reflect.DeepEqual(got, want) {
			t.Errorf("with the product: %v, want %v (the latest order has no products)",
				got, want)
		}
	})
}

func TestRunOrderPutsTheAudiencesReadFirst(t *testing.T) {
	defs := []Definition{
		mustDefinition(t, "name: a\ncondition: {in_audience: c}"),
		mustDefinition(t, "name: b\ncondition: {performed: {event: X}}"),
		mustDefinition(t, "name: c\ncondition: {and: [{in_audience: d}, {in_audience: b}]}"),
		mustDefinition(t, "name: d\ncondition: {performed: {event: Y}}"),
	}
	if err := Validate(defs); err != nil {
		t.Fatal(err)
	}
	r := NewRunner(sqltest.MustOpen(t), defs, testNow, nil)
	if got, want := r.RunOrder(), []string{"d", "b", "c", "a"}; !reflect.DeepEqual(got, want) {
		t.Errorf("RunOrder() = %v, want %v", got, want)
	}
}
