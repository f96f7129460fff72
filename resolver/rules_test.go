package resolver_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// ruleCase ingests messages one by one under rules and expects the
// profiles (as sorted type:value lists) and history fragments given.
type ruleCase struct {
	name     string
	rules    func(*resolver.Rules)
	messages []string
	profiles []string // each: identifiers of one profile joined by " "
	history  []string // fragments that some profile's history must hold
}

func TestConfigurableRules(t *testing.T) {
	day := func(n int) string {
		return time.Date(2026, 11, n, 12, 0, 0, 0, time.UTC).Format(time.RFC3339)
	}
	cases := []ruleCase{
		{name: "a windowed limit counts only values seen within the window",
			rules: func(r *resolver.Rules) {
				r.Limits["anonymous_id"] = 2
				r.Windows["anonymous_id"] = 7 * 24 * time.Hour
			},
			messages: []string{
				`{"type":"track","messageId":"m1","userId":"u1","anonymousId":"a1",` +
					`"event":"E","timestamp":"` + day(1) + `"}`,
				`{"type":"track","messageId":"m2","userId":"u1","anonymousId":"a2",` +
					`"event":"E","timestamp":"` + day(20) + `"}`,
				`{"type":"track","messageId":"m3","userId":"u1","anonymousId":"a3",` +
					`"event":"E","timestamp":"` + day(21) + `"}`,
				`{"type":"track","messageId":"m4","userId":"u1","anonymousId":"a4",` +
					`"event":"E","timestamp":"` + day(22) + `"}`,
			},
			profiles: []string{"anonymous_id:a1 anonymous_id:a2 anonymous_id:a3 user_id:u1"},
			history: []string{"Did not add anonymous_id a4 from message m4: at most 2 " +
				"anonymous_id on a profile seen within 7 days"},
		},
		{name: "extra keys for a built-in type keep its normaliser",
			rules: func(r *resolver.Rules) {
				r.Custom = []resolver.CustomType{{Type: "email", Keys: []string{"email_address"}}}
			},
			messages: []string{
				`{"type":"identify","messageId":"m1","anonymousId":"a1",` +
					`"traits":{"email_address":" Jane@X.test "}}`,
				`{"type":"identify","messageId":"m2","anonymousId":"a2",` +
					`"traits":{"email":"jane@x.test"}}`,
			},
			profiles: []string{"anonymous_id:a1 anonymous_id:a2 email:jane@x.test"},
		},
		{name: "values blocked for one type, exactly or by pattern, stay off profiles",
			rules: func(r *resolver.Rules) {
				r.BlockedByType["email"] = []string{"team@acme.test"}
				r.BlockedPatternsByType = map[string][]*regexp.Regexp{
					"email": {regexp.MustCompile(`@example\.org$`)},
				}
				r.BlockedPatterns = []*regexp.Regexp{regexp.MustCompile(`^test-`)}
			},
			messages: []string{
				`{"type":"identify","messageId":"m1","userId":"u1",` +
					`"traits":{"email":"TEAM@acme.test"}}`,
				`{"type":"identify","messageId":"m2","userId":"u2",` +
					`"traits":{"email":"x@example.org"}}`,
				`{"type":"identify","messageId":"m3","userId":"test-9","anonymousId":"a3"}`,
			},
			profiles: []string{"user_id:u1", "user_id:u2", "anonymous_id:a3"},
			history: []string{"Ignored email team@acme.test in message m1: a blocked value " +
				"(blocked by identity.types.email.blocked)",
				"Ignored user_id test-9 in message m3: a blocked value (blocked by identity.blocked)"},
		},
		{name: "a custom phone type joins the same number written two ways",
			rules: func(r *resolver.Rules) {
				r.Custom = []resolver.CustomType{
					{Type: "phone", Keys: []string{"phone"}, Normaliser: "phone"},
				}
			},
			messages: []string{
				`{"type":"identify","messageId":"m1","anonymousId":"a1",` +
					`"traits":{"phone":"+44 20 7946 0000"}}`,
				`{"type":"track","messageId":"m2","userId":"u1","event":"E",` +
					`"context":{"traits":{"phone":"0044-20-7946-0000"}}}`,
			},
			profiles: []string{"anonymous_id:a1 phone:+442079460000 user_id:u1"},
		},
		{name: "an alias joins previousId to userId by default",
			messages: []string{
				`{"type":"track","messageId":"m1","anonymousId":"a1","event":"E"}`,
				`{"type":"track","messageId":"m2","userId":"u1","event":"E"}`,
				`{"type":"alias","messageId":"m3","userId":"u1","previousId":"a1"}`,
			},
			profiles: []string{"anonymous_id:a1 user_id:u1"},
		},
		{name: "an alias merges nothing when alias merges are off, as in Unify",
			rules: func(r *resolver.Rules) { r.AliasMerges = false },
			messages: []string{
				`{"type":"track","messageId":"m1","anonymousId":"a1","event":"E"}`,
				`{"type":"track","messageId":"m2","userId":"u1","event":"E"}`,
				`{"type":"alias","messageId":"m3","userId":"u1","previousId":"a1"}`,
			},
			profiles: []string{"anonymous_id:a1", "user_id:u1"},
		},
		{name: "a junk previousId on an alias joins nothing",
			rules: func(r *resolver.Rules) { r.AliasMerges = true },
			messages: []string{
				`{"type":"track","messageId":"m1","anonymousId":"undefined","userId":"u9",` +
					`"event":"E"}`,
				`{"type":"alias","messageId":"m2","userId":"u1","previousId":"undefined"}`,
			},
			profiles: []string{"user_id:u9", "user_id:u1"},
			history: []string{"Ignored previous_id undefined in message m2: a blocked value " +
				"(a junk placeholder)"},
		},
		{name: "an alias between two identified people never merges them",
			rules: func(r *resolver.Rules) { r.AliasMerges = true },
			messages: []string{
				`{"type":"track","messageId":"m1","userId":"u1","event":"E"}`,
				`{"type":"track","messageId":"m2","userId":"u2","event":"E"}`,
				`{"type":"alias","messageId":"m3","userId":"u2","previousId":"u1"}`,
			},
			profiles: []string{"user_id:u1", "user_id:u2"},
			history:  []string{"Did not add user_id u1 from message m3"},
		},
		{name: "the identifier cap keeps new identifiers off a full profile",
			rules: func(r *resolver.Rules) { r.MaxIdentifiers = 2 },
			messages: []string{
				`{"type":"track","messageId":"m1","userId":"u1","anonymousId":"a1","event":"E"}`,
				`{"type":"track","messageId":"m2","userId":"u1","anonymousId":"a2","event":"E"}`,
			},
			profiles: []string{"anonymous_id:a1 user_id:u1"},
			history: []string{"Did not add anonymous_id a2 from message m2: " +
				"at most 2 identifiers a profile."},
		},
		{name: "the identifier cap also keeps two full profiles from merging",
			rules: func(r *resolver.Rules) { r.MaxIdentifiers = 3 },
			messages: []string{
				`{"type":"track","messageId":"m1","anonymousId":"a1","event":"E",` +
					`"context":{"traits":{"email":"one@x.test"}}}`,
				`{"type":"track","messageId":"m2","anonymousId":"a2","event":"E",` +
					`"context":{"traits":{"email":"two@x.test"}}}`,
				`{"type":"track","messageId":"m3","anonymousId":"a1","event":"E",` +
					`"context":{"externalIds":[{"id":"a2","type":"anonymous_id"}]}}`,
			},
			profiles: []string{"anonymous_id:a1 email:one@x.test",
				"anonymous_id:a2 email:two@x.test"},
			history: []string{"Not merged with profile 2 although message m3 tied them: " +
				"at most 3 identifiers a profile."},
		},
		{name: "the merge cap keeps profiles apart and the message lands all the same",
			rules: func(r *resolver.Rules) { r.MaxMerges = 1 },
			messages: []string{
				`{"type":"track","messageId":"m1","anonymousId":"a1","event":"E"}`,
				`{"type":"track","messageId":"m2","anonymousId":"a2","event":"E"}`,
				`{"type":"track","messageId":"m3","anonymousId":"a3","event":"E"}`,
				`{"type":"track","messageId":"m4","userId":"u1","anonymousId":"a1",` +
					`"context":{"traits":{"email":"e@x.test"}},"event":"E"}`,
				`{"type":"track","messageId":"m5","anonymousId":"a1","context":` +
					`{"externalIds":[{"id":"a2","type":"anonymous_id"},` +
					`{"id":"a3","type":"anonymous_id"}]},"event":"E"}`,
			},
			profiles: []string{"anonymous_id:a1 anonymous_id:a2 email:e@x.test user_id:u1",
				"anonymous_id:a3"},
			history: []string{"Not merged with profile 3 although message m5 tied them: " +
				"at most 1 merges a profile."},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { checkRuleCase(t, tc) })
	}
}

