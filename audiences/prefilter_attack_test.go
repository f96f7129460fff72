package audiences

// Attacks on the test of the stored properties text that text filters
// make before any JSON is read (prefilter.go), and on PostgreSQL's fold
// and number reads (sqlexpr.go). Every case runs on SQLite and, when
// sqltest.PostgresEnv names a server, on PostgreSQL too, which must agree.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
)

// storeRawEvent writes one track event of profile whose properties are
// stored exactly as the text given, as another writer than knit might.
func storeRawEvent(t *testing.T, db *sqldb.DB, id, profile int64, event, stored string) {
	t.Helper()
	at := ago(time.Hour).UnixMilli() + id
	mustExec(t, db, `INSERT INTO events (id, message_id, source, type, event,
		profile_id, ts_ms, received_ms, properties, raw)
		VALUES (?, ?, 'test', 'track', ?, ?, ?, ?, ?, '{}')`,
		id, fmt.Sprintf("raw%d", id), event, profile, at, at, stored)
}

// rawCase is a filter, the properties text of the one event of a person,
// and whether the filter passes on it.
type rawCase struct {
	name, where, stored string
	pass                bool
}

// checkRawCases stores each case as the event E<i> of person i+1 and
// checks, on every engine, that performed with the filter admits exactly
// the people whose event passes, and not_performed exactly the others.
func checkRawCases(t *testing.T, cases []rawCase) {
	t.Helper()
	dbs := openEngines(t)
	for _, db := range dbs {
		for i, tt := range cases {
			mustStorePerson(t, db, int64(i+1), nil)
			storeRawEvent(t, db, int64(i+1), int64(i+1), fmt.Sprintf("E%d", i), tt.stored)
		}
	}
	for i, tt := range cases {
		for _, kind := range []string{"performed", "not_performed"} {
			def := conditionDef(t, fmt.Sprintf("%s: {event: E%d, where: [%s]}",
				kind, i, tt.where))
			members := dbs.members(t, def)
			_, got := members[int64(i+1)]
			if want := tt.pass == (kind == "performed"); got != want {
				t.Errorf("%s (%s): member = %v, want %v\n%s on %s",
					tt.name, kind, got, want, tt.where, tt.stored)
			}
			if n := len(members); kind == "performed" && n > 1 {
				t.Errorf("%s: %d members, at most one expected", tt.name, n)
			}
		}
	}
}

