package webhook_test

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/knit-cdp/knit/webhook"
)

// mustTime parses an RFC 3339 time for a table row.
func mustTime(t *testing.T, text string) time.Time {
	t.Helper()

	tm, err := time.Parse(time.RFC3339Nano, text)
	if err != nil {
		t.Fatalf("parse %q: %v", text, err)
	}
	return tm
}

func TestTimestampSkewCorrection(t *testing.T) {
	const key = "wk-test"
	// The receive clock R is 12:00:00Z; a device clock 5 minutes fast sends
	// at S = 12:05 an event it stamped T = 12:04, which happened at 11:59.
	const (
		deviceT = `"timestamp":"2026-03-14T12:04:00Z"`
		deviceS = `"sentAt":"2026-03-14T12:05:00Z"`
		trackID = `"type":"track","userId":"u1","event":"E","messageId":"m1"`
	)

	tests := []struct {
		name   string
		path   string
		body   string
		wantTs string
	}{
		{"tracking call removes the device clock error", "/v1/track",
			`{` + trackID + `,` + deviceT + `,` + deviceS + `}`, "2026-03-14T11:59:00Z"},
		{"tracking call from a device clock behind", "/v1/track",
			`{` + trackID + `,"timestamp":"2026-03-14T09:00:00Z",` +
				`"sentAt":"2026-03-14T09:00:30Z"}`, "2026-03-14T11:59:30Z"},
		{"zone offsets are honoured on both times", "/v1/track",
			`{` + trackID + `,"timestamp":"2026-03-14T13:04:00+01:00",` +
				`"sentAt":"2026-03-14T07:05:00-05:00"}`, "2026-03-14T11:59:00Z"},
		{"milliseconds survive the correction", "/v1/track",
			`{` + trackID + `,"timestamp":"2026-03-14T12:04:00.250Z",` + deviceS + `}`,
			"2026-03-14T11:59:00.25Z"},
		{"originalTimestamp is used when timestamp is absent", "/v1/track",
			`{` + trackID + `,"originalTimestamp":"2026-03-14T12:03:30Z",` + deviceS + `}`,
			"2026-03-14T11:58:30Z"},
		{"timestamp is preferred over originalTimestamp", "/v1/track",
			`{` + trackID + `,` + deviceT + `,"originalTimestamp":"2026-03-14T12:03:30Z",` +
				deviceS + `}`, "2026-03-14T11:59:00Z"},
		{"without sentAt the timestamp is kept as is", "/v1/track",
			`{` + trackID + `,"timestamp":"2026-03-01T08:00:00Z"}`, "2026-03-01T08:00:00Z"},
		{"without a client time the receive clock is used", "/v1/track",
			`{` + trackID + `,` + deviceS + `}`, "2026-03-14T12:00:00Z"},
		{"with no times at all the receive clock is used", "/v1/identify",
			`{"userId":"u1","messageId":"m1"}`, "2026-03-14T12:00:00Z"},
		{"batch sentAt corrects a message without its own", "/v1/batch",
			`{"sentAt":"2026-03-14T12:05:00Z","batch":[{` + trackID + `,` + deviceT + `}]}`,
			"2026-03-14T11:59:00Z"},
		{"a message's own sentAt wins over the batch sentAt", "/v1/batch",
			`{"sentAt":"2026-03-14T13:00:00Z","batch":[{` + trackID + `,` + deviceT + `,` +
				deviceS + `}]}`, "2026-03-14T11:59:00Z"},
		{"batch sentAt corrects an originalTimestamp", "/v1/import",
			`{"sentAt":"2026-03-14T12:05:00Z","batch":[{` + trackID +
				`,"originalTimestamp":"2026-03-14T12:04:00Z"}]}`, "2026-03-14T11:59:00Z"},
		{"batch without sentAt keeps the timestamp", "/v1/batch",
			`{"batch":[{` + trackID + `,` + deviceT + `}]}`, "2026-03-14T12:04:00Z"},
		{"batch without client time uses the receive clock", "/v1/batch",
			`{"sentAt":"2026-03-14T12:05:00Z","batch":[{` + trackID + `}]}`,
			"2026-03-14T12:00:00Z"},
		{"webhook stores the timestamp as given despite sentAt", "/webhook",
			`{` + trackID + `,` + deviceT + `,` + deviceS + `}`, "2026-03-14T12:04:00Z"},
		{"webhook stores originalTimestamp as given when timestamp is absent", "/webhook",
			`{` + trackID + `,"originalTimestamp":"2026-03-14T12:03:30Z",` + deviceS + `}`,
			"2026-03-14T12:03:30Z"},
		{"webhook without a client time uses Segment's receivedAt", "/webhook",
			`{` + trackID + `,"receivedAt":"2026-03-14T11:58:00Z"}`, "2026-03-14T11:58:00Z"},
		{"webhook with no times at all uses the receive clock", "/webhook",
			`{` + trackID + `}`, "2026-03-14T12:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustServer(t, webhook.Config{WriteKeys: []string{key}})

			rec := mustPost(t, s, call{path: tt.path, body: []byte(tt.body), user: key})

			mustSucceed(t, rec)
			ev := mustEvent(t, s, "m1")
			if want := mustTime(t, tt.wantTs).UnixMilli(); ev.TsMs != want {
				t.Errorf("ts = %s, want %s", time.UnixMilli(ev.TsMs).UTC(), tt.wantTs)
			}
			if want := receiveClock().UnixMilli(); ev.ReceivedMs != want {
				t.Errorf("received = %s, want %s", time.UnixMilli(ev.ReceivedMs).UTC(),
					receiveClock())
			}
		})
	}
}

