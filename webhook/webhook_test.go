package webhook_test

import (
	"bytes"
	"compress/gzip"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
	"github.com/knit-cdp/knit/web/httpx"
	"github.com/knit-cdp/knit/webhook"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	os.Exit(m.Run())
}

// receiveClock is the fixed time every test server reads as "now".
func receiveClock() time.Time {
	return time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
}

// server is knit's ingestion edge over a fresh, migrated SQLite database.
type server struct {
	db     *sqldb.DB
	router *gin.Engine
}

// mustServer builds the handler as cmd/knit does: a real store, which
// also records refusals unless cfg names another recorder, gin with raw
// paths and panic recovery, and cfg (whose clock defaults to
// receiveClock).
func mustServer(t *testing.T, cfg webhook.Config) *server {
	t.Helper()
	return mustServerLogging(t, cfg, slog.New(slog.NewTextHandler(t.Output(), nil)))
}

// mustServerLogging is mustServer logging to log.
func mustServerLogging(t *testing.T, cfg webhook.Config, log *slog.Logger) *server {
	t.Helper()

	db := sqltest.MustOpen(t)
	store := resolver.NewStore(db, resolver.DefaultRules(), receiveClock, nil)
	if cfg.Now == nil {
		cfg.Now = receiveClock
	}
	if cfg.Rejections == nil {
		cfg.Rejections = store
	}

	router := gin.New()
	router.UseRawPath = true
	router.Use(httpx.Recover(log))
	webhook.New(store, cfg, log).Register(router)
	return &server{db: db, router: router}
}

// call is one POST to the server.
type call struct {
	path   string
	body   []byte
	header map[string]string
	user   string // sent as the HTTP Basic user name with an empty password
}

func mustPost(t *testing.T, s *server, c call) *httptest.ResponseRecorder {
	t.Helper()

	req := httptest.NewRequest(http.MethodPost, c.path, bytes.NewReader(c.body))
	for key, value := range c.header {
		req.Header.Set(key, value)
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, "")
	}
	rec := httptest.NewRecorder()
	s.router.ServeHTTP(rec, req)
	return rec
}

// reply is every JSON body the ingestion edge answers with.
type reply struct {
	Success  bool                `json:"success"`
	Error    *httpx.ErrorDetail  `json:"error"`
	Rejected []webhook.Rejection `json:"rejected"`
}

// mustReply checks the status and decodes the body, refusing unknown keys.
func mustReply(t *testing.T, rec *httptest.ResponseRecorder, wantStatus int) reply {
	t.Helper()

	if rec.Code != wantStatus {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, wantStatus, rec.Body)
	}
	if got := rec.Header().Get("Content-Type"); !strings.HasPrefix(got, "application/json") {
		t.Errorf("Content-Type = %q, want application/json", got)
	}
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	var got reply
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decode reply %s: %v", rec.Body, err)
	}
	return got
}

// mustSucceed checks for 200 {"success":true} with nothing rejected.
func mustSucceed(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()

	got := mustReply(t, rec, http.StatusOK)
	if !got.Success || got.Error != nil || len(got.Rejected) > 0 {
		t.Errorf("body = %s, want {\"success\":true}", rec.Body)
	}
}

// mustFail checks for an error answer {"error":{"code","message"}} whose
// message contains every one of wantParts.
func mustFail(t *testing.T, rec *httptest.ResponseRecorder, wantStatus int,
	wantCode string, wantParts ...string) reply {
	t.Helper()

	got := mustReply(t, rec, wantStatus)
	if got.Success || got.Error == nil {
		t.Fatalf("body = %s, want an error", rec.Body)
	}
	if got.Error.Code != wantCode {
		t.Errorf("error code = %q, want %q", got.Error.Code, wantCode)
	}
	for _, part := range wantParts {
		if !strings.Contains(got.Error.Message, part) {
			t.Errorf("error message = %q, want it to mention %q", got.Error.Message, part)
		}
	}
	return got
}

