package webhook_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/webhook"
)

func TestTrackingAPIWriteKeys(t *testing.T) {
	keys := []string{"wk-live", "wk-other"}
	trackBody := []byte(track("m1"))
	withKey := func(key string) []byte {
		return []byte(`{"userId":"u1","event":"E","messageId":"m1","writeKey":` + key + `}`)
	}

	tests := []struct {
		name      string
		keys      []string
		path      string
		body      []byte
		user      string            // Basic user name
		header    map[string]string // extra headers
		wantKey   string            // the key the event is stored under; "" when refused
		wantParts []string          // what the 401 names
	}{
		{"write key as the Basic user name is accepted", keys, "/v1/track", trackBody,
			"wk-live", nil, "wk-live", nil},
		{"any configured write key is accepted", keys, "/v1/track", trackBody,
			"wk-other", nil, "wk-other", nil},
		{"write key in the body is accepted", keys, "/v1/track", withKey(`"wk-live"`),
			"", nil, "wk-live", nil},
		{"write key in a batch body is accepted", keys, "/v1/batch",
			[]byte(`{"writeKey":"wk-live","batch":[` + track("m1") + `]}`),
			"", nil, "wk-live", nil},
		{"write key as the Basic user name on a batch is accepted", keys, "/v1/batch",
			batchBody(track("m1")), "wk-other", nil, "wk-other", nil},
		{"write key as the Basic user name on an import is accepted", keys, "/v1/import",
			batchBody(track("m1")), "wk-live", nil, "wk-live", nil},
		{"a bearer token with the write key in the body is accepted", keys, "/v1/track",
			withKey(`"wk-live"`), "", map[string]string{"Authorization": "Bearer tok"},
			"wk-live", nil},
		{"wrong Basic write key is refused", keys, "/v1/track", trackBody,
			"wk-wrong", nil, "", []string{"write key is not valid"}},
		{"wrong body write key is refused", keys, "/v1/track", withKey(`"wk-wrong"`),
			"", nil, "", []string{"write key is not valid"}},
		{"a write key in another case is refused", keys, "/v1/track", trackBody,
			"WK-LIVE", nil, "", []string{"write key is not valid"}},
		{"a prefix of a write key is refused", keys, "/v1/track", trackBody,
			"wk-liv", nil, "", []string{"write key is not valid"}},
		{"wrong Basic key is not rescued by a right body key", keys, "/v1/track",
			withKey(`"wk-live"`), "wk-wrong", nil, "", []string{"write key is not valid"}},
		{"wrong batch write key is refused", keys, "/v1/batch",
			[]byte(`{"writeKey":"nope","batch":[` + track("m1") + `]}`),
			"", nil, "", []string{"write key is not valid"}},
		{"no write key is refused", keys, "/v1/track", trackBody,
			"", nil, "", []string{"write key is required"}},
		{"no write key on a batch is refused", keys, "/v1/batch", batchBody(track("m1")),
			"", nil, "", []string{"write key is required"}},
		{"a bearer token alone is refused", keys, "/v1/track", trackBody,
			"", map[string]string{"Authorization": "Bearer wk-live"}, "",
			[]string{"write key is required"}},
		{"a numeric body write key is refused", keys, "/v1/track", withKey(`123`),
			"", nil, "", []string{"write key is required"}},
		{"no configured write keys refuses a call", nil, "/v1/track", trackBody,
			"wk-live", nil, "", []string{"KNIT_WRITE_KEYS"}},
		{"no configured write keys refuses a body key", nil, "/v1/identify",
			withKey(`"wk-live"`), "", nil, "", []string{"KNIT_WRITE_KEYS"}},
		{"no configured write keys refuses a batch", nil, "/v1/batch",
			batchBody(track("m1")), "wk-live", nil, "", []string{"KNIT_WRITE_KEYS"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustServer(t, webhook.Config{WriteKeys: tt.keys})

			rec := mustPost(t, s, call{path: tt.path, body: tt.body, user: tt.user,
				header: tt.header})

			if tt.wantKey == "" {
				mustFail(t, rec, http.StatusUnauthorized, resolver.EUnauthorized, tt.wantParts...)
				if n := mustEventCount(t, s); n != 0 {
					t.Errorf("stored %d events, want 0", n)
				}
				return
			}
			mustSucceed(t, rec)
			ev := mustEvent(t, s, "m1")
			if want := webhook.WriteKeySource(tt.wantKey); ev.Source != want {
				t.Errorf("source = %q, want %q", ev.Source, want)
			}
			for _, key := range keys {
				if strings.Contains(ev.Source, key) || strings.Contains(ev.Raw, key) {
					t.Errorf("write key %q kept in source %q or raw %s", key, ev.Source, ev.Raw)
				}
			}
		})
	}
}