// TestAttackPrefilterOnEscapedStoredText stores values with every kind
// of escape JSON allows, where the needle appears only behind an escape,
// only across one, or only outside the value tested.
func TestAttackPrefilterOnEscapedStoredText(t *testing.T) {
	checkRawCases(t, []rawCase{
		{"escaped quote", `{property: c, equals: 'say "hi"'}`,
			`{"c":"say \"hi\""}`, true},
		{"escaped backslash", `{property: c, equals: 'a\b'}`, `{"c":"a\\b"}`, true},
		{"an escaped backslash before u is no escape", `{property: c, equals: Shoes}`,
			`{"c":"\\u0053hoes"}`, false},
		{"the text of that backslash", `{property: c, equals: '\u0053hoes'}`,
			`{"c":"\\u0053hoes"}`, true},
		{"escaped slash alone", `{property: c, contains: '/'}`, `{"c":"a\/b"}`, true},
		{"Go's escaped angle brackets", `{property: c, equals: '<b>'}`,
			`{"c":"\u003cb\u003e"}`, true},
		{"lower case hex escape", `{property: c, starts_with: '<'}`,
			`{"c":"\u003c"}`, true},
		{"upper case hex escape", `{property: c, equals: 'SHOES'}`,
			`{"c":"\u0053\u0048\u004F\u0045\u0053"}`, true},
		{"every letter escaped, folded", `{property: c, equals: shoes, ignore_case: true}`,
			`{"c":"\u0053\u0048\u004f\u0045\u0053"}`, true},
		{"line separator escaped", "{property: c, equals: \"a\\u2028b\"}",
			`{"c":"a\u2028b"}`, true},
		{"line separator raw", "{property: c, equals: \"a\\u2028b\"}",
			"{\"c\":\"a\u2028b\"}", true},
		{"escaped newline and tab", "{property: c, equals: \"x\\n\\ty\"}",
			`{"c":"x\n\ty"}`, true},
		{"contains only a control character", "{property: c, contains: \"\\t\"}",
			`{"c":"x\ty"}`, true},
		{"escaped accent, folded", `{property: c, equals: 'ÉCOLE', ignore_case: true}`,
			`{"c":"\u00c9cole"}`, true},
		{"escaped accent, case of the accent differs",
			`{property: c, equals: 'école', ignore_case: true}`, `{"c":"\u00c9cole"}`, false},
		{"escaped surrogate pair", `{property: c, contains: '😀 s'}`,
			`{"c":"\ud83d\ude00 shoes"}`, true},
		{"raw emoji", `{property: c, starts_with: '😀'}`, `{"c":"😀 shoes"}`, true},
		{"needle across an escaped quote", `{property: c, contains: 'o"s'}`,
			`{"c":"sho\"s"}`, true},
		{"escape elsewhere, needle absent", `{property: c, equals: Shoes}`,
			`{"d":"\u0041","c":"Socks"}`, false},
		{"needle only in a key", `{property: c, equals: Shoes}`,
			`{"Shoes":"Shoes","c":"shoes"}`, false},
		{"needle only in a key, escaped value", `{property: c, equals: Shoes}`,
			`{"Shoes":1,"c":"\u0073hoes"}`, false},
		{"needle in the key of an object value", `{property: c, contains: Shoes}`,
			`{"c":{"Shoes":"Shoes"}}`, false},
		{"needle inside an array value", `{property: c, equals: Shoes}`,
			`{"c":["Shoes"]}`, false},
		{"white space around the JSON", `{property: c, equals: Shoes}`,
			"{ \"c\" :\n\t\"Shoes\" }", true},
		{"nested value escaped", `{property: a.b, equals: 'x&y'}`,
			`{"a":{"b":"x\u0026y"}}`, true},
		{"not_equals on an escaped value", `{property: c, not_equals: Shoes}`,
			`{"c":"\u0053hoes"}`, false},
		{"not_equals on another value", `{property: c, not_equals: Shoes}`,
			`{"c":"Socks"}`, true},
		{"one_of, only the second behind escapes",
			`{property: c, one_of: [Boots, 'Sh"oes'], ignore_case: true}`,
			`{"c":"sH\u0022OES"}`, true},
	})
}

