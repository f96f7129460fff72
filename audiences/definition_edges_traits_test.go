package audiences

// Edge cases of the audience definition language: each test compiles a
// definition written as a user would (YAML), runs it on a fresh database
// at testNow, and checks who is a member and what they carry, or checks
// that Validate refuses it with a message naming the audience and key.
// Tests that go through evaluateOn also run on PostgreSQL, and fail if
// the engines disagree, when sqltest.PostgresEnv names a server.

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// Edge cases of trait and audience conditions, combinations and
// validation; definition_edges_test.go holds the event conditions.

// TestTraitConditionsOnNestedAndTypedValues reads nested, numeric,
// boolean, null and missing traits.
func TestTraitConditionsOnNestedAndTypedValues(t *testing.T) {
	db := sqltest.MustOpen(t)
	mustStorePerson(t, db, 1, nil)
	mustStorePerson(t, db, 2, nil)
	set := func(profile int64, key, value string) {
		mustExec(t, db, `INSERT INTO traits (profile_id, key, value, ts_ms, message_id)
			VALUES (?, ?, ?, 0, 'm')`, profile, key, value)
	}
	set(1, "address\x1fcity", `"Paris"`)
	set(1, "address\x1fgeo\x1flat", `48.85`)
	set(1, "age", `42`)
	set(1, "vip", `true`)
	set(1, "plan", `"Pro"`)
	set(1, "nickname", `null`)
	set(1, "tags", `["a","b"]`)
	set(2, "age", `"42"`)
	set(2, "vip", `"true"`)
	set(2, "city", `"Paris"`)

	tests := []struct {
		condition string
		want      []int64
	}{
		{"trait: {key: address.city, equals: Paris}", []int64{1}},
		{"trait: {key: address.geo.lat, greater_than: 48}", []int64{1}},
		{"trait: {key: city, equals: Paris}", []int64{2}},
		{"trait: {key: age, equals: 42}", []int64{1}},
		{"trait: {key: age, equals: '42'}", []int64{1, 2}},
		{"trait: {key: age, at_least: 18}", []int64{1}},
		{"trait: {key: vip, equals: true}", []int64{1, 2}},
		{"trait: {key: vip, exists: false}", nil},
		{"trait: {key: plan, equals: pro, ignore_case: true}", []int64{1}},
		{"trait: {key: plan, exists: false}", []int64{2}},
		{"trait: {key: nickname, exists: false}", []int64{1, 2}},
		{"trait: {key: nickname, exists: true}", nil},
		{"trait: {key: address.country, exists: false}", []int64{1, 2}},
		{"not: {trait: {key: plan, equals: Pro}}", []int64{2}},
	}
	for _, tt := range tests {
		t.Run(tt.condition, func(t *testing.T) {
			got := memberIDs(mustMembers(t, db, conditionDef(t, tt.condition)))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("members %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("value attribute keeps the JSON type", func(t *testing.T) {
		got := mustMembers(t, db, conditionDef(t,
			"trait: {key: address.geo.lat, exists: true}\nattributes: {lat: value}"))
		if v := fmt.Sprint(got[1]["lat"]); v != "48.85" {
			t.Errorf("lat = %#v", got[1]["lat"])
		}
	})
}

// ingestMessages stores Segment messages through the resolver, as knit
// does.
func ingestMessages(t testing.TB, store *resolver.Store,
	messages ...map[string]any) {
	t.Helper()
	for _, fields := range messages {
		raw, err := json.Marshal(fields)
		if err != nil {
			t.Fatal(err)
		}
		m, err := resolver.ParseMessage(raw,
			resolver.Envelope{Source: "test", ReceivedAt: testNow()})
		if err != nil {
			t.Fatal(err)
		}
		_, err = store.Ingest(context.Background(), []*resolver.Message{m})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// identifyMessage is an identify call of user u1 with traits.
func identifyMessage(id string, at time.Time,
	traits map[string]any) map[string]any {
	return map[string]any{"type": "identify", "messageId": id, "userId": "u1",
		"timestamp": at.Format(time.RFC3339Nano), "traits": traits}
}

// TestTraitConditionsSeeWhatTheProfileShows: trait conditions read the
// traits as the profile shows them, so a removed object no longer matches
// its old fields, and a text trait replaced by an object no longer
// matches its old text.
func TestTraitConditionsSeeWhatTheProfileShows(t *testing.T) {
	db := sqltest.MustOpen(t)
	store := resolver.NewStore(db, resolver.DefaultRules(), testNow, nil)
	ingestMessages(t, store,
		identifyMessage("m1", ago(3*day), map[string]any{"email": "a@example.com",
			"address": map[string]any{"city": "Paris"}, "plan": "basic"}),
		// The address is removed; plan becomes an object.
		identifyMessage("m2", ago(2*day), map[string]any{"address": nil,
			"plan": map[string]any{"tier": "gold"}}),
	)
	var profile int64
	err := db.Get(&profile, "SELECT id FROM profiles WHERE merged_into IS NULL")
	if err != nil {
		t.Fatal(err)
	}
	traits, err := resolver.NewProfiles(db).Traits(context.Background(), profile)
	if err != nil {
		t.Fatal(err)
	}
	shown := map[string]string{}
	for _, tr := range traits {
		shown[tr.Key] = tr.Text
	}
	if _, ok := shown["address"]; ok || shown["plan"] != `{"tier":"gold"}` {
		t.Fatalf("the profile shows %v; the test expects address removed "+
			"and plan an object", shown)
	}
	for _, condition := range []string{
		"trait: {key: address.city, equals: Paris}",
		"trait: {key: address.city, exists: true}",
		"trait: {key: plan, equals: basic}",
	} {
		if got := mustMembers(t, db, conditionDef(t, condition)); len(got) != 0 {
			t.Errorf("%s holds although the profile shows %v", condition, shown)
		}
	}
	for _, condition := range []string{
		"trait: {key: address.city, exists: false}",
		"trait: {key: plan.tier, equals: gold}",
		"trait: {key: plan, exists: true}",
	} {
		if got := mustMembers(t, db, conditionDef(t, condition)); len(got) != 1 {
			t.Errorf("%s does not hold although the profile shows %v", condition, shown)
		}
	}
}

// TestAnObjectTraitExists: a trait whose value is an object, stored field
// by field, exists; a key that only shares its prefix does not.
func TestAnObjectTraitExists(t *testing.T) {
	db := sqltest.MustOpen(t)
	store := resolver.NewStore(db, resolver.DefaultRules(), testNow, nil)
	ingestMessages(t, store, identifyMessage("m1", ago(day), map[string]any{
		"email":   "a@example.com",
		"address": map[string]any{"city": "Paris", "zip": "75001"}}))
	count := func(condition string) int {
		return len(mustMembers(t, db, conditionDef(t, condition)))
	}
	if count("trait: {key: address, exists: true}") != 1 {
		t.Errorf("address exists: true does not hold for a profile " +
			"whose address is {city, zip}")
	}
	if count("trait: {key: address, exists: false}") != 0 {
		t.Errorf("address exists: false holds for a profile " +
			"whose address is {city, zip}")
	}
	if count("trait: {key: addr, exists: true}") != 0 {
		t.Errorf("addr exists: true holds because address exists")
	}
}

// TestInAudienceReadsTheLastSavedResult checks that in_audience, and its
// negation, read the other audience's last saved result, not a fresh
// computation.
func TestInAudienceReadsTheLastSavedResult(t *testing.T) {
	db := sqltest.MustOpen(t)
	mustStorePerson(t, db, 1, []testEvent{ev("Buy", ago(day))})
	mustStorePerson(t, db, 2, nil)
	buyers := defFromYAML(t, "name: buyers\ncondition: {performed: {event: Buy}}")
	also := defFromYAML(t, "name: also\ncondition: {in_audience: buyers}")
	never := defFromYAML(t, "name: never\ncondition: {not: {in_audience: buyers}}")
	if err := Validate([]Definition{buyers, also, never}); err != nil {
		t.Fatal(err)
	}
	r := NewRunner(db, []Definition{buyers, also, never}, testNow, nil)
	if got := mustMembers(t, db, also); len(got) != 0 {
		t.Errorf("before buyers ran, in_audience holds for %v", got)
	}
	if _, err := r.Run(context.Background(), "buyers"); err != nil {
		t.Fatal(err)
	}
	got := memberIDs(mustMembers(t, db, also))
	if !reflect.DeepEqual(got, []int64{1}) {
		t.Errorf("after buyers ran, in_audience holds for %v, want [1]", got)
	}
	got = memberIDs(mustMembers(t, db, never))
	if !reflect.DeepEqual(got, []int64{2}) {
		t.Errorf("not in_audience holds for %v, want [2]", got)
	}
}

// TestADraftReadingAnAudienceCanBePreviewed: PreviewDefinition validates
// a draft together with the configured audiences, so a draft whose
// in_audience names one of them is previewed.
func TestADraftReadingAnAudienceCanBePreviewed(t *testing.T) {
	db := sqltest.MustOpen(t)
	mustStorePerson(t, db, 1, []testEvent{ev("Buy", ago(day))})
	mustStorePerson(t, db, 2, nil)
	buyers := defFromYAML(t, "name: buyers\ncondition: {performed: {event: Buy}}")
	r := NewRunner(db, []Definition{buyers}, testNow, nil)
	if _, err := r.Run(context.Background(), "buyers"); err != nil {
		t.Fatal(err)
	}
	draft := defFromYAML(t, "name: draft\ncondition: {not: {in_audience: buyers}}")
	size, _, err := r.PreviewDefinition(context.Background(), draft, 10)
	if err != nil {
		t.Fatalf("preview of a draft reading a configured audience: %v", err)
	}
	if size != 1 {
		t.Errorf("size = %d, want 1", size)
	}
}

// TestCyclesAndUnknownAudiencesAreRefused checks that in_audience cycles
// and unknown names are refused with a message naming them.
func TestCyclesAndUnknownAudiencesAreRefused(t *testing.T) {
	tests := []struct {
		name string
		defs []string
		want string
	}{
		{"self", []string{"name: a\ncondition: {in_audience: a}"}, "cycle: a -> a"},
		{"two", []string{
			"name: a\ncondition: {in_audience: b}",
			"name: b\ncondition: {not: {in_audience: a}}"},
			"cycle: a -> b -> a"},
		{"three behind a tail", []string{
			"name: a\ncondition: {in_audience: b}",
			"name: b\ncondition: {or: [{in_audience: c}, {performed: {event: E}}]}",
			"name: c\ncondition: {and: [{performed: {event: E}}, {in_audience: d}]}",
			"name: d\ncondition: {not: {in_audience: b}}"},
			"cycle: b -> c -> d -> b"},
		{"unknown", []string{"name: a\ncondition: {in_audience: nobody}"},
			`audiences.a.condition.in_audience "nobody" is not a defined audience`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var defs []Definition
			for _, text := range tt.defs {
				defs = append(defs, defFromYAML(t, text))
			}
			msg, p := validateMessage(defs...)
			if p != nil {
				t.Fatalf("Validate panicked: %v", p)
			}
			if !strings.Contains(msg, tt.want) {
				t.Errorf("Validate = %q, want it to contain %q", msg, tt.want)
			}
		})
	}
}

// TestAnUnknownAudienceNamesTheInAudienceKey: the problem for an
// in_audience naming no defined audience points at the in_audience key
// that holds the name, not at the whole condition.
func TestAnUnknownAudienceNamesTheInAudienceKey(t *testing.T) {
	def := conditionDef(t,
		"and: [{performed: {event: E}}, {not: {in_audience: nobody}}]")
	msg, _ := validateMessage(def)
	want := `audiences.adv.condition.and[1].not.in_audience "nobody"`
	if !strings.Contains(msg, want) {
		t.Errorf("Validate = %q, want it to contain %s", msg, want)
	}
}

// TestCombinationsReportTheBranchesThatHold checks and, or and not, and
// that attributes come only from the branches that hold.
func TestCombinationsReportTheBranchesThatHold(t *testing.T) {
	def := conditionDef(t, `
or:
  - performed: {event: A}
    attributes: {a_at: last_at}
  - performed: {event: B, at_least: 2}
    attributes: {b_n: count}
  - not: {performed: {event: C}}`)
	e := func(names ...string) []testEvent {
		var out []testEvent
		for _, name := range names {
			out = append(out, ev(name, ago(day)))
		}
		return out
	}
	tests := []struct {
		name    string
		history []testEvent
		want    map[string]any
	}{
		{"only the branch that holds reports", e("A", "B", "C"),
			map[string]any{"a_at": FormatTime(ago(day)), "b_n": nil}},
		{"both branches report", e("A", "B", "B"),
			map[string]any{"a_at": FormatTime(ago(day)), "b_n": int64(2)}},
		{"a member by the not branch has no attributes", nil,
			map[string]any{"a_at": nil, "b_n": nil}},
		{"no branch holds", e("C", "B"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := evaluateOn(t, def, tt.history); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
	runMembership(t, []memberCase{
		{"not of and",
			"not: {and: [{performed: {event: A}}, {performed: {event: B}}]}",
			e("A"), true},
		{"not of not", "not: {not: {performed: {event: A}}}", e("A"), true},
		{"not of an aggregate with no value holds",
			"not: {aggregate: {event: W, function: avg, property: d, at_least: 1}}",
			nil, true},
		{"and of one", "and: [{performed: {event: A}}]", e("A"), true},
	})
}

// TestNoAttributeFromABranchThatDidNotHold: an attribute of a leaf that
// holds inside an and-branch that does not is null, even when the person
// is a member through another branch.
func TestNoAttributeFromABranchThatDidNotHold(t *testing.T) {
	def := conditionDef(t, `
or:
  - and:
      - performed: {event: A}
        attributes: {a_at: last_at}
      - performed: {event: B}
  - performed: {event: C}`)
	got := evaluateOn(t, def, []testEvent{ev("A", ago(day)), ev("C", ago(day))})
	if got == nil {
		t.Fatal("not a member")
	}
	if got["a_at"] != nil {
		t.Errorf("a_at = %v, want null: the branch A and B did not hold", got["a_at"])
	}
}

// TestAZeroCountOrSumIsReportedAsZero: a member admitted because a count
// or sum is 0 (exactly: 0, at_most, less_than) carries 0, the number the
// condition compared, not null.
func TestAZeroCountOrSumIsReportedAsZero(t *testing.T) {
	tests := []struct {
		name, condition string
		want            any
	}{
		{"performed exactly 0",
			"performed: {event: E, exactly: 0, within: 1d}\n" +
				"attributes: {n: count}", int64(0)},
		{"performed at_most 3",
			"performed: {event: E, at_most: 3, within: 1d}\n" +
				"attributes: {n: count}", int64(0)},
		{"aggregate count",
			"aggregate: {event: E, function: count, within: 1d, at_most: 3}\n" +
				"attributes: {n: value}", int64(0)},
		{"aggregate sum",
			"aggregate: {event: E, function: sum, property: x, within: 1d, " +
				"less_than: 10}\nattributes: {n: value}", 0.0},
		{"aggregate distinct_count",
			"aggregate: {event: E, function: distinct_count, property: x, " +
				"within: 1d, less_than: 10}\nattributes: {n: value}", int64(0)},
		{"aggregate sum since an anchor",
			"aggregate: {event: E, function: sum, property: x, " +
				"since_latest: {event: Other}, less_than: 10}\n" +
				"attributes: {n: value}", 0.0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := evaluateOn(t, conditionDef(t, tt.condition),
				[]testEvent{ev("E", ago(3*day), "x", 1), ev("Other", ago(time.Hour))})
			if got == nil {
				t.Fatal("not a member")
			}
			if got["n"] == nil || fmt.Sprint(got["n"]) != fmt.Sprint(tt.want) {
				t.Errorf("n = %#v, want %#v", got["n"], tt.want)
			}
		})
	}
}

// TestIncludeAnonymousAndRequireEmail checks who an audience admits by
// their identifiers: by default only identified people, all with
// include_anonymous, only those with an email with require_email.
func TestIncludeAnonymousAndRequireEmail(t *testing.T) {
	db := sqltest.MustOpen(t)
	add := func(id int64, idents ...[2]string) {
		mustExec(t, db, `INSERT INTO profiles (id, created_ms, updated_ms)
			VALUES (?, 0, 0)`, id)
		for _, ident := range idents {
			mustExec(t, db, `INSERT INTO identities (type, value, profile_id,
				first_seen_ms, first_message_id, source)
				VALUES (?, ?, ?, 0, 'm', 'test')`, ident[0], ident[1], id)
		}
		mustExec(t, db, `INSERT INTO events (id, message_id, source, type, event,
			profile_id, ts_ms, received_ms, properties, raw)
			VALUES (?, ?, 'test', 'track', 'E', ?, ?, ?, '{}', '{}')`,
			id, fmt.Sprint("m", id), id, ago(day).UnixMilli(), ago(day).UnixMilli())
	}
	add(1, [2]string{"anonymous_id", "anon1"})
	add(2, [2]string{"user_id", "u2"})
	add(3, [2]string{"email", "c@example.com"})
	add(4, [2]string{"user_id", "u4"}, [2]string{"email", "d@example.com"})
	add(5, [2]string{"phone", "+33123"})
	tests := []struct {
		header string
		want   []int64
	}{
		{"", []int64{2, 3, 4}},
		{"include_anonymous: true\n", []int64{1, 2, 3, 4, 5}},
		{"require_email: true\n", []int64{3, 4}},
		{"include_anonymous: true\nrequire_email: true\n", []int64{3, 4}},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSpace(tt.header), func(t *testing.T) {
			def := defFromYAML(t,
				"name: adv\n"+tt.header+"condition: {performed: {event: E}}")
			got := memberIDs(mustMembers(t, db, def))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("members %v, want %v", got, tt.want)
			}
		})
	}
}

// TestValidateRefusesBadDefinitionsNamingTheKey feeds Validate bad
// definitions: each is refused, without panicking, with a message naming
// the audience and key.
func TestValidateRefusesBadDefinitionsNamingTheKey(t *testing.T) {
	const c = "audiences.adv.condition"
	const agg = "{aggregate: {event: E, function: sum, property: x, at_least: 1"
	tests := []struct {
		condition string
		want      string
	}{
		{"{}", c + " needs exactly one of"},
		{"{performed: {event: E}, not_performed: {event: F}}",
			c + " needs exactly one of"},
		{"{performed: {}}", c + ".performed.event is required"},
		{"{performed: {event: '  '}}", c + ".performed.event is required"},
		{"{not: {}}", c + ".not needs exactly one of"},
		{"{and: []}", c + ".and needs at least one condition"},
		{"{or: [{performed: {event: E}}, {}]}", c + ".or[1] needs exactly one of"},
		{"{performed: {event: E, within: -1h}}",
			c + ".performed.within must not be negative"},
		{"{performed: {event: E, within: 1h, between: [2h, 1h]}}",
			c + ".performed: give within or between"},
		{"{performed: {event: E, between: [1h]}}",
			c + ".performed.between needs two"},
		{"{performed: {event: E, between: [1h, 1h]}}",
			c + ".performed.between needs two"},
		{"{performed: {event: E, between: [1h, 2h, 3h]}}",
			c + ".performed.between needs two"},
		{"{performed: {event: E, at_least: 1, at_most: 2}}",
			c + ".performed: give one of"},
		{"{performed: {event: E, exactly: -1}}",
			c + ".performed: a count must not be negative"},
		{"{not_performed: {event: E, at_least: 1}}",
			c + ".not_performed takes no count"},
		{"{performed: {event: E, where: [{equals: 1}]}}",
			c + ".performed.where[0].property is required"},
		{"{performed: {event: E, where: [{property: x}]}}",
			c + ".performed.where[0] needs exactly one test"},
		{"{performed: {event: E, where: [{property: x, equals: 1, contains: a}]}}",
			c + ".performed.where[0] needs exactly one test"},
		{"{performed: {event: E, where: [{property: x, equals: {a: 1}}]}}",
			c + ".performed.where[0].equals must be"},
		{"{performed: {event: E, where: [{property: x, one_of: [1, [2]]}]}}",
			c + ".performed.where[0].one_of[1] must be"},
		{"{performed: {event: E, where: [{property: x, one_of: []}]}}",
			c + ".performed.where[0].one_of needs at least one value"},
		{`{performed: {event: E, where: [{property: 'a"b', exists: true}]}}`,
			c + ".performed.where[0].property"},
		{"{performed: {event: E, where: [{property: 'a.', exists: true}]}}",
			c + ".performed.where[0].property"},
		{"{performed: {event: E, where: [{property: 'a[].b[]', exists: true}]}}",
			"goes through more than one array"},
		{"{performed: {event: E, where: [{property: 'a[0]', exists: true}]}}",
			c + ".performed.where[0].property"},
		{`{performed: {event: E, where: [{property: "a\x01b", exists: true}]}}`,
			c + ".performed.where[0].property"},
		{"{performed: {event: E, where: [{key: x, exists: true}]}}",
			c + ".performed.where[0].key is for traits"},
		{"{trait: {property: x, exists: true}}", c + ".trait.property is for events"},
		{"{trait: {exists: true}}", c + ".trait.key is required"},
		{"{trait: {key: 'tags[]', exists: true}}", c + ".trait.key"},
		{"{trait: {key: plan}}", c + ".trait needs exactly one test"},
		{"{then_not: {first: {key: id}, not_followed_by: [{event: B, key: id}]}}",
			c + ".then_not.first.event is required"},
		{"{then_not: {first: {event: A}}}",
			c + ".then_not.not_followed_by needs at least one event"},
		{"{then_not: {first: {event: A, key: id}, not_followed_by: [{event: B}]}}",
			c + ".then_not.not_followed_by[0].key must be given"},
		{"{then_not: {first: {event: A, key: 'a[].b[]'}, " +
			"not_followed_by: [{event: B, key: id}]}}",
			c + ".then_not.first.key"},
		{"{then_not: {first: {event: A}, not_followed_by: [{event: B}], " +
			"within: -1h}}",
			c + ".then_not.within must not be negative"},
		{"{then_not: {first: {event: A}, not_followed_by: [{event: B}], " +
			"between: [1h]}}",
			c + ".then_not.between needs two"},
		{"{aggregate: {event: E, function: sum, at_least: 1}}",
			c + ".aggregate.property is required for sum"},
		{"{aggregate: {event: E, function: count, property: x, at_least: 1}}",
			c + ".aggregate: count counts events"},
		{"{aggregate: {event: E, function: total, property: x, at_least: 1}}",
			c + `.aggregate.function "total" is not one of`},
		{"{aggregate: {event: E, property: x, at_least: 1}}",
			c + `.aggregate.function "" is not one of`},
		{"{aggregate: {event: E, function: sum, property: x}}",
			c + ".aggregate needs a bound"},
		{agg + ", round: 10}}", c + ".aggregate.round must be between 0 and 9"},
		{agg + ", round: -1}}", c + ".aggregate.round must be between 0 and 9"},
		{agg + ", units: {property: u}}}",
			c + ".aggregate.units.factors needs at least one unit"},
		{agg + ", units: {factors: {km: 1}}}}",
			c + ".aggregate.units.property names"},
		{agg + ", within: 1d, since_latest: {event: O}}}",
			c + ".aggregate: give since_latest or a window"},
		{agg + ", since_latest: {}}}",
			c + ".aggregate.since_latest.event is required"},
		{agg + "}, attributes: {a: anchor_at}}",
			c + ".attributes.a: anchor_at needs aggregate.since_latest"},
		{agg + ", since_latest: {event: O}}, attributes: {a: 'anchor.'}}",
			c + ".attributes.a"},
		{"{performed: {event: E}, attributes: {a: value}}",
			c + `.attributes.a: "value" is not one of count, first_at, last_at`},
		{"{performed: {event: E}, attributes: {Bad Name: count}}",
			c + `.attributes: "Bad Name" must be lower-case`},
		{"{then_not: {first: {event: A}, not_followed_by: [{event: B}]}, " +
			"attributes: {k: keys}}",
			c + ".attributes.k: keys needs then_not.first.key"},
		{"{and: [{performed: {event: A}}], attributes: {n: count}}",
			c + ".attributes: a and condition has no attributes"},
		{"{not: {performed: {event: A}, attributes: {n: count}}}",
			c + ".not.attributes: a condition that must not hold"},
		{"{not: {or: [{performed: {event: A}, attributes: {n: count}}]}}",
			c + ".not.or[0].attributes: a condition that must not hold"},
		{"{not_performed: {event: A}, attributes: {n: count}}",
			c + ".attributes: a condition that must not hold"},
		{"{and: [{performed: {event: A}, attributes: {n: count}}, " +
			"{performed: {event: B}, attributes: {n: last_at}}]}",
			`audiences.adv: attribute "n" is named twice`},
		{"{in_audience: 'Not A Name'}",
			c + `.in_audience "Not A Name" is not an audience name`},
	}
	for _, tt := range tests {
		t.Run(tt.condition, func(t *testing.T) {
			def := defFromYAML(t, "name: adv\ncondition: "+tt.condition)
			msg, p := validateMessage(def)
			if p != nil {
				t.Fatalf("Validate panicked: %v", p)
			}
			if !strings.Contains(msg, tt.want) {
				t.Errorf("Validate = %q\nwant it to contain %q", msg, tt.want)
			}
		})
	}

	t.Run("definition-level problems", func(t *testing.T) {
		const performed = "condition: {performed: {event: E}}"
		for _, tt := range []struct{ text, want string }{
			{performed, `audiences[0].name "" must be`},
			{"name: adv", "audiences.adv.condition is required"},
			{"name: adv\ntimezone: Mars/Base\n" + performed,
				`audiences.adv.timezone "Mars/Base"`},
			{"name: adv\nschedule: 'every day'\n" + performed,
				`audiences.adv.schedule "every day"`},
		} {
			var d Definition
			if err := yaml.Unmarshal([]byte(tt.text), &d); err != nil {
				t.Fatal(err)
			}
			msg, p := validateMessage(d)
			if p != nil || !strings.Contains(msg, tt.want) {
				t.Errorf("%s:\nValidate = %q (panic %v), want %q",
					tt.text, msg, p, tt.want)
			}
		}
		msg, _ := validateMessage(
			defFromYAML(t, "name: adv\ncondition: {performed: {event: E}}"),
			defFromYAML(t, "name: adv\ncondition: {performed: {event: F}}"))
		if !strings.Contains(msg, `"adv" is defined twice`) {
			t.Errorf("duplicate names: %q", msg)
		}
	})
}

// TestNumbersOutOfRangeAreRefused: a window too long for a duration,
// infinite or NaN days, and NaN or infinite bounds are refused as out of
// range, never reported as negative or accepted.
func TestNumbersOutOfRangeAreRefused(t *testing.T) {
	for _, condition := range []string{
		"performed: {event: E, within: 200000d}",
		"performed: {event: E, within: Infd}",
		"performed: {event: E, within: NaNd}",
		"performed: {event: E, where: [{property: x, at_least: .nan}]}",
		"aggregate: {event: E, function: sum, property: x, at_most: .inf}",
	} {
		var d Definition
		text := "name: adv\ncondition: {" + condition + "}"
		if err := yaml.Unmarshal([]byte(text), &d); err != nil {
			if strings.Contains(err.Error(), "negative") {
				t.Errorf("%s: %v", condition, err)
			}
			continue
		}
		msg, p := validateMessage(d)
		if p != nil || msg == "" || strings.Contains(msg, "negative") {
			t.Errorf("%s: Validate = %q (panic %v); want a problem saying "+
				"it is out of range", condition, msg, p)
		}
	}
}

// TestAScheduleOfOnlyATimeZoneIsRefused: a schedule that is a time zone
// without cron fields is refused, naming the schedule, rather than making
// Validate panic.
func TestAScheduleOfOnlyATimeZoneIsRefused(t *testing.T) {
	const performed = "condition: {performed: {event: E}}"
	for _, text := range []string{
		"name: adv\nschedule: CRON_TZ=Europe/Paris\n" + performed,
		"name: adv\ntimezone: UTC\nschedule: TZ=UTC\n" + performed,
		"name: adv\nschedule: \"CRON_TZ=UTC\\t0 9 * * *\"\n" + performed,
		"name: adv\nschedule: \"TZ=\"\n" + performed,
	} {
		msg, p := validateMessage(defFromYAML(t, text))
		if p != nil {
			t.Errorf("%s\nValidate panicked: %v", text, p)
			continue
		}
		if !strings.Contains(msg, "audiences.adv.schedule") {
			t.Errorf("%s\nValidate = %q, want a problem with audiences.adv.schedule",
				text, msg)
		}
	}
}

// TestAFirstEventNeverSettlesItself: when a follow-up selector also
// selects the first event ("ordered, then no further order within 30d"),
// the first event is not its own follow-up, so a single order with none
// after it makes a member.
func TestAFirstEventNeverSettlesItself(t *testing.T) {
	tests := []struct {
		name, condition string
		history         []testEvent
	}{
		{"one-time buyer", `
then_not:
  first: {event: Order Completed}
  not_followed_by: [{event: Order Completed}]
  within: 30d`, []testEvent{ev("Order Completed", ago(40*day))}},
		{"bought a product and never again", `
then_not:
  first: {event: Order Completed, key: 'products[].id'}
  not_followed_by: [{event: Order Completed, key: 'products[].id'}]`,
			[]testEvent{ev("Order Completed", ago(40*day),
				"products", []any{map[string]any{"id": "a"}})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !isMember(t, conditionDef(t, tt.condition), tt.history...) {
				t.Errorf("a single order 40 days ago, with no order after it, " +
					"is not a member: the order settled itself")
			}
		})
	}
}

// TestLargeIntegersCompareExactly: integers beyond float64's precision
// in filters match the exact value and no neighbour.
func TestLargeIntegersCompareExactly(t *testing.T) {
	exact := ev("E", ago(day), "id", json.Number("9007199254740993"))
	other := ev("E", ago(day), "id", json.Number("9007199254740992"))
	def := conditionDef(t,
		"performed: {event: E, where: [{property: id, one_of: [9007199254740993]}]}")
	if !isMember(t, def, exact) {
		t.Errorf("the exact id is not matched")
	}
	if isMember(t, def, other) {
		t.Errorf("another id (9007199254740992) is matched")
	}
	def = conditionDef(t,
		"performed: {event: E, where: [{property: id, equals: 9007199254740993}]}")
	if isMember(t, def, other) {
		t.Errorf("equals: another id (9007199254740992) is matched")
	}
}

// TestALongOneOfComputes: a one_of of thousands of values, with
// ignore_case and values of several types, computes and matches.
func TestALongOneOfComputes(t *testing.T) {
	opts := make([]string, 5000)
	for i := range opts {
		opts[i] = fmt.Sprintf("sku-%d", i)
	}
	opts = append(opts, "42", "true")
	def := conditionDef(t, "performed: {event: E, where: "+
		"[{property: sku, one_of: ["+strings.Join(opts, ", ")+
		"], ignore_case: true}]}")
	db := sqltest.MustOpen(t)
	mustStorePerson(t, db, 1, []testEvent{ev("E", ago(day), "sku", "SKU-4999")})
	mustStorePerson(t, db, 2, []testEvent{ev("E", ago(day), "sku", 42)})
	mustStorePerson(t, db, 3, []testEvent{ev("E", ago(day), "sku", "sku-5000")})
	got := memberIDs(mustMembers(t, db, def))
	if !reflect.DeepEqual(got, []int64{1, 2}) {
		t.Errorf("members %v, want [1 2]", got)
	}
}

// TestAOneOfTooLongForOneQueryIsRefused: a one_of with more values than
// one query can bind (a suppression list pasted from a CSV) is refused by
// Validate, naming the one_of, instead of failing at every run.
func TestAOneOfTooLongForOneQueryIsRefused(t *testing.T) {
	opts := make([]string, 33000)
	for i := range opts {
		opts[i] = fmt.Sprintf("u%d", i)
	}
	def := conditionDef(t, "performed: {event: E, where: "+
		"[{property: user, one_of: ["+strings.Join(opts, ", ")+"]}]}")
	msg, p := validateMessage(def)
	if p != nil {
		t.Fatalf("Validate panicked: %v", p)
	}
	want := "audiences.adv.condition.performed.where[0].one_of"
	if !strings.Contains(msg, want) {
		t.Errorf("Validate = %.200q, want it to refuse the one_of, naming it", msg)
	}
}

// TestTooManyLeavesAreRefused: each leaf condition is a table of the
// audience's query, and SQLite joins at most 64, so an or of 64 events is
// refused by Validate, naming the condition, instead of failing at every
// run.
func TestTooManyLeavesAreRefused(t *testing.T) {
	parts := make([]string, 64)
	for i := range parts {
		parts[i] = fmt.Sprintf("{performed: {event: Viewed %d}}", i)
	}
	def := conditionDef(t, "or: ["+strings.Join(parts, ", ")+"]")
	msg, p := validateMessage(def)
	if p != nil {
		t.Fatalf("Validate panicked: %v", p)
	}
	if !strings.Contains(msg, "audiences.adv.condition") {
		t.Errorf("Validate = %q, want it to refuse the or, naming "+
			"audiences.adv.condition", msg)
	}
}

// TestEnginesReadNumbersAsTheSameText: a number has one text, the
// shortest, whatever the form it was sent in (1e2 is "100", 1.50 is
// "1.5", 10.0 and 10.00 are one then_not key, 1.0 and 1.00 one distinct
// value), and SQLite and PostgreSQL agree on it. The engines are
// compared when sqltest.PostgresEnv names a server.
func TestEnginesReadNumbersAsTheSameText(t *testing.T) {
	runMembership(t, []memberCase{
		{"text form of 1e2",
			"performed: {event: E, where: [{property: x, equals: '100'}]}",
			[]testEvent{ev("E", ago(day), "x", json.Number("1e2"))}, true},
		{"text form of 1.50",
			"performed: {event: E, where: [{property: x, equals: '1.5'}]}",
			[]testEvent{ev("E", ago(day), "x", json.Number("1.50"))}, true},
		{"then_not keys 10.0 and 10.00 are one key",
			"then_not: {first: {event: A, key: id}, " +
				"not_followed_by: [{event: B, key: id}]}",
			[]testEvent{ev("A", ago(day), "id", json.Number("10.0")),
				ev("B", ago(time.Hour), "id", json.Number("10.00"))}, false},
		{"distinct_count of 1.0 and 1.00 is 1",
			"aggregate: {event: E, function: distinct_count, property: x, " +
				"at_least: 2}",
			[]testEvent{ev("E", ago(day), "x", json.Number("1.0")),
				ev("E", ago(day), "x", json.Number("1.00"))}, false},
	})
}