func TestWriteKeySource(t *testing.T) {
	got := webhook.WriteKeySource("wk-live")
	if !strings.HasPrefix(got, "wk_") || len(got) != len("wk_")+12 {
		t.Errorf("WriteKeySource = %q, want wk_ and 12 hex digits", got)
	}
	if got == webhook.WriteKeySource("wk-other") {
		t.Errorf("two keys share the source %q", got)
	}
	if got != webhook.WriteKeySource("wk-live") {
		t.Errorf("WriteKeySource is not stable")
	}
}

func TestTrackingCallTakesTypeFromEndpoint(t *testing.T) {
	const key = "wk-test"
	// A valid body for each endpoint, without type or messageId.
	bodies := map[string]string{
		"identify": `"userId":"u1","traits":{"email":"a@example.com"}`,
		"track":    `"userId":"u1","event":"Clicked"`,
		"page":     `"anonymousId":"a1","name":"Home"`,
		"screen":   `"anonymousId":"a1","name":"Main"`,
		"group":    `"userId":"u1","groupId":"g1"`,
		"alias":    `"userId":"u1","previousId":"a1"`,
	}
	other := map[string]string{
		"identify": "track", "track": "identify", "page": "screen",
		"screen": "page", "group": "alias", "alias": "group",
	}

	tests := []struct {
		name     string
		typeJSON func(kind string) string // the type member, or ""
		bodyKey  bool                     // writeKey in the body, else Basic
	}{
		{"omitted type with a Basic key", func(string) string { return "" }, false},
		{"omitted type with a body key", func(string) string { return "" }, true},
		{"another type with a Basic key",
			func(kind string) string { return `"type":"` + other[kind] + `",` }, false},
		{"another type with a body key",
			func(kind string) string { return `"type":"` + other[kind] + `",` }, true},
		{"a non-string type", func(string) string { return `"type":7,` }, false},
		{"the same type with a body key",
			func(kind string) string { return `"type":"` + kind + `",` }, true},
	}
	for kind, fields := range bodies {
		for _, tt := range tests {
			t.Run("/v1/"+kind+" stores "+kind+" given "+tt.name, func(t *testing.T) {
				s := mustServer(t, webhook.Config{WriteKeys: []string{key}})
				body := "{" + tt.typeJSON(kind) + fields + `,"messageId":"m1"`
				c := call{path: "/v1/" + kind, user: key}
				if tt.bodyKey {
					body += `,"writeKey":"` + key + `"`
					c.user = ""
				}
				c.body = []byte(body + "}")

				mustSucceed(t, mustPost(t, s, c))

				ev := mustEvent(t, s, "m1")
				raw := mustRawFields(t, ev)
				if ev.Type != kind || raw["type"] != kind {
					t.Errorf("stored type %q, raw type %v, want %q", ev.Type, raw["type"], kind)
				}
				if _, kept := raw["writeKey"]; kept || strings.Contains(ev.Raw, key) {
					t.Errorf("raw keeps the write key: %s", ev.Raw)
				}
			})
		}
	}
}

func TestTrackingCallKeepsMatchingBodyAsSent(t *testing.T) {
	const key = "wk-test"
	s := mustServer(t, webhook.Config{WriteKeys: []string{key}})
	body := `{"type":"track", "userId":"u1","event":"A <b>","messageId":"m1","n":1.50}`

	mustSucceed(t, mustPost(t, s, call{path: "/v1/track", body: []byte(body), user: key}))

	if got := mustEvent(t, s, "m1").Raw; got != body {
		t.Errorf("raw = %s, want the body as sent %s", got, body)
	}
}