// TestAttackPrefilterOnNumbersAndBooleans: a text filter on a number or
// boolean compares the text either engine reads, which need not be
// written in the stored properties; such needles are never looked for.
func TestAttackPrefilterOnNumbersAndBooleans(t *testing.T) {
	checkRawCases(t, []rawCase{
		{"exponent reads whole", `{property: x, equals: '100'}`, `{"x":1E+2}`, true},
		{"fraction reads whole", `{property: x, equals: '1'}`, `{"x":1.000}`, true},
		{"negative zero reads 0", `{property: x, equals: '0'}`, `{"x":-0}`, true},
		{"negative zero is not -0", `{property: x, equals: '-0'}`, `{"x":-0.0}`, false},
		{"a point only in the text", `{property: x, equals: '1.5'}`, `{"x":15e-1}`, true},
		{"exponent only in the text", `{property: x, contains: 'e-07'}`,
			`{"x":0.0000001}`, true},
		{"starts_with a sign", `{property: x, starts_with: '-'}`, `{"x":-5e-1}`, true},
		{"contains digits of the whole", `{property: x, contains: '00'}`, `{"x":1e2}`, true},
		{"a sign only in the text", `{property: x, contains: 'e+20'}`, `{"x":1e20}`, true},
		{"boolean, folded", `{property: x, equals: 'TRUE', ignore_case: true}`,
			`{"x":true}`, true},
		{"part of a boolean", `{property: x, contains: 'als'}`, `{"x":false}`, true},
		{"boolean among words", `{property: x, one_of: [Shoes, 'false']}`,
			`{"x":false}`, true},
		{"number among words", `{property: x, one_of: [Shoes, 100]}`, `{"x":1e2}`, true},
		{"number-like text among words", `{property: x, one_of: [Shoes, '100']}`,
			`{"x":1e2}`, true},
		{"a number is no text", `{property: x, one_of: [Shoes, 100]}`, `{"x":"1e2"}`, false},
		{"a number equals its value", `{property: x, equals: 100}`, `{"x":100.0e0}`, true},
		{"null reads no text", `{property: x, equals: 'null'}`, `{"x":null}`, false},
		{"word next to a number", `{property: x, equals: '1e2 shoes'}`,
			`{"x":1e2,"y":"shoes"}`, false},
		{"folded word that looks like a number", `{property: x, equals: 'INF'}`,
			`{"x":"inF"}`, false},
		{"folded, the same word", `{property: x, equals: 'INF', ignore_case: true}`,
			`{"x":"inF"}`, true},
	})
}

// TestAttackPrefilterThroughArrays filters array elements, alone and
// together with properties outside the array, where the matching element
// is escaped.
func TestAttackPrefilterThroughArrays(t *testing.T) {
	products := `{"products":[{"category":"Socks","sku":"Shoes"},` +
		`{"category":"sh\u004fes","sku":"s2"}]}`
	checkRawCases(t, []rawCase{
		{"escaped element, folded",
			`{property: 'products[].category', equals: SHOES, ignore_case: true}`,
			products, true},
		{"escaped element, exact", `{property: 'products[].category', equals: Shoes}`,
			products, false},
		{"two filters on one element",
			`{property: 'products[].category', starts_with: sh}, ` +
				`{property: 'products[].sku', equals: s2}`, products, true},
		{"two filters met by different elements",
			`{property: 'products[].category', equals: Socks}, ` +
				`{property: 'products[].sku', equals: s2}`, products, false},
		{"an element that is text", `{property: 'tags[]', equals: '<sale>'}`,
			`{"tags":[1e2,"\u003csale\u003e"]}`, true},
		{"a number element as text", `{property: 'tags[]', equals: '100'}`,
			`{"tags":[1e2,"\u003csale\u003e"]}`, true},
	})
}

// TestAttackPrefilterKeepsTheAnchorAndSettlingEvents: since_latest anchors
// on the latest event whose escaped element passes, and captures that
// element; then_not's follow-up events settle a key even when both the
// first and the follow-up event are escaped.
func TestAttackPrefilterKeepsTheAnchorAndSettlingEvents(t *testing.T) {
	dbs := openEngines(t)
	for _, db := range dbs {
		mustStorePerson(t, db, 1, nil)
		storeRawEvent(t, db, 1, 1, "Order",
			`{"products":[{"category":"Shoes","sku":"old"}]}`)
		storeRawEvent(t, db, 2, 1, "View", `{"c":"x"}`)
		storeRawEvent(t, db, 3, 1, "Order",
			`{"products":[{"category":"Socks","sku":"no"},`+
				`{"category":"\u0073HOES","sku":"new"}]}`)
		storeRawEvent(t, db, 4, 1, "Order", `{"products":[{"category":"Shoes!"}]}`)
		storeRawEvent(t, db, 5, 1, "View", `{"c":"y"}`)
		storeRawEvent(t, db, 6, 1, "View", `{"c":"z"}`)

		mustStorePerson(t, db, 2, nil)
		storeRawEvent(t, db, 7, 2, "Cart", `{"id":"\u0061\u0062","c":"B\u00e9b\u00e9"}`)
		storeRawEvent(t, db, 8, 2, "Buy", `{"id":"ab","c":"B\u00c9B\u00c9"}`)
		storeRawEvent(t, db, 9, 2, "Cart", `{"id":"cd","c":"b\u00c9b\u00c9"}`)
	}

	anchored := dbs.members(t, conditionDef(t, `aggregate:
  event: View
  function: count
  at_least: 2
  since_latest:
    event: Order
    where: [{property: 'products[].category', equals: shoes, ignore_case: true}]
attributes: {n: value, sku: 'anchor.products[].sku'}`))
	if got := anchored[1]; got == nil || fmt.Sprint(got["n"]) != "2" || got["sku"] != "new" {
		t.Errorf("anchored on %v, want 2 views since the order of sku new", got)
	}

	pending := dbs.members(t, conditionDef(t, `then_not:
  first: {event: Cart, key: id, where: [{property: c, equals: 'BéBé', ignore_case: true}]}
  not_followed_by: [{event: Buy, key: id, where: [{property: c, contains: 'ÉB'}]}]
attributes: {k: keys}`))
	if got, member := pending[2]; member {
		t.Errorf("person 2 is pending %v: ab was bought, and cd's bÉbÉ is not BéBé "+
			"with A-Z folded", got)
	}
}