func TestBadTimesAreRefused(t *testing.T) {
	const key = "wk-test"
	trackID := `"type":"track","userId":"u1","event":"E","messageId":"m1"`

	tests := []struct {
		name     string
		path     string
		body     string
		wantPart string
	}{
		{"unreadable timestamp", "/v1/track", `{` + trackID + `,"timestamp":"soon"}`,
			`timestamp "soon" is not an ISO-8601 date`},
		{"numeric timestamp", "/webhook", `{` + trackID + `,"timestamp":1700000000}`,
			"timestamp must be an ISO-8601 date string"},
		{"thirty-first of April", "/webhook",
			`{` + trackID + `,"timestamp":"2026-04-31T00:00:00Z"}`, "not an ISO-8601 date"},
		{"unreadable sentAt", "/v1/track",
			`{` + trackID + `,"timestamp":"2026-03-14T12:04:00Z","sentAt":"later"}`,
			`sentAt "later" is not an ISO-8601 date`},
		{"unreadable batch sentAt", "/v1/batch",
			`{"sentAt":"later","batch":[{` + trackID + `,"timestamp":"2026-03-14T12:04:00Z"}]}`,
			`sentAt "later" is not an ISO-8601 date`},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			s := mustServer(t, webhook.Config{WriteKeys: []string{key}})

			rec := mustPost(t, s, call{path: tt.path, body: []byte(tt.body), user: key})

			mustFail(t, rec, http.StatusBadRequest, "invalid", tt.wantPart)
			if n := mustEventCount(t, s); n != 0 {
				t.Errorf("stored %d events, want 0", n)
			}
		})
	}
}