func TestTrackingCallValidatesForEndpointType(t *testing.T) {
	const key = "wk-test"

	tests := []struct {
		name     string
		path     string
		body     string
		wantPart string // "" when stored
	}{
		{"/v1/track without event is refused even when the body says identify",
			"/v1/track", `{"type":"identify","userId":"u1"}`, "event is required"},
		{"/v1/identify stores a body that says track without event",
			"/v1/identify", `{"type":"track","userId":"u1"}`, ""},
		{"/v1/group without groupId is refused", "/v1/group", `{"userId":"u1"}`,
			"groupId is required"},
		{"/v1/alias without previousId is refused", "/v1/alias", `{"userId":"u1"}`,
			"previousId is required"},
		{"/v1/page without ids is refused", "/v1/page", `{"name":"Home"}`,
			"userId or anonymousId is required"},
		{"/v1/track with an array body is refused", "/v1/track", `[` + track("m1") + `]`,
			"body must be an object, not array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustServer(t, webhook.Config{WriteKeys: []string{key}})

			rec := mustPost(t, s, call{path: tt.path, body: []byte(tt.body), user: key})

			if tt.wantPart == "" {
				mustSucceed(t, rec)
				if n := mustEventCount(t, s); n != 1 {
					t.Errorf("stored %d events, want 1", n)
				}
				return
			}
			mustFail(t, rec, http.StatusBadRequest, resolver.EInvalid, tt.wantPart)
			if n := mustEventCount(t, s); n != 0 {
				t.Errorf("stored %d events, want 0", n)
			}
		})
	}
}

func TestBatchDefaultsMergeIntoMessages(t *testing.T) {
	const key = "wk-test"
	batchContext := `{"library":{"name":"analytics-go","version":"3.0"},"ip":"10.0.0.1",` +
		`"app":{"name":"BatchApp","build":"7"}}`
	batchIntegrations := `{"All":false,"Mixpanel":true,"Amplitude":{"session":1}}`

	tests := []struct {
		name             string
		context          string // batch-level, "" for none
		integrations     string // batch-level, "" for none
		item             string // the message's own members after its ids
		wantContext      string // "" when the stored message has none
		wantIntegrations string
		wantApp          string
	}{
		{"a message without its own takes the batch context and integrations",
			batchContext, batchIntegrations, ``,
			batchContext, batchIntegrations, "BatchApp"},
		{"the message's own keys win and nested objects merge",
			batchContext, batchIntegrations,
			`,"context":{"ip":"10.9.9.9","library":{"version":"4.1"},"locale":"nl-NL",` +
				`"app":{"name":"OwnApp"}},"integrations":{"Mixpanel":false,` +
				`"Amplitude":{"region":"eu"}}`,
			`{"ip":"10.9.9.9","library":{"name":"analytics-go","version":"4.1"},` +
				`"locale":"nl-NL","app":{"name":"OwnApp","build":"7"}}`,
			`{"All":false,"Mixpanel":false,"Amplitude":{"session":1,"region":"eu"}}`,
			"OwnApp"},
		{"a message's string context.app replaces the batch object",
			batchContext, "", `,"context":{"app":"SegKicks"}`,
			`{"library":{"name":"analytics-go","version":"3.0"},"ip":"10.0.0.1",` +
				`"app":"SegKicks"}`, "", "SegKicks"},
		{"a null context takes the batch context",
			batchContext, "", `,"context":null`, batchContext, "", "BatchApp"},
		{"batch integrations alone leave the message context as sent",
			"", batchIntegrations, `,"context":{"locale":"en-US"}`,
			`{"locale":"en-US"}`, batchIntegrations, ""},
		{"no batch defaults leave the message as sent",
			"", "", `,"context":{"locale":"en-US"}`, `{"locale":"en-US"}`, "", ""},
	}
	for _, path := range []string{"/v1/batch", "/v1/import"} {
		for _, tt := range tests {
			t.Run(path+" "+tt.name, func(t *testing.T) {
				s := mustServer(t, webhook.Config{WriteKeys: []string{key}})
				item := `{"type":"track","userId":"u1","event":"E","messageId":"m1"` +
					tt.item + `}`
				body := `{"batch":[` + item + `]`
				if tt.context != "" {
					body += `,"context":` + tt.context
				}
				if tt.integrations != "" {
					body += `,"integrations":` + tt.integrations
				}

				rec := mustPost(t, s, call{path: path, body: []byte(body + "}"), user: key})

				mustSucceed(t, rec)
				ev := mustEvent(t, s, "m1")
				raw := mustRawFields(t, ev)
				mustEqualJSON(t, "context", raw["context"], tt.wantContext)
				mustEqualJSON(t, "integrations", raw["integrations"], tt.wantIntegrations)
				if ev.App != tt.wantApp {
					t.Errorf("app = %q, want %q", ev.App, tt.wantApp)
				}
				if tt.context == "" && tt.integrations == "" && ev.Raw != item {
					t.Errorf("raw = %s, want the item as sent %s", ev.Raw, item)
				}
			})
		}
	}
}