// TestAttackResolverStoredTextPasses ingests values Go's encoder escapes
// through the resolver, as knit stores them, and matches each exactly,
// folded, by a part and by its start.
func TestAttackResolverStoredTextPasses(t *testing.T) {
	values := []string{"<b>Shoes & Socks</b>", "a\u2028b\u2029c", `say "hi"`,
		`C:\Shoes`, "tab\there", "ÉCOLE ünï 😀", "\x7f\u0080", "bad \xff byte"}
	dbs := openEngines(t)
	for _, db := range dbs {
		store := resolver.NewStore(db, resolver.DefaultRules(), testNow, nil)
		for i, v := range values {
			ingestMessages(t, store, map[string]any{"type": "track",
				"messageId": fmt.Sprintf("t%d", i), "userId": "u1", "event": "E",
				"timestamp":  ago(day).Format(time.RFC3339Nano),
				"properties": map[string]any{"c": v, "n": i}})
		}
		var stored []string
		if err := db.Select(&stored, `SELECT properties FROM events`); err != nil {
			t.Fatal(err)
		}
		all := strings.Join(stored, " ")
		for _, escape := range []string{`\u003cb\u003e`, `\u2028`, `\"hi\"`, `C:\\Shoes`} {
			if !strings.Contains(all, escape) {
				t.Fatalf("the resolver no longer writes %s; the test expects it in %s",
					escape, all)
			}
		}
	}
	for i, v := range values {
		stored := v
		if i == len(values)-1 {
			stored = "bad \ufffd byte" // the resolver's JSON holds U+FFFD
		}
		runes := []rune(stored)
		quoted := yamlText(stored)
		part := yamlText(string(runes[1 : len(runes)-1]))
		start := yamlText(string(runes[:2]))
		for _, where := range []string{
			"{property: c, equals: " + quoted + "}",
			"{property: c, equals: " + quoted + ", ignore_case: true}",
			"{property: c, one_of: [x, " + quoted + "]}",
			"{property: c, contains: " + part + "}",
			"{property: c, contains: " + part + ", ignore_case: true}",
			"{property: c, starts_with: " + start + "}",
		} {
			def := conditionDef(t, fmt.Sprintf(
				"performed: {event: E, exactly: 1, where: [%s, {property: n, equals: %d}]}",
				where, i))
			if len(dbs.members(t, def)) != 1 {
				t.Errorf("%q: %s does not pass", v, where)
			}
		}
	}
}