func TestLenientParsing(t *testing.T) {
	const key = "wk-test"

	tests := []struct {
		name     string
		path     string
		body     string
		wantUser string
		wantAnon string
		wantApp  string
		wantType string
		wantTs   string // "" for the receive clock
		wantID   string // "" for m1
	}{
		{"numeric userId is read as text", "/webhook",
			`{"type":"track","userId":12345,"event":"E","messageId":"m1"}`,
			"12345", "", "", "track", "", ""},
		{"a numeric userId beyond float precision keeps every digit", "/v1/track",
			`{"userId":9007199254740993,"event":"E","messageId":"m1"}`,
			"9007199254740993", "", "", "track", "", ""},
		{"numeric anonymousId is read as text", "/webhook",
			`{"type":"page","anonymousId":77,"messageId":"m1"}`, "", "77", "", "page", "", ""},
		{"null userId with an anonymousId is accepted", "/webhook",
			`{"type":"track","userId":null,"anonymousId":"a1","event":"E","messageId":"m1"}`,
			"", "a1", "", "track", "", ""},
		{"context.app as a string names the app", "/webhook",
			`{"type":"track","userId":"u1","event":"E","context":{"app":"SegKicks"},` +
				`"messageId":"m1"}`, "u1", "", "SegKicks", "track", "", ""},
		{"context.app as an object names the app", "/v1/track",
			`{"userId":"u1","event":"E","context":{"app":{"name":"SegKicks",` +
				`"version":"2.1","build":3}},"messageId":"m1"}`,
			"u1", "", "SegKicks", "track", "", ""},
		{"version as a number is accepted", "/webhook",
			`{"version":2,"type":"identify","userId":"u1","messageId":"m1"}`,
			"u1", "", "", "identify", "", ""},
		{"version as a string is accepted", "/v1/identify",
			`{"version":"1.1","userId":"u1","messageId":"m1"}`,
			"u1", "", "", "identify", "", ""},
		{"a date without zero padding is read", "/webhook",
			`{"type":"track","userId":"u1","event":"E","messageId":"m1",` +
				`"timestamp":"2015-2-02T00:30:08.276Z"}`,
			"u1", "", "", "track", "2015-02-02T00:30:08.276Z", ""},
		{"a date without zone is read as UTC", "/webhook",
			`{"type":"track","userId":"u1","event":"E","messageId":"m1",` +
				`"timestamp":"2015-02-02T00:30:08"}`,
			"u1", "", "", "track", "2015-02-02T00:30:08Z", ""},
		{"a numeric messageId is read as text", "/webhook",
			`{"type":"track","userId":"u1","event":"E","messageId":1}`,
			"u1", "", "", "track", "", "1"},
		{"an upper-case type is read", "/webhook",
			`{"type":"TRACK","userId":"u1","event":"E","messageId":"m1"}`,
			"u1", "", "", "track", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustServer(t, webhook.Config{WriteKeys: []string{key}})

			rec := mustPost(t, s, call{path: tt.path, body: []byte(tt.body), user: key})

			mustSucceed(t, rec)
			wantID := tt.wantID
			if wantID == "" {
				wantID = "m1"
			}
			if ids := mustMessageIDs(t, s); !slices.Equal(ids, []string{wantID}) {
				t.Fatalf("stored %q, want [%q]", ids, wantID)
			}
			ev := mustEvent(t, s, wantID)
			if ev.UserID != tt.wantUser || ev.AnonymousID != tt.wantAnon {
				t.Errorf("ids = %q/%q, want %q/%q", ev.UserID, ev.AnonymousID,
					tt.wantUser, tt.wantAnon)
			}
			if ev.App != tt.wantApp || ev.Type != tt.wantType {
				t.Errorf("app, type = %q, %q, want %q, %q", ev.App, ev.Type,
					tt.wantApp, tt.wantType)
			}
			want := receiveClock()
			if tt.wantTs != "" {
				want = mustTime(t, tt.wantTs)
			}
			if ev.TsMs != want.UnixMilli() {
				t.Errorf("ts = %s, want %s", time.UnixMilli(ev.TsMs).UTC(), want)
			}
		})
	}
}

