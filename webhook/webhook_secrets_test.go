package webhook_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/webhook"
)

// The secrets of TestRecordsHoldNoSecrets; their first six bytes are found
// nowhere else.
const (
	hookSecret = "whsecZulu_7766554433"
	liveKey    = "wkAlpha_9f8e7d6c5b4a"
	otherKey   = "wkBravo_1a2b3c4d5e6f"
	wrongKey   = "wkWrong_0000ffff1111" // a key someone tried: a secret too
)

// secretCalls are refused requests carrying secrets every way a sender
// might: HTTP Basic, writeKey fields in any case or escape, secrets in
// ordinary fields, and secrets cut through by the excerpt's end.
func secretCalls() []call {
	invalid := func(extra string) string { // refused: no event name
		return `{"type":"track","userId":"u1","messageId":"m-x"` + extra + `}`
	}
	calls := []call{
		{path: "/v1/track", user: liveKey,
			body: []byte(`{"writeKey":"` + liveKey + `","userId":`)},
		{path: "/v1/track", user: wrongKey, body: []byte(invalid(""))},
		{path: "/v1/track", body: []byte(invalid(`,"writeKey":"` + wrongKey + `"`))},
		{path: "/v1/batch", body: []byte(`{"WRITEKEY":"` + wrongKey + `","batch":[]}`)},
		{path: "/v1/batch", body: []byte(`{"write\u004bey":"` + wrongKey + `","batch":[1]}`)},
		{path: "/v1/batch", body: []byte(`{"writeKey":"` + liveKey + `","batch":[` +
			invalid(`,"writeKey":"`+otherKey+`","properties":{"note":"`+hookSecret+`"}`) +
			`,` + invalid(`,"wRiTeKeY" : "`+wrongKey+`"`) + `]}`)},
		{path: "/v1/import", user: liveKey, body: batchBody(invalid(
			`,"properties":{"k":"` + otherKey + `","s":"` + hookSecret + `"}`))},
		{path: "/webhook", header: map[string]string{"X-Signature": "00"},
			body: []byte(invalid(`,"properties":{"s":"` + hookSecret + `"}`))},
		{path: "/webhook", header: map[string]string{
			"Content-Type": "application/x-www-form-urlencoded"},
			body: []byte("writeKey=" + liveKey + "&secret=" + hookSecret)},
		{path: "/v1/track", user: liveKey, body: []byte(`{"properties":{"a":"` +
			strings.Repeat("x", webhook.MaxRequestBytes) + `"},"writeKey":"` + liveKey + `"}`)},
	}
	// Secrets at every offset across the excerpt's end, in bodies refused
	// whole (they never close), so the excerpt is their first bytes: the
	// edge's own secrets in any field, and any key in a writeKey field.
	for _, c := range []struct{ secret, field string }{
		{liveKey, "note"}, {otherKey, "note"}, {hookSecret, "note"},
		{liveKey, "writeKey"}, {wrongKey, "writeKey"},
	} {
		for offset := -len(c.secret) - 2; offset <= 2; offset++ {
			calls = append(calls, call{path: "/v1/track", user: liveKey,
				body: secretAt(resolver.MaxExcerptBytes+offset, c.field, c.secret)})
		}
	}
	return calls
}

// secretAt returns an unfinished JSON body whose field holds secret from
// byte start on.
func secretAt(start int, field, secret string) []byte {
	head := `{"type":"track","pad":"`
	tail := `","` + field + `":"`
	pad := strings.Repeat("p", start-len(head)-len(tail))
	return []byte(head + pad + tail + secret + `","userId":"u1"`)
}

func TestRecordsHoldNoSecrets(t *testing.T) {
	s := mustServer(t, webhook.Config{Secret: hookSecret,
		WriteKeys: []string{liveKey, otherKey}})
	calls := secretCalls()
	for _, c := range calls {
		if rec := mustPost(t, s, c); rec.Code < 400 || rec.Code >= 500 {
			t.Fatalf("%s %.60s: status %d, want a refusal", c.path, c.body, rec.Code)
		}
	}

	var rows []resolver.Rejection
	if err := s.db.Select(&rows, `SELECT id, received_ms, source, endpoint, reason,
		message_id, excerpt FROM rejected_messages`); err != nil {
		t.Fatal(err)
	}
	if len(rows) < len(calls) {
		t.Fatalf("%d refusals recorded for %d refused requests", len(rows), len(calls))
	}
	basic := base64.StdEncoding.EncodeToString([]byte(liveKey + ":"))
	redactions := 0
	for _, r := range rows {
		texts := []string{r.Source, r.Endpoint, r.Reason, r.MessageID, r.Excerpt}
		for _, text := range texts {
			for _, secret := range []string{hookSecret, liveKey, otherKey, wrongKey, basic} {
				if strings.Contains(text, secret[:6]) {
					t.Errorf("a record holds %.6s...: %q", secret, text)
				}
			}
		}
		redactions += strings.Count(r.Excerpt, "[redacted]")
	}
	if redactions == 0 { // the exact excerpts are in rejections_internal_test.go
		t.Errorf("no redaction in %d records: the check looked at nothing", len(rows))
	}
}