// yamlText writes s as a YAML double-quoted scalar with everything but
// printable ASCII escaped, since YAML refuses some characters unescaped.
func yamlText(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteString(`\` + string(r))
		case r >= ' ' && r < 0x7f:
			b.WriteRune(r)
		case r < 0x10000:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// TestAttackIgnoreCaseFoldsOnlyAToZEverywhere: event filters, the stored
// text test before them, trait filters and unit names all fold A-Z and
// nothing else, on both engines, whatever PostgreSQL's locale would fold
// (there the Kelvin sign and the dotted capital I lower to ASCII).
func TestAttackIgnoreCaseFoldsOnlyAToZEverywhere(t *testing.T) {
	const kelvin, dottedI, dotlessI = "\u212a", "\u0130", "\u0131"
	q := yamlText
	checkRawCases(t, []rawCase{
		{"Kelvin sign is no K", "{property: c, equals: kelvin, ignore_case: true}",
			`{"c":"` + kelvin + `ELVIN"}`, false},
		{"escaped Kelvin sign is no K", "{property: c, contains: kel, ignore_case: true}",
			`{"c":"\u212aelvin"}`, false},
		{"K is no Kelvin sign", "{property: c, equals: " + q(kelvin+"elvin") +
			", ignore_case: true}", `{"c":"KELVIN"}`, false},
		{"Kelvin sign matches itself", "{property: c, equals: " + q(kelvin+"ELVIN") +
			", ignore_case: true}", `{"c":"` + kelvin + `elvin"}`, true},
		{"dotted I is no i", "{property: c, starts_with: is, ignore_case: true}",
			`{"c":"` + dottedI + `STANBUL"}`, false},
		{"dotted I matches itself", "{property: c, one_of: [x, " + q(dottedI+"stanbul") +
			"], ignore_case: true}", `{"c":"` + dottedI + `STANBUL"}`, true},
		{"dotless i is no I", "{property: c, equals: ISTANBUL, ignore_case: true}",
			`{"c":"` + dotlessI + `stanbul"}`, false},
		{"dotless i matches itself", "{property: c, equals: " + q(dotlessI+"STANBUL") +
			", ignore_case: true}", `{"c":"` + dotlessI + `stanbul"}`, true},
		{"capital sharp s stays", "{property: c, contains: " + q("\u00df") +
			", ignore_case: true}", `{"c":"STRA\u1e9eE"}`, false},
		{"SS is no sharp s", "{property: c, equals: " + q("stra\u00dfe") +
			", ignore_case: true}", `{"c":"STRASSE"}`, false},
		{"final sigma is no sigma", "{property: c, equals: " + q("\u03bf\u03b4\u03bf\u03c3") +
			", ignore_case: true}", `{"c":"\u039f\u0394\u039f\u03a3"}`, false},
		{"fullwidth A is no a", "{property: c, equals: a, ignore_case: true}",
			`{"c":"\uff21"}`, false},
		{"folded A-Z beside non-ASCII", "{property: c, equals: " + q("\u00c9T\u00c9") +
			", ignore_case: true}", `{"c":"\u00c9t\u00c9"}`, true},
	})

	dbs := openEngines(t)
	for _, db := range dbs {
		for i, v := range []string{`"` + kelvin + `elvin"`, `"\u212aelvin"`, `"KELVIN"`,
			`"` + dottedI + `stanbul"`} {
			mustStorePerson(t, db, int64(i+1), nil)
			mustExec(t, db, `INSERT INTO traits (profile_id, key, value, ts_ms, message_id)
				VALUES (?, 'c', ?, 0, 'm')`, int64(i+1), v)
		}
		for i, unit := range []string{kelvin + "G", "KG", dottedI + "N"} {
			storeRawEvent(t, db, int64(i+1), 1, "W", fmt.Sprintf(`{"d":1,"u":%q}`, unit))
		}
	}
	for _, tt := range []struct {
		condition, want string
	}{
		{"trait: {key: c, equals: kelvin, ignore_case: true}", "[3]"},
		{"trait: {key: c, starts_with: " + q(kelvin) + ", ignore_case: true}", "[1 2]"},
		{"trait: {key: c, contains: " + q("\u212aEL") + ", ignore_case: true}", "[1 2]"},
		{"trait: {key: c, equals: istanbul, ignore_case: true}", "[]"},
		{"trait: {key: c, one_of: [" + q(dottedI+"STANBUL") + "], ignore_case: true}",
			"[4]"},
	} {
		if got := fmt.Sprint(memberIDsOf(dbs.members(t, conditionDef(t,
			tt.condition)))); got != tt.want {
			t.Errorf("%s: members %s, want %s", tt.condition, got, tt.want)
		}
	}
	units := dbs.members(t, conditionDef(t, `aggregate:
  event: W
  function: sum
  property: d
  units: {property: u, factors: {kg: 1000, in: 10}}
  at_least: 0
attributes: {v: value}`))
	// Only KG folds to kg; the Kelvin sign and the dotted I keep the value.
	if got := fmt.Sprint(units[1]["v"]); got != "1002" {
		t.Errorf("sum with units = %s, want 1002", got)
	}
}

// memberIDsOf lists the members' profile ids in order.
func memberIDsOf(m map[int64]map[string]any) []int64 {
	out := []int64{}
	for id := int64(1); id <= int64(len(m))+100; id++ {
		if _, ok := m[id]; ok {
			out = append(out, id)
		}
	}
	return out
}

// TestAttackNumbersReadFromJSONAlike reads numbers written every way JSON
// allows, as properties, array elements and traits, in equals, one_of,
// bounds and aggregates; text, booleans, null, objects and arrays are no
// numbers.
func TestAttackNumbersReadFromJSONAlike(t *testing.T) {
	checkRawCases(t, []rawCase{
		{"exponent", `{property: x, equals: 100}`, `{"x":1E+2}`, true},
		{"fraction and exponent", `{property: x, equals: 100}`, `{"x":0.1e3}`, true},
		{"trailing zeros", `{property: x, equals: 1.5}`, `{"x":1.5000}`, true},
		{"negative zero", `{property: x, equals: 0}`, `{"x":-0.0}`, true},
		{"numeric text is no number", `{property: x, equals: 100}`, `{"x":"100"}`, false},
		{"boolean is no number", `{property: x, equals: 1}`, `{"x":true}`, false},
		{"object is no number", `{property: x, at_least: 0}`, `{"x":{"a":1}}`, false},
		{"array is no number", `{property: x, at_least: 0}`, `{"x":[1]}`, false},
		{"null is no number", `{property: x, at_most: 0}`, `{"x":null}`, false},
		{"beyond a double", `{property: x, greater_than: 1e308}`, `{"x":1e400}`, true},
		{"below minus a double", `{property: x, less_than: -1e308}`, `{"x":-1e400}`, true},
		{"in a range", `{property: x, greater_than: 2.4, less_than: 2.6}`,
			`{"x":25E-1}`, true},
		{"in one_of", `{property: x, one_of: [1, 2.5, '3']}`, `{"x":250e-2}`, true},
		{"array element", `{property: 'p[].n', equals: 3}`,
			`{"p":[{"n":"3"},{"n":3.0}]}`, true},
		{"bare array element", `{property: 'p[]', at_least: 5}`, `{"p":["9",4,true]}`,
			false},
		{"nested", `{property: a.b.c, equals: -12}`, `{"a":{"b":{"c":-1.2e1}}}`, true},
	})

	dbs := openEngines(t)
	for _, db := range dbs {
		mustStorePerson(t, db, 1, nil)
		for i, x := range []string{"1e2", "1.0", "-0", "25e-1", `"7"`, "true", "null",
			`{"a":1}`, "[3]", "-0.5E1", "1e300"} {
			storeRawEvent(t, db, int64(i+1), 1, "S", `{"x":`+x+`}`)
		}
		for i, v := range []string{"1e2", `"1e2"`, "1E+3"} {
			if i > 0 {
				mustStorePerson(t, db, int64(i+1), nil)
			}
			mustExec(t, db, `INSERT INTO traits (profile_id, key, value, ts_ms, message_id)
				VALUES (?, 'n', ?, 0, 'm')`, int64(i+1), v)
		}
	}
	for _, tt := range []struct {
		condition, attr, want string
	}{
		{"aggregate: {event: S, function: sum, property: x, less_than: 1e301}", "v",
			"1e+300"},
		{"aggregate: {event: S, function: sum, property: x, less_than: 1e200}", "", "[2 3]"},
		{"aggregate: {event: S, function: min, property: x, at_most: -5}", "v", "-5"},
		{"aggregate: {event: S, function: count, at_least: 11}", "v", "11"},
		{"aggregate: {event: S, function: avg, property: x, greater_than: 1e299, " +
			"round: 0}", "v", "1.6666666666666668e+299"},
		{"trait: {key: n, equals: 100}", "", "[1]"},
		{"trait: {key: n, at_least: 100}", "", "[1 3]"},
		{"trait: {key: n, one_of: [1000, '1e2']}", "", "[2 3]"},
	} {
		members := dbs.members(t, conditionDef(t, tt.condition+
			"\nattributes: {v: value}"))
		got := fmt.Sprint(memberIDsOf(members))
		if tt.attr != "" {
			got = fmt.Sprint(members[1][tt.attr])
		}
		if got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.condition, got, tt.want)
		}
	}
}

// TestAttackEventFiltersAgreeWithTraitFilters holds each value both as an
// event property and as a trait, and checks on each engine on its own that
// every filter passes the event exactly when it passes the trait: trait
// filters read the JSON with no test of the stored text before, so any
// event the stored-text test drops wrongly shows. The engines may read a
// value differently (SQLite reads 1e400 as "Inf", PostgreSQL as its
// digits); each must agree with itself.
func TestAttackEventFiltersAgreeWithTraitFilters(t *testing.T) {
	values := []string{`1e400`, `-1e400`, `1e-400`, `1e2`, `-0`, `15e-1`, `1e20`,
		`true`, `false`, `null`, `"Inf"`, `"\u0049nf"`, `"-inf"`, `"\u0053hoes"`, `"SHOES"`,
		`"\u003cb\u003e"`, `{"a":"Shoes"}`, `["Shoes"]`, `"e+20"`, `"K\u212a"`, `"nan"`}
	filters := []string{
		"equals: Inf", "equals: INF, ignore_case: true", "contains: inf, ignore_case: true",
		"starts_with: '-I'", "contains: nf", "equals: '100'", "equals: '0'",
		"contains: 'e+2'", "equals: '1.5'", "equals: 'true'", "one_of: [Shoes, Inf]",
		"equals: Shoes, ignore_case: true", "contains: '<b'", "equals: 100", "equals: 0",
		"not_equals: Shoes", "contains: k, ignore_case: true", "contains: NaN",
		"one_of: [x, '-Inf', 1], ignore_case: true", "starts_with: In",
	}
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		for i, v := range values {
			id := int64(i + 1)
			mustStorePerson(t, db, id, nil)
			storeRawEvent(t, db, id, id, "E", `{"x":`+v+`}`)
			mustExec(t, db, `INSERT INTO traits (profile_id, key, value, ts_ms, message_id)
				VALUES (?, 'x', ?, 0, 'm')`, id, v)
		}
		for _, f := range filters {
			onEvents := memberIDsOf(mustMembers(t, db, conditionDef(t,
				"performed: {event: E, where: [{property: x, "+f+"}]}")))
			onTraits := memberIDsOf(mustMembers(t, db, conditionDef(t,
				"trait: {key: x, "+f+"}")))
			if fmt.Sprint(onEvents) != fmt.Sprint(onTraits) {
				t.Errorf("%s: events of %v pass, traits of %v", f, onEvents, onTraits)
			}
		}
	})
}