func checkRuleCase(t *testing.T, tc ruleCase) {
	t.Helper()
	db := sqltest.MustOpen(t)
	rules := resolver.DefaultRules()
	if tc.rules != nil {
		tc.rules(&rules)
	}
	if err := rules.Validate(); err != nil {
		t.Fatalf("rules: %v", err)
	}
	clock := func() time.Time { return time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC) }
	mustIngestEach(t, resolver.NewStore(db, rules, clock, nil), tc.messages...)

	var got []string
	for _, ids := range mustIdentities(t, db) {
		got = append(got, strings.Join(ids, " "))
	}
	if !sameSet(got, tc.profiles) {
		t.Errorf("profiles:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "),
			strings.Join(tc.profiles, "\n  "))
	}

	history := allHistory(t, db)
	for _, want := range tc.history {
		if !strings.Contains(history, want) {
			t.Errorf("history lacks %q:\n%s", want, history)
		}
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		seen[s]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

func allHistory(t *testing.T, db interface {
	Select(any, string, ...any) error
}) string {
	t.Helper()
	var records []resolver.DecisionRecord
	err := db.Select(&records, `SELECT id, profile_id, kind, message_id, identifier,
		other_profile_id, rule, detail, event_ms, at_ms FROM identity_decisions ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, r := range records {
		lines = append(lines, r.Explain())
	}
	return strings.Join(lines, "\n")
}

func TestFindNormalisesCustomTypes(t *testing.T) {
	db := sqltest.MustOpen(t)
	rules := resolver.DefaultRules()
	rules.Custom = []resolver.CustomType{{Type: "phone", Keys: []string{"phone"},
		Normaliser: "phone"}}
	clock := func() time.Time { return time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC) }
	mustIngestEach(t, resolver.NewStore(db, rules, clock, nil),
		`{"type":"identify","messageId":"m1","userId":"u1","traits":{"phone":"+33 6 12 34 56 78"}}`)

	profiles := resolver.NewProfiles(db).WithRules(rules)
	if _, err := profiles.Find(t.Context(),
		resolver.Identifier{Type: "phone", Value: "0033 612-345-678"}); err != nil {
		t.Errorf("a phone number written another way: %v", err)
	}
}

func TestInvisibleAndControlValuesAreNeverIdentifiers(t *testing.T) {
	rules := resolver.DefaultRules()
	for _, value := range []string{"\u200b", "\ufeff", "\u200b \ufeff", "ab\u0085c",
		"x\u009by", "nul\x00"} {
		if !rules.Blocked(value) {
			t.Errorf("%q is used as an identifier", value)
		}
	}
	rules.Custom = []resolver.CustomType{{Type: "phone", Keys: []string{"phone"},
		Normaliser: "phone"}}
	rules.BlockedByType["phone"] = []string{"+1 555 010 0000"}
	ids := rules.Extract(mustParseMessage(t,
		`{"type":"identify","userId":"u1","traits":{"phone":"+1 (555) 010-0000 "}}`))
	for _, id := range ids {
		if id.Type == "phone" {
			t.Errorf("a blocked phone written another way was kept: %v", id)
		}
	}
}