func mustCount(t *testing.T, s *server, query string, args ...any) int {
	t.Helper()

	var n int
	if err := s.db.Get(&n, s.db.Rebind(query), args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func mustEventCount(t *testing.T, s *server) int {
	t.Helper()
	return mustCount(t, s, `SELECT COUNT(*) FROM events`)
}

// mustMessageIDs returns the stored message ids, sorted.
func mustMessageIDs(t *testing.T, s *server) []string {
	t.Helper()

	ids := []string{}
	if err := s.db.Select(&ids, `SELECT message_id FROM events ORDER BY message_id`); err != nil {
		t.Fatalf("select message ids: %v", err)
	}
	return ids
}

// storedEvent is one row of the events table.
type storedEvent struct {
	MessageID   string `db:"message_id"`
	Source      string `db:"source"`
	Type        string `db:"type"`
	Event       string `db:"event"`
	UserID      string `db:"user_id"`
	AnonymousID string `db:"anonymous_id"`
	TsMs        int64  `db:"ts_ms"`
	ReceivedMs  int64  `db:"received_ms"`
	App         string `db:"app"`
	Raw         string `db:"raw"`
}

func mustEvent(t *testing.T, s *server, messageID string) storedEvent {
	t.Helper()

	var ev storedEvent
	err := s.db.Get(&ev, s.db.Rebind(`SELECT message_id, source, type, event, user_id,
		anonymous_id, ts_ms, received_ms, app, raw FROM events WHERE message_id = ?`),
		messageID)
	if err != nil {
		t.Fatalf("event %q: %v", messageID, err)
	}
	return ev
}

// mustRawFields decodes an event's stored raw JSON.
func mustRawFields(t *testing.T, ev storedEvent) map[string]any {
	t.Helper()

	var fields map[string]any
	if err := json.Unmarshal([]byte(ev.Raw), &fields); err != nil {
		t.Fatalf("raw of %q is not a JSON object: %v\n%s", ev.MessageID, err, ev.Raw)
	}
	return fields
}

func mustGzip(t *testing.T, data []byte) []byte {
	t.Helper()

	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatalf("gzip: %v", err)
	}
	if err := zw.Close(); err != nil {
		t.Fatalf("gzip: %v", err)
	}
	return buf.Bytes()
}

// track returns a small valid track message with the given messageId.
func track(id string) string {
	return fmt.Sprintf(`{"type":"track","userId":"u-%s","event":"Order Completed",`+
		`"messageId":%q}`, id, id)
}

// array joins messages into a JSON array body, as Actions batching sends.
func array(items ...string) []byte {
	return []byte("[" + strings.Join(items, ",") + "]")
}

// batchBody wraps messages in a tracking API batch body.
func batchBody(items ...string) []byte {
	return []byte(`{"batch":[` + strings.Join(items, ",") + `]}`)
}

// equalStrings reports whether a and b hold the same strings in any order.
func equalStrings(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// oddFirstElement is a message as a sender might have serialized it: odd
// spacing, unsorted keys, characters Go's encoder escapes ("<", "&", a raw
// U+2028) and escapes it would write differently (\u00e9, \/), and a number
// re-encoding would shorten. Only its exact bytes carry the signature.
func oddFirstElement() string {
	return "{ \"type\" :\"track\",\n\t\"userId\": \"u-odd\" , \"event\":\"A <b> & c\u2028d\"," +
		` "messageId":"m-odd", "properties":{"caf\u00e9":"\/x","price":1.50}}`
}

func TestSignatureOnWebhook(t *testing.T) {
	const secret = "shared-s3cret"
	single := []byte(track("m-single"))
	singleNewline := []byte(track("m-newline") + "\n")
	first := oddFirstElement()
	batch := []byte("[ " + first + " ,\n  " + track("m-second") + " ]")
	reencoded := mustReencode(t, first)

	tests := []struct {
		name      string
		body      []byte
		signature string // "" sends no header
		wantIDs   []string
	}{
		{"single object signed over the whole raw body is stored",
			single, webhook.Signature(secret, single), []string{"m-single"}},
		{"single object signed over its bytes with a trailing newline is stored",
			singleNewline, webhook.Signature(secret, singleNewline), []string{"m-newline"}},
		{"upper-case hex signature is accepted",
			single, strings.ToUpper(webhook.Signature(secret, single)), []string{"m-single"}},
		{"array signed over the first element's raw bytes is stored",
			batch, webhook.Signature(secret, []byte(first)), []string{"m-odd", "m-second"}},
		{"array signed over a re-encoded first element is refused",
			batch, webhook.Signature(secret, reencoded), nil},
		{"array signed over the whole array is refused",
			batch, webhook.Signature(secret, batch), nil},
		{"array signed over the second element is refused",
			batch, webhook.Signature(secret, []byte(track("m-second"))), nil},
		{"signature under another secret is refused",
			single, webhook.Signature("other", single), nil},
		{"signature of other bytes is refused",
			single, webhook.Signature(secret, []byte(track("m-other"))), nil},
		{"missing X-Signature is refused",
			single, "", nil},
		{"non-hex X-Signature is refused",
			single, "zz" + webhook.Signature(secret, single)[2:], nil},
		{"truncated X-Signature is refused",
			single, webhook.Signature(secret, single)[:20], nil},
		{"sha1= prefixed X-Signature is refused",
			single, "sha1=" + webhook.Signature(secret, single), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustServer(t, webhook.Config{Secret: secret})
			c := call{path: "/webhook", body: tt.body, header: map[string]string{
				"Content-Type": "application/json",
			}}
			if tt.signature != "" {
				c.header["X-Signature"] = tt.signature
			}
			rec := mustPost(t, s, c)

			if tt.wantIDs == nil {
				mustFail(t, rec, http.StatusUnauthorized, resolver.EUnauthorized, "X-Signature")
				if got := mustEventCount(t, s); got != 0 {
					t.Errorf("stored %d events, want 0", got)
				}
				return
			}
			mustSucceed(t, rec)
			if got := mustMessageIDs(t, s); !equalStrings(got, tt.wantIDs) {
				t.Errorf("stored %q, want %q", got, tt.wantIDs)
			}
		})
	}
}

// A refused signature says what knit checked it against: the body of a
// single message, the first element of an array.
func TestSignatureRefusalSaysWhatWasChecked(t *testing.T) {
	const secret = "shared-s3cret"
	single := []byte(track("m-single"))
	batch := []byte("[" + track("m-1") + "," + track("m-2") + "]")
	for _, tt := range []struct {
		name string
		body []byte
		says string
	}{
		{"single message", single, "does not match the body"},
		{"array", batch, "does not match the array's first element"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := mustServer(t, webhook.Config{Secret: secret})
			rec := mustPost(t, s, call{path: "/webhook", body: tt.body,
				header: map[string]string{"X-Signature": webhook.Signature("other", tt.body)}})

			mustFail(t, rec, http.StatusUnauthorized, resolver.EUnauthorized, tt.says)
		})
	}
}

