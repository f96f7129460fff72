package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mustWriteConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "knit.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadSettingsRejectsContradictions(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want []string // every fragment must appear in the error
	}{
		{"an unknown key is named", "identity:\n  limitz: {}\n",
			[]string{`line 2: unknown key "limitz"`}},
		{"an unknown key of an audience is named in the file's terms", `audiences:
  - name: a
    colour: red
    condition: {performed: {event: A}}
`, []string{`line 3: unknown key "colour"`}},
		{"a limit below one is named", "identity:\n  limits: {email: 0}\n",
			[]string{"identity.limits.email"}},
		{"a repeated priority entry is named", "identity:\n  priority: [email, email]\n",
			[]string{"identity.priority", "email"}},
		{"a bad schedule names the audience", `audiences:
  - name: weekly
    schedule: "every tuesday"
    condition: {performed: {event: A}}
`, []string{"audiences.weekly.schedule"}},
		{"an audience without a rule is named", "audiences:\n  - name: empty\n",
			[]string{"audiences.empty.condition is required"}},
		{"a missing event name is named", `audiences:
  - name: runners
    condition: {aggregate: {function: sum, property: distance, at_least: 10}}
`, []string{"audiences.runners.condition.aggregate.event is required"}},
		{"a bad duration is named", `audiences:
  - name: carts
    condition: {performed: {event: A, within: soon}}
`, []string{"duration", "soon"}},
		{"an audience defined twice is named", `audiences:
  - name: twice
    condition: {performed: {event: A}}
  - name: twice
    condition: {performed: {event: B}}
`, []string{"line 4", `"twice" is already defined on line 2`}},
		{"an unknown frequency is named", "identity:\n  types:\n    email: {frequency: hourly}\n",
			[]string{"identity.types.email.frequency", "hourly"}},
		{"a pattern that does not compile is named",
			"identity:\n  blocked: [\"/(/\"]\n  types:\n    email: {blocked: [\"/[/\"]}\n",
			[]string{"identity.blocked[0]", "identity.types.email.blocked[0]"}},
		{"an unknown type in the priority list is named",
			"identity:\n  priority: [user_id, emial]\n",
			[]string{"identity.priority", "emial"}},
		{"a custom type without keys is named",
			"identity:\n  types:\n    loyalty_id: {normaliser: lower}\n",
			[]string{"identity.types.loyalty_id.keys"}},
		{"an unknown normaliser is named",
			"identity:\n  types:\n    phone: {keys: [phone], normaliser: e164}\n",
			[]string{"identity.types.phone.normaliser", "e164"}},
		{"a limit set twice is named",
			"identity:\n  limits: {email: 2}\n  types:\n    email: {limit: 3}\n",
			[]string{"identity.limits.email and identity.types.email.limit"}},
		{"one type named twice in different case is named",
			"identity:\n  types:\n    Phone: {keys: [phone]}\n    phone: {keys: [tel]}\n",
			[]string{`"Phone" and "phone"`}},
		{"a destination without a host is named", `audiences:
  - name: shoe_reorder
    destinations: [{url: "http://"}, {url: "http://127.0.0.1/x", give_up_after: -5h}]
`, []string{"audiences.shoe_reorder.destinations[0].url",
			"audiences.shoe_reorder.destinations[1].give_up_after"}},
		{"two problems are reported together", `identity:
  default_limit: 0
audiences:
  - name: BadName
    condition: {performed: {event: A, between: [2h, 2h]}}
`, []string{"identity.default_limit", "BadName", "between"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadSettings(mustWriteConfig(t, tc.yaml))
			if err == nil {
				t.Fatal("loadSettings accepted a bad config")
			}
			for _, fragment := range tc.want {
				if !strings.Contains(err.Error(), fragment) {
					t.Errorf("error %q does not mention %q", err, fragment)
				}
			}
			if strings.Contains(err.Error(), "not found in type") {
				t.Errorf("error %q names a Go type", err)
			}
		})
	}
}

