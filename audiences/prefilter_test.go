package audiences

import (
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver/sqldb"
)

// TestRawNeedles checks which filters may be tested on the stored text
// first: only those whose text no number or boolean can read as.
func TestRawNeedles(t *testing.T) {
	text := func(s string) *string { return &s }
	cases := []struct {
		name   string
		filter Filter
		want   []string
	}{
		{"equals a word", Filter{Equals: "Shoes"}, []string{"Shoes"}},
		{"folded", Filter{Equals: "Shoes", IgnoreCase: true}, []string{"shoes"}},
		{"one_of words", Filter{OneOf: []any{"Boots", "Shoes"}}, []string{"Boots", "Shoes"}},
		{"contains", Filter{Contains: text("hoe")}, []string{"hoe"}},
		{"starts_with", Filter{StartsWith: text("Sho")}, []string{"Sho"}},
		{"number-like text", Filter{Equals: "100"}, nil},
		{"exponent", Filter{Equals: "1E+5", IgnoreCase: true}, nil},
		{"SQLite's infinity", Filter{Equals: "-Inf"}, nil},
		{"boolean text", Filter{Equals: "TRUE", IgnoreCase: true}, nil},
		{"boolean", Filter{Equals: true}, nil},
		{"number", Filter{Equals: 100}, nil},
		{"one_of with a number", Filter{OneOf: []any{"Shoes", 7}}, nil},
		{"one_of with number-like text", Filter{OneOf: []any{"Shoes", "7"}}, nil},
		{"contains a digit", Filter{Contains: text("1")}, nil},
		{"empty", Filter{Equals: ""}, nil},
		{"not_equals", Filter{NotEquals: "Shoes"}, nil},
		{"exists", Filter{Exists: new(bool)}, nil},
	}
	for _, tt := range cases {
		got, ok := rawNeedles(tt.filter)
		if ok != (tt.want != nil) || strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("%s: got %q (%v), want %q", tt.name, got, ok, tt.want)
		}
	}
}

// TestTextFiltersReadStoredTextFirst checks that shoe_reorder's category
// filter is compiled with its test of the stored text, on both dialects.
func TestTextFiltersReadStoredTextFirst(t *testing.T) {
	def := builtin(t, "shoe_reorder")
	for name, d := range map[string]dialect{"sqlite": sqliteDialect{}, "postgres": postgresDialect{}} {
		compiled, err := compile(def, testNow(), d)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, arg := range compiled.args {
			found = found || arg == "shoes"
		}
		if !found {
			t.Errorf("%s: no test of the stored text for %q among %v", name, "shoes",
				compiled.args)
		}
	}
}

// TestPrefilterNeverDropsAMatch stores properties as raw text, written
// with the escapes other senders and Go's encoder use, and checks that
// each filter still matches (and still refuses) exactly as reading the
// JSON does, on each engine.
func TestPrefilterNeverDropsAMatch(t *testing.T) {
	cases := []struct {
		name, where, stored string
		member              bool
	}{
		{"escaped letter, folded", "{property: c, equals: Shoes, ignore_case: true}",
			`{"c":"\u0053HOES"}`, true},
		{"escaped letter, exact", "{property: c, equals: Shoes}",
			`{"c":"\u0053hoes"}`, true},
		{"Go's escaped ampersand", "{property: c, equals: 'Shoes & Socks'}",
			`{"c":"Shoes \u0026 Socks"}`, true},
		{"one_of, folded", "{property: c, one_of: [Boots, Shoes], ignore_case: true}",
			`{"c":"sHOES"}`, true},
		{"contains across an escape", "{property: c, contains: hoe}",
			`{"c":"Sh\u006fes"}`, true},
		{"starts_with before an escaped slash", "{property: c, starts_with: 'Sho/'}",
			`{"c":"Sho\/es"}`, true},
		{"in an array element", "{property: 'products[].category', equals: Shoes, " +
			"ignore_case: true}", `{"products":[{"category":"Socks"},{"category":"sHoEs"}]}`,
			true},
		{"number-like text against a number", "{property: x, equals: '100'}",
			`{"x":1e2}`, true},
		{"boolean text against a boolean", "{property: x, equals: 'true'}",
			`{"x":true}`, true},
		{"another word", "{property: c, equals: Shoes, ignore_case: true}",
			`{"c":"Socks"}`, false},
		{"the word only as a key", "{property: c, equals: Shoes, ignore_case: true}",
			`{"shoes":"x","c":"Socks"}`, false},
		{"the word in another property", "{property: c, equals: Shoes}",
			`{"d":"Shoes","c":"Socks"}`, false},
		{"case differs, exact", "{property: c, equals: Shoes}", `{"c":"shoes"}`, false},
	}
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		for i, tt := range cases {
			profile := int64(i + 1)
			mustStorePerson(t, db, profile, nil)
			mustExec(t, db, `INSERT INTO events (id, message_id, source, type, event,
				profile_id, ts_ms, received_ms, properties, raw)
				VALUES (?, ?, 'test', 'track', 'E', ?, ?, ?, ?, '{}')`,
				profile, "m"+tt.name, profile, ago(time.Hour).UnixMilli(),
				ago(time.Hour).UnixMilli(), tt.stored)
		}
		for i, tt := range cases {
			def := conditionDef(t, "performed: {event: E, where: ["+tt.where+"]}")
			_, got := mustMembers(t, db, def)[int64(i+1)]
			if got != tt.member {
				t.Errorf("%s: member = %v, want %v (%s on %s)", tt.name, got, tt.member,
					tt.where, tt.stored)
			}
		}
	})
}

// TestIgnoreCaseFoldsOnlyAToZ pins the fold both engines share, whatever
// PostgreSQL's locale: A-Z and nothing else, in filters and in the
// stored-text test before them.
func TestIgnoreCaseFoldsOnlyAToZ(t *testing.T) {
	where := func(test string) string {
		return "performed: {event: E, where: [{property: c, " + test + ", ignore_case: true}]}"
	}
	c := func(value string) []testEvent { return []testEvent{ev("E", ago(day), "c", value)} }
	runMembership(t, []memberCase{
		{"ASCII letters fold", where("equals: 'ÉCOLE IS'"), c("École is"), true},
		{"accented capitals do not", where("equals: 'école'"), c("ÉCOLE"), false},
		{"dotted capital I does not", where("equals: 'istanbul'"), c("İstanbul"), false},
		{"capital I folds to i", where("equals: 'istanbul'"), c("Istanbul"), true},
		{"sharp s stays", where("one_of: [strasse]"), c("STRAßE"), false},
		{"contains through an accent", where("contains: 'ÉE'"), c("éÉe"), true},
		{"starts_with across cases", where("starts_with: 'sIGMA Σ'"), c("Sigma Σ and"), true},
	})
}