// mustReencode decodes a message and encodes it again with Go's encoder,
// which is what a receiver verifying a re-marshalled object would sign.
func mustReencode(t *testing.T, message string) []byte {
	t.Helper()

	var fields map[string]any
	if err := json.Unmarshal([]byte(message), &fields); err != nil {
		t.Fatalf("decode %s: %v", message, err)
	}
	out, err := json.Marshal(fields)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	if bytes.Equal(out, []byte(message)) {
		t.Fatalf("re-encoding kept the bytes; the test message is not odd enough")
	}
	return out
}

func TestSignedArrayStoresFirstElementBytes(t *testing.T) {
	const secret = "shared-s3cret"
	first := oddFirstElement()
	body := []byte("[" + first + "," + track("m-second") + "]")
	s := mustServer(t, webhook.Config{Secret: secret})

	rec := mustPost(t, s, call{path: "/webhook", body: body, header: map[string]string{
		"X-Signature": webhook.Signature(secret, []byte(first)),
	}})

	mustSucceed(t, rec)
	ev := mustEvent(t, s, "m-odd")
	if ev.Raw != first {
		t.Errorf("raw = %q, want the element's exact bytes %q", ev.Raw, first)
	}
	if want := "A <b> & c\u2028d"; ev.Event != want {
		t.Errorf("event = %q, want %q", ev.Event, want)
	}
}

func TestSignatureMatchesIndependentHMAC(t *testing.T) {
	tests := []struct {
		name    string
		secret  string
		payload []byte
	}{
		{"odd first element", "shared-s3cret", []byte(oddFirstElement())},
		{"empty payload", "shared-s3cret", nil},
		{"empty secret", "", []byte(track("m1"))},
		{"secret longer than the SHA-1 block", strings.Repeat("k", 100), []byte("{}")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mac := hmac.New(sha1.New, []byte(tt.secret))
			mac.Write(tt.payload)
			want := hex.EncodeToString(mac.Sum(nil))

			if got := webhook.Signature(tt.secret, tt.payload); got != want {
				t.Errorf("Signature = %q, want %q", got, want)
			}
		})
	}

	// RFC 2104's well-known HMAC-SHA1 example, fixed independently of Go.
	got := webhook.Signature("key", []byte("The quick brown fox jumps over the lazy dog"))
	if want := "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9"; got != want {
		t.Errorf("Signature(known vector) = %q, want %q", got, want)
	}
}