func TestLenientBatchFixture(t *testing.T) {
	const key = "wk-test"
	body, err := os.ReadFile(filepath.Join("testdata", "batch-lenient.json"))
	if err != nil {
		t.Fatal(err)
	}
	s := mustServer(t, webhook.Config{WriteKeys: []string{key}})

	mustSucceed(t, mustPost(t, s, call{path: "/v1/batch", body: body, user: key}))

	tests := []struct {
		id, user, anon, app, ts string
	}{
		{"lenient-1", "1000042", "", "", "2015-02-02T00:30:08.276Z"},
		{"lenient-2", "1000042", "", "SegKicks", "2015-02-02T00:30:09Z"},
		{"lenient-3", "", "77", "SegKicks Web", "2015-02-02T00:30:08Z"},
	}
	for _, tt := range tests {
		ev := mustEvent(t, s, tt.id)
		if ev.UserID != tt.user || ev.AnonymousID != tt.anon || ev.App != tt.app {
			t.Errorf("%s: user, anon, app = %q, %q, %q, want %q, %q, %q", tt.id,
				ev.UserID, ev.AnonymousID, ev.App, tt.user, tt.anon, tt.app)
		}
		if want := mustTime(t, tt.ts).UnixMilli(); ev.TsMs != want {
			t.Errorf("%s: ts = %s, want %s", tt.id, time.UnixMilli(ev.TsMs).UTC(), tt.ts)
		}
	}
	if n := mustEventCount(t, s); n != len(tests) {
		t.Errorf("stored %d events, want %d", n, len(tests))
	}
}

func TestWebhookStoresEachCallType(t *testing.T) {
	const secret = "shared-s3cret"

	tests := []struct {
		file, wantType, wantEvent, wantUser, wantAnon, wantApp, wantTs string
	}{
		{"identify.json", "identify", "", "user-501", "anon-9f2", "",
			"2026-03-10T08:15:00.120Z"},
		{"track.json", "track", "Workout Logged", "user-501", "", "RowMate",
			"2026-03-10T08:20:00Z"},
		{"page.json", "page", "Pricing", "", "anon-9f2", "", "2026-03-10T08:10:00Z"},
		{"screen.json", "screen", "Workout Summary", "user-501", "", "RowMate",
			"2026-03-10T08:21:00Z"},
		{"group.json", "group", "", "user-501", "", "", "2026-03-10T08:30:00Z"},
		{"alias.json", "alias", "", "user-501", "", "", "2026-03-10T08:31:00Z"},
	}
	for _, tt := range tests {
		t.Run("signed "+tt.wantType+" from the webhook destination is stored", func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			s := mustServer(t, webhook.Config{Secret: secret})

			rec := mustPost(t, s, call{path: "/webhook", body: body, header: map[string]string{
				"Content-Type": "application/json",
				"User-Agent":   "Segment.io/1.0",
				"X-Signature":  webhook.Signature(secret, body),
			}})

			mustSucceed(t, rec)
			ev := mustEvent(t, s, "fx-"+tt.wantType+"-1")
			got := []string{ev.Type, ev.Event, ev.UserID, ev.AnonymousID, ev.App, ev.Source}
			want := []string{tt.wantType, tt.wantEvent, tt.wantUser, tt.wantAnon, tt.wantApp,
				"webhook"}
			if !slices.Equal(got, want) {
				t.Errorf("type, event, user, anon, app, source = %q, want %q", got, want)
			}
			if ev.Raw != string(body) {
				t.Errorf("raw differs from the body as sent")
			}
			if w := mustTime(t, tt.wantTs).UnixMilli(); ev.TsMs != w {
				t.Errorf("ts = %s, want %s", time.UnixMilli(ev.TsMs).UTC(), tt.wantTs)
			}
		})
	}
}

func TestSegmentDeleteRequestOnTheWebhookErasesTheUser(t *testing.T) {
	s := mustServer(t, webhook.Config{})
	mustSucceed(t, mustPost(t, s, call{path: "/webhook", body: []byte(
		`{"type":"identify","messageId":"m1","userId":"u1","traits":{"email":"a@b.test"}}`)}))

	mustSucceed(t, mustPost(t, s, call{path: "/webhook", body: []byte(
		`{"type":"delete","userId":"u1","timestamp":"2026-12-01T00:00:00Z"}`)}))
	if n := mustEventCount(t, s); n != 0 {
		t.Errorf("%d events left after the deletion request", n)
	}
	if n := mustCount(t, s, `SELECT COUNT(*) FROM identities`); n != 0 {
		t.Errorf("%d identifiers left after the deletion request", n)
	}
}