func TestLoadSettingsLaysConfigOverDefaults(t *testing.T) {
	path := mustWriteConfig(t, `identity:
  limits: {email: 2}
  blocked_values: [user1234]
audiences:
  - name: cart_abandonment
    schedule: "0 * * * *"
    condition:
      then_not:
        first: {event: Added, key: sku}
        not_followed_by: [{event: Paid, key: "items[].sku"}]
        between: [2d, 30m]
`)
	got, err := loadSettings(path)
	if err != nil {
		t.Fatal(err)
	}

	if got.Rules.Limit("email") != 2 || got.Rules.Limit("user_id") != 1 ||
		got.Rules.Limit("ios.id") != 5 {
		t.Errorf("limits: email %d user_id %d ios.id %d", got.Rules.Limit("email"),
			got.Rules.Limit("user_id"), got.Rules.Limit("ios.id"))
	}
	if !got.Rules.Blocked("USER1234") || got.Rules.Blocked("user12345") {
		t.Error("blocked_values not applied case-insensitively and exactly")
	}
	if len(got.Audiences) != 2 {
		t.Fatalf("got %d audiences, want the two built-ins", len(got.Audiences))
	}
	cart := got.Audiences[0]
	seq := cart.Condition.ThenNot
	if cart.Name != "cart_abandonment" || cart.Schedule != "0 * * * *" ||
		seq == nil || seq.First.Event != "Added" || len(seq.NotFollowedBy) != 1 ||
		time.Duration(seq.Between[0]) != 48*time.Hour {
		t.Errorf("cart_abandonment not overridden: %+v %+v", cart, seq)
	}
	if len(cart.Attributes()) != 0 {
		t.Errorf("attributes %v: a condition given replaces the built-in's whole",
			cart.Attributes())
	}
	if got.Audiences[1].Name != "shoe_reorder" || got.Audiences[1].Condition == nil {
		t.Errorf("shoe_reorder built-in lost: %+v", got.Audiences[1])
	}
}

func TestLoadSettingsWithoutFileUsesBuiltins(t *testing.T) {
	got, err := loadSettings("")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Audiences) != 2 || got.Rules.Limit("user_id") != 1 {
		t.Errorf("defaults: %d audiences, user_id limit %d",
			len(got.Audiences), got.Rules.Limit("user_id"))
	}
}

func TestClockStartsAtTheGivenTimeAndRuns(t *testing.T) {
	now, err := clock("2026-11-27T12:00:00Z")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	if got := now(); got.Before(start) || got.After(start.Add(time.Minute)) {
		t.Errorf("clock reads %v, want just after %v", got, start)
	}
	if _, err := clock("next tuesday"); err == nil {
		t.Error("clock accepted a non-time")
	}
}

func TestOverridingABuiltinNeedsOnlyWhatChanges(t *testing.T) {
	got, err := loadSettings(mustWriteConfig(t, `audiences:
  - name: cart_abandonment
    schedule: "*/5 * * * *"
  - name: shoe_reorder
    condition:
      performed: {event: Order Completed}
`))
	if err != nil {
		t.Fatal(err)
	}
	cart := got.Audiences[0]
	if cart.Schedule != "*/5 * * * *" || cart.Description == "" ||
		cart.Condition.ThenNot == nil || !cart.NeedsEmail() {
		t.Errorf("schedule %q, description %q, condition %+v: want the new schedule "+
			"over the built-in's other settings", cart.Schedule, cart.Description,
			cart.Condition)
	}
	shoes := got.Audiences[1]
	if shoes.Condition.Aggregate != nil || shoes.Condition.Performed == nil ||
		shoes.Description == "" {
		t.Errorf("shoe_reorder condition %+v: want the given one in place of the "+
			"built-in's, the rest kept", shoes.Condition)
	}
}

func TestIdentityConfigSetsEveryRule(t *testing.T) {
	got, err := loadSettings(mustWriteConfig(t, `identity:
  types:
    anonymous_id: {limit: 3, frequency: weekly}
    email: {blocked: ["team@acme.test", "/@example\\.org$/"]}
    phone: {keys: [phone, phoneNumber], normaliser: phone, limit: 2}
  priority: [user_id, email, phone]
  blocked: ["/^test-/"]
  alias_merges: true
  max_merges: 50
  max_identifiers: 500
`))
	if err != nil {
		t.Fatal(err)
	}
	r := got.Rules
	if r.Limit("anonymous_id") != 3 || r.Windows["anonymous_id"] != 7*24*time.Hour ||
		r.Limit("phone") != 2 {
		t.Errorf("limits and windows: %v %v", r.Limits, r.Windows)
	}
	if len(r.Custom) != 1 || r.Custom[0].Type != "phone" || len(r.Custom[0].Keys) != 2 {
		t.Errorf("custom types: %+v", r.Custom)
	}
	if !r.AliasMerges || r.MaxMerges != 50 || r.MaxIdentifiers != 500 {
		t.Errorf("alias %v, caps %d %d", r.AliasMerges, r.MaxMerges, r.MaxIdentifiers)
	}
	if len(r.BlockedPatterns) != 1 || len(r.BlockedByType["email"]) != 1 ||
		len(r.BlockedPatternsByType["email"]) != 1 {
		t.Errorf("blocks: %v %v %v", r.BlockedPatterns, r.BlockedByType, r.BlockedPatternsByType)
	}
}