// mustEqualJSON compares a decoded value with JSON text; "" wants no value.
func mustEqualJSON(t *testing.T, what string, got any, want string) {
	t.Helper()

	if want == "" {
		if got != nil {
			t.Errorf("%s = %v, want none", what, got)
		}
		return
	}
	var wantValue any
	if err := json.Unmarshal([]byte(want), &wantValue); err != nil {
		t.Fatalf("want %s: %v", what, err)
	}
	if !reflect.DeepEqual(got, wantValue) {
		gotJSON, _ := json.Marshal(got)
		t.Errorf("%s = %s, want %s", what, gotJSON, want)
	}
}

func TestBatchItemsDoNotKeepWriteKeys(t *testing.T) {
	s := mustServer(t, webhook.Config{WriteKeys: []string{"wk-live"}})
	item := `{"type":"track","userId":"u1","event":"E","messageId":"m1",` +
		`"writeKey":"wk-live"}`

	rec := mustPost(t, s, call{path: "/v1/batch", body: batchBody(item), user: "wk-live"})
	mustSucceed(t, rec)

	ev := mustEvent(t, s, "m1")
	if _, kept := mustRawFields(t, ev)["writeKey"]; kept || strings.Contains(ev.Raw, "wk-live") {
		t.Errorf("stored raw message keeps the write key: %s", ev.Raw)
	}
}

func TestNullBodyIsRefused(t *testing.T) {
	s := mustServer(t, webhook.Config{WriteKeys: []string{"wk-live"}})
	for _, path := range []string{"/v1/track", "/v1/batch", "/webhook"} {
		rec := mustPost(t, s, call{path: path, body: []byte("null"), user: "wk-live"})
		mustFail(t, rec, http.StatusBadRequest, resolver.EInvalid)
	}
	if n := mustEventCount(t, s); n != 0 {
		t.Errorf("%d events stored from null bodies", n)
	}
}

func TestChangedMessageKeepsItsSize(t *testing.T) {
	s := mustServer(t, webhook.Config{WriteKeys: []string{"wk-live"}})
	// 30,000 bytes of "<" would grow sixfold under HTML escaping.
	body := `{"userId":"u1","event":"E","messageId":"lt",` +
		`"properties":{"note":"` + strings.Repeat("<", 30000) + `"}}`

	rec := mustPost(t, s, call{path: "/v1/track", body: []byte(body), user: "wk-live"})
	mustSucceed(t, rec)
	if ev := mustEvent(t, s, "lt"); strings.Contains(ev.Raw, `\u003c`) {
		t.Error("stored raw message was HTML-escaped")
	}
}

func TestWrongBasicWriteKeyIsRefusedBeforeTheBody(t *testing.T) {
	s := mustServer(t, webhook.Config{WriteKeys: []string{"wk-live"}})
	rec := mustPost(t, s, call{path: "/v1/batch", body: []byte("not even json"), user: "nope"})
	mustFail(t, rec, http.StatusUnauthorized, resolver.EUnauthorized, "not valid")
}

func TestTrackingAPIRefusesDeleteRequests(t *testing.T) {
	s := mustServer(t, webhook.Config{WriteKeys: []string{"wk-live"}})
	mustSucceed(t, mustPost(t, s, call{path: "/v1/track", user: "wk-live",
		body: []byte(`{"userId":"u1","event":"E","messageId":"m1"}`)}))

	for _, path := range []string{"/v1/batch", "/v1/import"} {
		rec := mustPost(t, s, call{path: path, user: "wk-live",
			body: []byte(`{"batch":[{"type":"delete","userId":"u1"}]}`)})
		mustFail(t, rec, http.StatusBadRequest, resolver.EInvalid, "/webhook")
	}
	if n := mustEventCount(t, s); n != 1 {
		t.Errorf("%d events after refused deletions, want the 1 stored", n)
	}
}
