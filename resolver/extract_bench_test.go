package resolver_test

import (
	"regexp"
	"testing"

	"github.com/knit-cdp/knit/resolver"
)

// BenchmarkExtractIdentifiers measures identifier extraction alone (the
// message is parsed once, outside the loop): a typical track message from
// a phone under the default rules, and a message carrying every kind of
// identifier under rules with custom types and blocked values.
func BenchmarkExtractIdentifiers(b *testing.B) {
	configured := resolver.DefaultRules()
	configured.Custom = []resolver.CustomType{
		{Type: "phone", Keys: []string{"phone", "phoneNumber"}, Normaliser: "phone"},
		{Type: "loyalty_id", Keys: []string{"loyalty_id", "loyaltyId"}, Normaliser: "lower"},
	}
	configured.BlockedValues = []string{"user1234", "test@acme.test"}
	configured.BlockedPatterns = []*regexp.Regexp{regexp.MustCompile(`^test-`)}
	configured.BlockedPatternsByType = map[string][]*regexp.Regexp{
		"email": {regexp.MustCompile(`@example\.org$`)},
	}

	for _, c := range []struct {
		name  string
		rules resolver.Rules
		raw   string
		want  int
	}{
		{"track_default_rules", resolver.DefaultRules(), string(benchMessage(1)), 3},
		{"every_kind_configured", configured, everyKindMessage, 10},
	} {
		b.Run(c.name, func(b *testing.B) {
			m, err := resolver.ParseMessage([]byte(c.raw),
				resolver.Envelope{Source: "bench", ReceivedAt: fixedNow})
			if err != nil {
				b.Fatal(err)
			}
			if ids := c.rules.Extract(m); len(ids) != c.want {
				b.Fatalf("extracted %d identifiers, want %d: %v", len(ids), c.want, ids)
			}
			b.ReportAllocs()
			for b.Loop() {
				c.rules.Extract(m)
			}
		})
	}
}

// everyKindMessage is an identify carrying a user id, an anonymous id, two
// emails (one blocked), an iOS device id, push token and advertising id, a
// Google Analytics client id, an external id, a phone number and a
// loyalty id.
const everyKindMessage = `{"type":"identify","messageId":"every-1",
"timestamp":"2026-11-26T20:02:00.000Z","userId":"user-42","anonymousId":" anon-42 ",
"traits":{"email":"Jane.Doe@Example.com","phone":"+44 (0)20 7946 0018",
"loyaltyId":"GOLD-42"},
"integrations":{"Google Analytics":{"clientId":"123.456"}},
"context":{"traits":{"email":"jane@example.org"},
"device":{"id":"ios-42","token":"push-42","advertisingId":"idfa-42",
"adTrackingEnabled":true,"type":"ios"},
"externalIds":[{"id":"zd-42","type":"zendesk_id","collection":"users",
"encoding":"none"}]}}`