func TestWebhookWithoutSecretAcceptsUnsigned(t *testing.T) {
	tests := []struct {
		name      string
		body      []byte
		signature string
		wantIDs   []string
	}{
		{"unsigned single object is stored", []byte(track("m1")), "", []string{"m1"}},
		{"unsigned array is stored",
			array(track("m1"), track("m2")), "", []string{"m1", "m2"}},
		{"a stray X-Signature is ignored", []byte(track("m1")), "bogus", []string{"m1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustServer(t, webhook.Config{})
			c := call{path: "/webhook", body: tt.body}
			if tt.signature != "" {
				c.header = map[string]string{"X-Signature": tt.signature}
			}

			mustSucceed(t, mustPost(t, s, c))
			if got := mustMessageIDs(t, s); !equalStrings(got, tt.wantIDs) {
				t.Errorf("stored %q, want %q", got, tt.wantIDs)
			}
		})
	}
}

func TestDuplicatesAreStoredOnce(t *testing.T) {
	const key = "wk-test"
	noID := []byte(`{"type":"track","userId":"u1","event":"Signed Up"}`)
	noIDKeyed := []byte(`{"userId":"u1","event":"Signed Up","writeKey":"wk-test"}`)

	tests := []struct {
		name    string
		calls   []call
		wantIDs []string // nil: one derived id
	}{
		{"same messageId twice in one array", []call{
			{path: "/webhook", body: array(track("m1"), track("m1"))},
		}, []string{"m1"}},
		{"same messageId in two webhook requests", []call{
			{path: "/webhook", body: []byte(track("m1"))},
			{path: "/webhook", body: []byte(track("m1"))},
		}, []string{"m1"}},
		{"same messageId on /webhook then /v1/batch", []call{
			{path: "/webhook", body: []byte(track("m1"))},
			{path: "/v1/batch", body: batchBody(track("m1")), user: key},
		}, []string{"m1"}},
		{"same messageId on /v1/batch then /webhook", []call{
			{path: "/v1/batch", body: batchBody(track("m1"), track("m2")), user: key},
			{path: "/webhook", body: array(track("m2"), track("m1"))},
		}, []string{"m1", "m2"}},
		{"same messageId on /v1/track then /v1/import", []call{
			{path: "/v1/track", body: []byte(track("m1")), user: key},
			{path: "/v1/import", body: batchBody(track("m1")), user: key},
		}, []string{"m1"}},
		{"same messageId twice in one tracking batch", []call{
			{path: "/v1/batch", body: batchBody(track("m1"), track("m1")), user: key},
		}, []string{"m1"}},
		{"identical bytes without messageId on /webhook", []call{
			{path: "/webhook", body: noID},
			{path: "/webhook", body: noID},
		}, []string{resolver.DerivedMessageID(noID)}},
		{"identical bytes without messageId with surrounding whitespace", []call{
			{path: "/webhook", body: noID},
			{path: "/webhook", body: append(append([]byte("\n "), noID...), '\n')},
		}, []string{resolver.DerivedMessageID(noID)}},
		{"identical bytes without messageId on /v1/track with a body writeKey", []call{
			{path: "/v1/track", body: noIDKeyed},
			{path: "/v1/track", body: noIDKeyed},
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustServer(t, webhook.Config{WriteKeys: []string{key}})
			for _, c := range tt.calls {
				mustSucceed(t, mustPost(t, s, c))
			}

			got := mustMessageIDs(t, s)
			if tt.wantIDs == nil {
				if len(got) != 1 || !strings.HasPrefix(got[0], "knit-") {
					t.Errorf("stored %q, want one derived knit- id", got)
				}
				return
			}
			if !equalStrings(got, tt.wantIDs) {
				t.Errorf("stored %q, want %q", got, tt.wantIDs)
			}
		})
	}
}

func TestDuplicateKeepsFirstCopy(t *testing.T) {
	s := mustServer(t, webhook.Config{WriteKeys: []string{"wk-test"}})
	first := `{"type":"track","userId":"u1","event":"First","messageId":"m1"}`
	second := `{"type":"track","userId":"u1","event":"Second","messageId":"m1"}`

	mustSucceed(t, mustPost(t, s, call{path: "/webhook", body: []byte(first)}))
	mustSucceed(t, mustPost(t, s, call{
		path: "/v1/batch", body: batchBody(second), user: "wk-test",
	}))

	ev := mustEvent(t, s, "m1")
	if ev.Event != "First" || ev.Source != "webhook" || ev.Raw != first {
		t.Errorf("stored event %q from %q (raw %s), want the first copy from webhook",
			ev.Event, ev.Source, ev.Raw)
	}
}
