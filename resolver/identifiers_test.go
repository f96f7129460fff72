package resolver_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
)

// mustParseMessage parses one raw Segment message as the webhook would
// receive it, failing the test when knit rejects it.
func mustParseMessage(t testing.TB, raw string) *resolver.Message {
	t.Helper()
	env := resolver.Envelope{
		Source:      "test",
		ReceivedAt:  time.Date(2026, 12, 4, 15, 8, 0, 0, time.UTC),
		AllowDelete: true, // as on the webhook
	}
	m, err := resolver.ParseMessage([]byte(raw), env)
	if err != nil {
		t.Fatalf("parse %s: %v", raw, err)
	}
	return m
}

// identifierStrings renders identifiers as type:value, keeping their order.
func identifierStrings(ids []resolver.Identifier) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}

func TestExtractReadsSegmentIdentifiers(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want []string
	}{
		{
			name: "userId and anonymousId become user_id and anonymous_id",
			raw:  `{"type":"track","event":"E","userId":"u1","anonymousId":"a1"}`,
			want: []string{"user_id:u1", "anonymous_id:a1"},
		},
		{
			name: "userId and anonymousId are trimmed",
			raw:  `{"type":"track","event":"E","userId":" u1 ","anonymousId":"\ta1 "}`,
			want: []string{"user_id:u1", "anonymous_id:a1"},
		},
		{
			name: "numeric userId is read as its text",
			raw:  `{"type":"track","event":"E","userId":12345}`,
			want: []string{"user_id:12345"},
		},
		{
			name: "identify traits.email is trimmed and lower-cased",
			raw: `{"type":"identify","userId":"u1",
				"traits":{"email":"  Jane.Doe@Example.COM "}}`,
			want: []string{"user_id:u1", "email:jane.doe@example.com"},
		},
		{
			name: "context.traits.email is read on a track call",
			raw: `{"type":"track","event":"E","anonymousId":"a1",
				"context":{"traits":{"email":"Jane@Example.com"}}}`,
			want: []string{"email:jane@example.com", "anonymous_id:a1"},
		},
		{
			name: "context.traits.email is read on a group call",
			raw: `{"type":"group","groupId":"g1","userId":"u1",
				"context":{"traits":{"email":"jane@example.com"}}}`,
			want: []string{"user_id:u1", "email:jane@example.com"},
		},
		{
			name: "group call traits.email is the group's and not an identifier",
			raw: `{"type":"group","groupId":"g1","userId":"u1",
				"traits":{"email":"team@example.com"}}`,
			want: []string{"user_id:u1"},
		},
		{
			name: "the same email in traits and context.traits is listed once",
			raw: `{"type":"identify","userId":"u1","traits":{"email":"JANE@example.com"},
				"context":{"traits":{"email":" jane@example.com"}}}`,
			want: []string{"user_id:u1", "email:jane@example.com"},
		},
		{
			name: "two different emails are both kept in message order",
			raw: `{"type":"identify","userId":"u1","traits":{"email":"b@example.com"},
				"context":{"traits":{"email":"a@example.com"}}}`,
			want: []string{"user_id:u1", "email:b@example.com", "email:a@example.com"},
		},
		{
			name: "ios device id becomes ios.id",
			raw: `{"type":"track","event":"E","anonymousId":"a1",
				"context":{"device":{"type":"ios","id":"D-1"}}}`,
			want: []string{"anonymous_id:a1", "ios.id:D-1"},
		},
		{
			name: "device type is matched whatever its case",
			raw: `{"type":"track","event":"E","anonymousId":"a1",
				"context":{"device":{"type":"iOS","id":"D-1"}}}`,
			want: []string{"anonymous_id:a1", "ios.id:D-1"},
		},
		{
			name: "android device id becomes android.id",
			raw: `{"type":"track","event":"E","anonymousId":"a1",
				"context":{"device":{"type":"android","id":"D-2"}}}`,
			want: []string{"android.id:D-2", "anonymous_id:a1"},
		},
		{
			name: "a device of another type gives no device identifier",
			raw: `{"type":"track","event":"E","anonymousId":"a1",
				"context":{"device":{"type":"web","id":"D-3","token":"T"}}}`,
			want: []string{"anonymous_id:a1"},
		},
		{
			name: "ios advertising id is read when ad tracking is enabled",
			raw: `{"type":"track","event":"E","anonymousId":"a1","context":{"device":
				{"type":"ios","advertisingId":"AD-1","adTrackingEnabled":true}}}`,
			want: []string{"anonymous_id:a1", "ios.idfa:AD-1"},
		},
		{
			name: "android advertising id is read when ad tracking is enabled",
			raw: `{"type":"track","event":"E","anonymousId":"a1","context":{"device":
				{"type":"android","advertisingId":"AD-2","adTrackingEnabled":true}}}`,
			want: []string{"android.idfa:AD-2", "anonymous_id:a1"},
		},
		{
			name: "advertising id is ignored when ad tracking is disabled",
			raw: `{"type":"track","event":"E","anonymousId":"a1","context":{"device":
				{"type":"ios","advertisingId":"AD-1","adTrackingEnabled":false}}}`,
			want: []string{"anonymous_id:a1"},
		},
		{
			name: "advertising id is ignored when ad tracking is not stated",
			raw: `{"type":"track","event":"E","anonymousId":"a1","context":{"device":
				{"type":"android","advertisingId":"AD-2"}}}`,
			want: []string{"anonymous_id:a1"},
		},
		{
			name: "advertising id is ignored when ad tracking is the string true",
			raw: `{"type":"track","event":"E","anonymousId":"a1","context":{"device":
				{"type":"ios","advertisingId":"AD-1","adTrackingEnabled":"true"}}}`,
			want: []string{"anonymous_id:a1"},
		},
		{
			name: "ios device token becomes ios.push_token",
			raw: `{"type":"track","event":"E","anonymousId":"a1",
				"context":{"device":{"type":"ios","token":"PUSH-1"}}}`,
			want: []string{"anonymous_id:a1", "ios.push_token:PUSH-1"},
		},
		{
			name: "android device token becomes android.push_token",
			raw: `{"type":"track","event":"E","anonymousId":"a1",
				"context":{"device":{"type":"android","token":"PUSH-2"}}}`,
			want: []string{"android.push_token:PUSH-2", "anonymous_id:a1"},
		},
		{
			name: "Google Analytics clientId in integrations becomes ga_client_id",
			raw: `{"type":"page","anonymousId":"a1",
				"integrations":{"Google Analytics":{"clientId":"GA.1"}}}`,
			want: []string{"anonymous_id:a1", "ga_client_id:GA.1"},
		},
		{
			name: "Google Analytics clientId in context.integrations becomes ga_client_id",
			raw: `{"type":"page","anonymousId":"a1",
				"context":{"integrations":{"Google Analytics":{"clientId":"GA.2"}}}}`,
			want: []string{"anonymous_id:a1", "ga_client_id:GA.2"},
		},
		{
			name: "externalIds of the users collection are read with a lower-case type",
			raw: `{"type":"track","event":"E","userId":"u1","context":{"externalIds":[
				{"id":"+33 6 00","type":"Phone","collection":"users","encoding":"none"}]}}`,
			want: []string{"user_id:u1", "phone:+33 6 00"},
		},
		{
			name: "externalIds of other collections are ignored",
			raw: `{"type":"track","event":"E","userId":"u1","context":{"externalIds":[
				{"id":"acct-9","type":"account_id","collection":"accounts"}]}}`,
			want: []string{"user_id:u1"},
		},
		{
			name: "externalIds without a type are ignored",
			raw: `{"type":"track","event":"E","userId":"u1","context":{"externalIds":[
				{"id":"x-1","collection":"users"}]}}`,
			want: []string{"user_id:u1"},
		},
		{
			name: "blocked values are left out",
			raw: `{"type":"identify","userId":"u1","anonymousId":"undefined",
				"traits":{"email":"null"},"context":{"device":{"type":"ios",
				"id":"00000000-0000-0000-0000-000000000000","token":"-1"}}}`,
			want: []string{"user_id:u1"},
		},
	}

	rules := resolver.DefaultRules()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := identifierStrings(rules.Extract(mustParseMessage(t, tt.raw)))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestExtractOrdersUserIDThenEmailThenTheRestAlphabetically(t *testing.T) {
	raw := `{"type":"identify","anonymousId":"a1","userId":"u1",
		"traits":{"email":"jane@example.com"},
		"integrations":{"Google Analytics":{"clientId":"GA.1"}},
		"context":{
			"device":{"type":"ios","id":"D-1","token":"PUSH-1",
				"advertisingId":"AD-1","adTrackingEnabled":true},
			"externalIds":[
				{"id":"z-1","type":"zendesk_id","collection":"users"},
				{"id":"n-1","type":"account_number","collection":"users"}]}}`
	want := []string{
		"user_id:u1",
		"email:jane@example.com",
		"account_number:n-1",
		"anonymous_id:a1",
		"ga_client_id:GA.1",
		"ios.id:D-1",
		"ios.idfa:AD-1",
		"ios.push_token:PUSH-1",
		"zendesk_id:z-1",
	}

	got := identifierStrings(resolver.DefaultRules().Extract(mustParseMessage(t, raw)))
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestBlockedValues(t *testing.T) {
	tests := []struct {
		name  string
		value string
		want  bool
	}{
		{name: "empty value is blocked", value: "", want: true},
		{name: "blank value is blocked", value: "  ", want: true},
		{name: "null is blocked", value: "null", want: true},
		{name: "NULL in capitals is blocked", value: "NULL", want: true},
		{name: "undefined is blocked", value: "undefined", want: true},
		{name: "None is blocked", value: "None", want: true},
		{name: "NaN is blocked", value: "NaN", want: true},
		{name: "anonymous is blocked", value: "Anonymous", want: true},
		{name: "[object Object] is blocked", value: "[object Object]", want: true},
		{name: "-1 is blocked", value: "-1", want: true},
		{name: "true is blocked", value: "true", want: true},
		{name: "FALSE is blocked", value: "FALSE", want: true},
		{name: "a single zero is blocked", value: "0", want: true},
		{name: "zeros and dashes are blocked", value: "000-000", want: true},
		{
			name:  "the all-zero UUID is blocked",
			value: "00000000-0000-0000-0000-000000000000",
			want:  true,
		},
		{name: "a padded junk value is blocked", value: " undefined ", want: true},
		{name: "a NUL byte inside is blocked", value: "ab\x00cd", want: true},
		{name: "a tab inside is blocked", value: "ab\tcd", want: true},
		{name: "a newline inside is blocked", value: "ab\ncd", want: true},
		{name: "a DEL character inside is blocked", value: "ab\x7fcd", want: true},
		{name: "a configured extra value is blocked", value: "void", want: true},
		{name: "a configured extra value is blocked in any case", value: "VOID", want: true},
		{name: "a configured extra is matched case-insensitively", value: "abc123", want: true},
		{name: "zero followed by a letter is kept", value: "0a", want: false},
		{name: "an id with a dash is kept", value: "user-1", want: false},
		{name: "minus two is kept", value: "-2", want: false},
		{name: "one is kept", value: "1", want: false},
		{name: "a word containing null is kept", value: "nullable", want: false},
		{
			name:  "a UUID that is not all zeros is kept",
			value: "00000000-0000-0000-0000-000000000001",
			want:  false,
		},
		{name: "an email is kept", value: "jane@example.com", want: false},
	}

	rules := resolver.DefaultRules()
	rules.BlockedValues = []string{"void", "ABC123"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rules.Blocked(tt.value); got != tt.want {
				t.Errorf("Blocked(%q) = %v, want %v", tt.value, got, tt.want)
			}
		})
	}
}

func TestExtractDropsConfiguredBlockedValues(t *testing.T) {
	rules := resolver.DefaultRules()
	rules.BlockedValues = []string{"void"}
	m := mustParseMessage(t, `{"type":"identify","userId":"VOID","anonymousId":"a1",
		"traits":{"email":"Void"}}`)

	got := identifierStrings(rules.Extract(m))
	want := []string{"anonymous_id:a1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
