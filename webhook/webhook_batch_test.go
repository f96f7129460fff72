package webhook_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/webhook"
)

// rejection is what the answer must say about one refused batch item.
type rejection struct {
	index int
	code  string
	part  string // a fragment the message must contain
}

func mustRejected(t *testing.T, got []webhook.Rejection, want []rejection) {
	t.Helper()

	if len(got) != len(want) {
		t.Fatalf("rejected %d items %+v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Index != w.index || g.Error.Code != w.code ||
			!strings.Contains(g.Error.Message, w.part) {
			t.Errorf("rejected[%d] = {%d %s %q}, want {%d %s ...%q...}",
				i, g.Index, g.Error.Code, g.Error.Message, w.index, w.code, w.part)
		}
	}
}

// mustKeys checks that a JSON object has exactly the keys want.
func mustKeys(t *testing.T, raw json.RawMessage, want ...string) map[string]json.RawMessage {
	t.Helper()

	var object map[string]json.RawMessage
	if err := json.Unmarshal(raw, &object); err != nil {
		t.Fatalf("%s is not an object: %v", raw, err)
	}
	got := make([]string, 0, len(object))
	for key := range object {
		got = append(got, key)
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("keys of %s = %v, want %v", raw, got, want)
	}
	return object
}

// mixedBatch is a batch with valid messages at 0, 4, 12, 17 and 18 and one
// invalid message of every kind in between.
func mixedBatch(t *testing.T) ([]string, []string, []rejection) {
	t.Helper()

	oversize := mustPadded(t, "bad11", resolver.MaxMessageBytes+1)
	items := []string{
		track("ok0"),
		`{"userId":"u1","event":"E","messageId":"bad1"}`,
		`{"type":"purchase","userId":"u1","messageId":"bad2"}`,
		`{"type":"track","event":"E","messageId":"bad3"}`,
		`{"type":"identify","userId":"u1","traits":{"plan":"pro"},"messageId":"ok4"}`,
		`{"type":"track","userId":"u1","messageId":"bad5"}`,
		`{"type":"group","userId":"u1","traits":{"n":1},"messageId":"bad6"}`,
		`{"type":"alias","userId":"u1","messageId":"bad7"}`,
		`42`,
		`"a string"`,
		`null`,
		oversize,
		`{"type":"page","anonymousId":"a1","name":"Home","messageId":"ok12"}`,
		`{"type":"track","userId":" ","anonymousId":"","event":"E","messageId":"bad13"}`,
		`{"type":"track","userId":"u1","event":"E","messageId":"` +
			strings.Repeat("m", resolver.MaxMessageIDLen+1) + `"}`,
		`{"type":"track","userId":"u1","event":"E","messageId":"bad15",` +
			`"timestamp":"yesterday"}`,
		`{"type":"track","userId":"u1","event":"E","messageId":"bad16","properties":[1]}`,
		`{"type":"group","userId":"u1","groupId":"g1","messageId":"ok17"}`,
		`{"type":"alias","userId":"u1","previousId":"a1","messageId":"ok18"}`,
		`[]`,
	}
	stored := []string{"ok0", "ok4", "ok12", "ok17", "ok18"}
	rejected := []rejection{
		{1, resolver.EInvalid, "type is required"},
		{2, resolver.EInvalid, `type "purchase" is not one of`},
		{3, resolver.EInvalid, "userId or anonymousId is required"},
		{5, resolver.EInvalid, "event is required"},
		{6, resolver.EInvalid, "groupId is required"},
		{7, resolver.EInvalid, "previousId is required"},
		{8, resolver.EInvalid, "must be a JSON object"},
		{9, resolver.EInvalid, "must be a JSON object"},
		{10, resolver.EInvalid, "must be a JSON object"},
		{11, resolver.ETooLarge, fmt.Sprintf("the limit is %d", resolver.MaxMessageBytes)},
		{13, resolver.EInvalid, "userId or anonymousId is required"},
		{14, resolver.EInvalid, "messageId is 101 characters"},
		{15, resolver.EInvalid, `timestamp "yesterday" is not an ISO-8601 date`},
		{16, resolver.EInvalid, "properties must be an object"},
		{19, resolver.EInvalid, "must be a JSON object"},
	}
	return items, stored, rejected
}

func TestPartialBatchStoresValidItems(t *testing.T) {
	const key = "wk-test"
	items, wantIDs, wantRejected := mixedBatch(t)

	tests := []struct {
		name string
		path string
		body []byte
	}{
		{"webhook array with invalid items stores the valid ones", "/webhook",
			array(items...)},
		{"tracking batch with invalid items stores the valid ones", "/v1/batch",
			batchBody(items...)},
		{"tracking batch with context stores the valid ones", "/v1/batch",
			[]byte(`{"context":{"ip":"10.0.0.1"},"batch":[` + strings.Join(items, ",") + `]}`)},
		{"import with invalid items stores the valid ones", "/v1/import",
			batchBody(items...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustServer(t, webhook.Config{WriteKeys: []string{key}})

			rec := mustPost(t, s, call{path: tt.path, body: tt.body, user: key})

			got := mustReply(t, rec, http.StatusOK)
			if !got.Success || got.Error != nil {
				t.Errorf("body = %s, want success with rejected items", rec.Body)
			}
			mustRejected(t, got.Rejected, wantRejected)
			if ids := mustMessageIDs(t, s); !equalStrings(ids, wantIDs) {
				t.Errorf("stored %q, want %q", ids, wantIDs)
			}

			body := mustKeys(t, rec.Body.Bytes(), "success", "rejected")
			if string(body["success"]) != "true" {
				t.Errorf("success = %s, want true", body["success"])
			}
			var list []json.RawMessage
			if err := json.Unmarshal(body["rejected"], &list); err != nil {
				t.Fatalf("rejected is not a list: %v", err)
			}
			for _, item := range list {
				fields := mustKeys(t, item, "index", "error")
				mustKeys(t, fields["error"], "code", "message")
			}
		})
	}
}

func TestBatchWithNoValidItemIsRefused(t *testing.T) {
	const key = "wk-test"
	noEvent := `{"type":"track","userId":"u1","messageId":"bad0"}`
	noIDs := `{"type":"identify","messageId":"bad1"}`
	oversize := mustPadded(t, "bad2", resolver.MaxMessageBytes+1)
	allInvalid := []rejection{
		{0, resolver.EInvalid, "event is required"},
		{1, resolver.EInvalid, "userId or anonymousId is required"},
		{2, resolver.ETooLarge, "32 KB"},
	}

	tests := []struct {
		name         string
		path         string
		body         []byte
		wantCode     string
		wantParts    []string
		wantRejected []rejection
	}{
		{"webhook array of only invalid items is refused with the list", "/webhook",
			array(noEvent, noIDs, oversize), resolver.EInvalid,
			[]string{"none of the 3 messages is valid"}, allInvalid},
		{"tracking batch of only invalid items is refused with the list", "/v1/batch",
			batchBody(noEvent, noIDs, oversize), resolver.EInvalid,
			[]string{"none of the 3 messages is valid"}, allInvalid},
		{"a batch refused for size first answers too_large", "/webhook",
			array(oversize, noEvent), resolver.ETooLarge,
			[]string{"none of the 2 messages is valid"}, []rejection{
				{0, resolver.ETooLarge, "32 KB"}, {1, resolver.EInvalid, "event is required"},
			}},
		{"one-item webhook array answers the item's own error", "/webhook",
			array(noEvent), resolver.EInvalid, []string{"event is required"}, nil},
		{"one-item tracking batch answers the item's own error", "/v1/batch",
			batchBody(noIDs), resolver.EInvalid,
			[]string{"userId or anonymousId is required"}, nil},
		{"empty webhook array is refused", "/webhook", []byte(`[]`), resolver.EInvalid,
			[]string{"batch is empty"}, nil},
		{"empty webhook array with spaces is refused", "/webhook", []byte(" [ ]\n"),
			resolver.EInvalid, []string{"batch is empty"}, nil},
		{"empty tracking batch is refused", "/v1/batch", []byte(`{"batch":[]}`),
			resolver.EInvalid, []string{"batch is empty"}, nil},
		{"null tracking batch is refused", "/v1/batch", []byte(`{"batch":null}`),
			resolver.EInvalid, []string{"batch is empty"}, nil},
		{"tracking batch without a batch key is refused", "/v1/import", []byte(`{}`),
			resolver.EInvalid, []string{"batch is empty"}, nil},
		{"empty webhook body is refused", "/webhook", nil, resolver.EInvalid,
			[]string{"request body is empty"}, nil},
		{"blank webhook body is refused", "/webhook", []byte(" \n\t"), resolver.EInvalid,
			[]string{"request body is empty"}, nil},
		{"broken webhook array is refused", "/webhook", []byte(`[{"type":"track"`),
			resolver.EInvalid, []string{"not a valid JSON array"}, nil},
		{"broken webhook object is refused", "/webhook", []byte(`{"type":`),
			resolver.EInvalid, []string{"not valid JSON"}, nil},
		{"webhook object with trailing data is refused", "/webhook",
			[]byte(track("m1") + track("m2")), resolver.EInvalid,
			[]string{"data after its JSON object"}, nil},
		{"broken tracking batch is refused", "/v1/batch", []byte(`{"batch":[`),
			resolver.EInvalid, []string{"not valid JSON"}, nil},
		{"tracking batch that is a bare array is refused", "/v1/batch",
			array(track("m1")), resolver.EInvalid, []string{"body must be an object, not array"},
			nil},
		{"tracking batch whose batch is an object is refused", "/v1/batch",
			[]byte(`{"batch":{}}`), resolver.EInvalid,
			[]string{"batch must be an array, not object"}, nil},
		{"tracking batch sent to the webhook is pointed to /v1/batch", "/webhook",
			batchBody(track("m1")), resolver.EInvalid, []string{"/v1/batch"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustServer(t, webhook.Config{WriteKeys: []string{key}})

			rec := mustPost(t, s, call{path: tt.path, body: tt.body, user: key})

			got := mustFail(t, rec, http.StatusBadRequest, tt.wantCode, tt.wantParts...)
			mustRejected(t, got.Rejected, tt.wantRejected)
			if n := mustEventCount(t, s); n != 0 {
				t.Errorf("stored %d events, want 0", n)
			}
			if n := mustCount(t, s, `SELECT COUNT(*) FROM profiles`); n != 0 {
				t.Errorf("created %d profiles, want 0", n)
			}
		})
	}
}
