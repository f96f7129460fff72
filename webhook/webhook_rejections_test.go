package webhook_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/webhook"
)

// fakeRecorder keeps the refusals it is given, and fails with err.
type fakeRecorder struct {
	mu  sync.Mutex
	got []resolver.Rejection
	err error
}

func (f *fakeRecorder) RecordRejections(_ context.Context, r []resolver.Rejection) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, r...)
	return f.err
}

func (f *fakeRecorder) recorded() []resolver.Rejection {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]resolver.Rejection(nil), f.got...)
}

// wantRecord is what one recorded refusal must hold.
type wantRecord struct {
	source, endpoint, reason, messageID string
	excerpt                             string // exactly, unless prefix is set
	prefix                              bool
}

func mustRecorded(t *testing.T, got []resolver.Rejection, want []wantRecord) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("recorded %d refusals, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		excerptOK := g.Excerpt == w.excerpt ||
			w.prefix && len(g.Excerpt) == resolver.MaxExcerptBytes &&
				strings.HasPrefix(w.excerpt, g.Excerpt)
		if g.Source != w.source || g.Endpoint != w.endpoint || g.MessageID != w.messageID ||
			!strings.Contains(g.Reason, w.reason) || !excerptOK ||
			g.ReceivedMS != receiveClock().UnixMilli() {
			t.Errorf("refusal %d = {%s %s %q id %q at %d, excerpt %.80q}\n"+
				"want {%s %s ...%q... id %q, excerpt %.80q}", i, g.Source, g.Endpoint,
				g.Reason, g.MessageID, g.ReceivedMS, g.Excerpt, w.source, w.endpoint,
				w.reason, w.messageID, w.excerpt)
		}
	}
}

func TestWholeRequestRefusalsAreRecorded(t *testing.T) {
	const key, secret = "wk-test", "shared-s3cret"
	label := webhook.WriteKeySource(key)
	signed := track("m-sig")
	tooLarge := mustPadded(t, "m-big", webhook.MaxRequestBytes+10)
	noEvent := `{"type":"track","userId":"u1","messageId":"bad0"}`

	tests := []struct {
		name   string
		cfg    webhook.Config
		call   call
		status int
		want   wantRecord
	}{
		{"broken webhook array", webhook.Config{},
			call{path: "/webhook", body: []byte(`[{"type":"track"`)}, http.StatusBadRequest,
			wantRecord{"webhook", "/webhook", "not a valid JSON array", "",
				`[{"type":"track"`, false}},
		{"wrong signature", webhook.Config{Secret: secret},
			call{path: "/webhook", body: []byte(signed),
				header: map[string]string{"X-Signature": "00ff"}}, http.StatusUnauthorized,
			wantRecord{"webhook", "/webhook", "X-Signature does not match", "m-sig",
				signed, false}},
		{"missing signature", webhook.Config{Secret: secret},
			call{path: "/webhook", body: []byte(signed)}, http.StatusUnauthorized,
			wantRecord{"webhook", "/webhook", "X-Signature header is missing", "m-sig",
				signed, false}},
		{"too large", webhook.Config{},
			call{path: "/webhook", body: []byte(tooLarge)}, http.StatusBadRequest,
			wantRecord{"webhook", "/webhook", "over 512000 bytes", "", tooLarge, true}},
		{"wrong content type", webhook.Config{},
			call{path: "/webhook", body: []byte("a=b&c=d"), header: map[string]string{
				"Content-Type": "application/x-www-form-urlencoded"}},
			http.StatusUnsupportedMediaType,
			wantRecord{"webhook", "/webhook", "is not supported", "", "a=b&c=d", false}},
		{"one invalid message", webhook.Config{},
			call{path: "/webhook", body: []byte(noEvent)}, http.StatusBadRequest,
			wantRecord{"webhook", "/webhook", "event is required", "bad0", noEvent, false}},
		{"tracking API off", webhook.Config{},
			call{path: "/v1/track", body: []byte(track("m-off")), user: key},
			http.StatusUnauthorized, wantRecord{"tracking", "/v1/track",
				"tracking API is off", "m-off", track("m-off"), false}},
		{"wrong write key", webhook.Config{WriteKeys: []string{key}},
			call{path: "/v1/batch", body: batchBody(track("m1")), user: "nope"},
			http.StatusUnauthorized, wantRecord{"tracking", "/v1/batch",
				"write key is not valid", "", string(batchBody(track("m1"))), false}},
		{"broken JSON with a valid key", webhook.Config{WriteKeys: []string{key}},
			call{path: "/v1/identify", body: []byte(`{"userId":`), user: key},
			http.StatusBadRequest, wantRecord{label, "/v1/identify", "not valid JSON", "",
				`{"userId":`, false}},
		{"batch over the count limit", webhook.Config{WriteKeys: []string{key}},
			call{path: "/v1/import", body: batchBody(manyTracks(2501)...), user: key},
			http.StatusBadRequest, wantRecord{label, "/v1/import", "the limit is 2500", "",
				string(batchBody(manyTracks(2501)...)), true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recorder := &fakeRecorder{}
			tt.cfg.Rejections = recorder
			s := mustServer(t, tt.cfg)
			mustReply(t, mustPost(t, s, tt.call), tt.status)
			mustRecorded(t, recorder.recorded(), []wantRecord{tt.want})
		})
	}
}

func TestBatchElementRefusalsAreRecorded(t *testing.T) {
	const key = "wk-test"
	items, _, rejected := mixedBatch(t)
	want := func(source, endpoint string) []wantRecord {
		var records []wantRecord
		for _, r := range rejected {
			item := items[r.index]
			id := ""
			if strings.HasPrefix(item, "{") {
				id = fmt.Sprintf("bad%d", r.index)
			}
			if r.index == 14 { // the over-long messageId, as sent
				id = strings.Repeat("m", resolver.MaxMessageIDLen+1)
			}
			records = append(records, wantRecord{source, endpoint, r.part, id, item,
				len(item) > resolver.MaxExcerptBytes})
		}
		return records
	}

	for _, tt := range []struct{ path, source string }{
		{"/webhook", "webhook"}, {"/v1/batch", webhook.WriteKeySource(key)},
	} {
		t.Run(tt.path, func(t *testing.T) {
			recorder := &fakeRecorder{}
			s := mustServer(t, webhook.Config{WriteKeys: []string{key}, Rejections: recorder})
			body := array(items...)
			if tt.path != "/webhook" {
				body = batchBody(items...)
			}
			got := mustReply(t, mustPost(t, s, call{path: tt.path, body: body, user: key}),
				http.StatusOK)
			mustRejected(t, got.Rejected, rejected)
			mustRecorded(t, recorder.recorded(), want(tt.source, tt.path))
		})
	}
}

func TestBatchOfOnlyInvalidElementsRecordsEach(t *testing.T) {
	recorder := &fakeRecorder{}
	s := mustServer(t, webhook.Config{Rejections: recorder})
	noEvent := `{"type":"track","userId":"u1","messageId":"bad0"}`
	noIDs := `{"type":"identify","messageId":"bad1"}`

	rec := mustPost(t, s, call{path: "/webhook", body: array(noEvent, noIDs)})
	mustFail(t, rec, http.StatusBadRequest, resolver.EInvalid, "none of the 2")
	mustRecorded(t, recorder.recorded(), []wantRecord{
		{"webhook", "/webhook", "event is required", "bad0", noEvent, false},
		{"webhook", "/webhook", "userId or anonymousId is required", "bad1", noIDs, false},
	})
}

func TestValidRequestsRecordNothing(t *testing.T) {
	recorder := &fakeRecorder{}
	s := mustServer(t, webhook.Config{WriteKeys: []string{"k"}, Rejections: recorder})
	mustSucceed(t, mustPost(t, s, call{path: "/webhook", body: array(track("a"), track("b"))}))
	mustSucceed(t, mustPost(t, s, call{path: "/v1/track", body: []byte(track("c")), user: "k"}))
	mustSucceed(t, mustPost(t, s, call{path: "/webhook", body: []byte(track("a"))})) // again
	if got := recorder.recorded(); len(got) != 0 {
		t.Errorf("recorded %+v for valid requests", got)
	}
}

func TestFailingRecorderKeepsTheAnswer(t *testing.T) {
	items, _, _ := mixedBatch(t)
	calls := []call{
		{path: "/webhook", body: array(items...)},
		{path: "/webhook", body: []byte(`{"type":"track"}`)},
		{path: "/v1/track", body: []byte(`{`), user: "k"},
		{path: "/v1/batch", body: batchBody(track("m1")), user: "not-k"},
	}
	var logged bytes.Buffer
	failing := &fakeRecorder{err: errors.New("disk full")}
	cfg := webhook.Config{WriteKeys: []string{"k"}}
	broken := mustServerLogging(t, webhook.Config{WriteKeys: cfg.WriteKeys, Rejections: failing},
		slog.New(slog.NewJSONHandler(&logged, nil)))
	for i, c := range calls {
		want := mustPost(t, mustServer(t, cfg), c)
		got := mustPost(t, broken, c)
		if got.Code != want.Code || got.Body.String() != want.Body.String() {
			t.Errorf("call %d with a failing recorder: %d %s, want %d %s",
				i, got.Code, got.Body, want.Code, want.Body)
		}
	}
	if len(failing.recorded()) != 15+3 {
		t.Errorf("the recorder was asked for %d refusals, want 18", len(failing.recorded()))
	}
	for _, part := range []string{`"msg":"record rejections"`, `"endpoint":"/webhook"`,
		`"rejections":15`, `"error":"disk full"`} {
		if !strings.Contains(logged.String(), part) {
			t.Errorf("log lacks %s:\n%s", part, logged.String())
		}
	}
}

func TestRefusalsAreRecordedInTheStore(t *testing.T) {
	const key = "wk-test"
	s := mustServer(t, webhook.Config{WriteKeys: []string{key}})
	noEvent := `{"type":"track","userId":"u1","messageId":"bad0"}`
	mustReply(t, mustPost(t, s, call{path: "/webhook", body: []byte(`[{`)}),
		http.StatusBadRequest)
	mustReply(t, mustPost(t, s, call{path: "/v1/batch", user: key,
		body: batchBody(track("ok"), noEvent)}), http.StatusOK)

	got, err := resolver.NewProfiles(s.db).RecentRejections(context.Background(),
		receiveClock(), 10)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		got[i].ID = 0
	}
	mustRecorded(t, got, []wantRecord{ // newest first
		{webhook.WriteKeySource(key), "/v1/batch", "event is required", "bad0", noEvent, false},
		{"webhook", "/webhook", "not a valid JSON array", "", "[{", false},
	})
	if n := mustEventCount(t, s); n != 1 {
		t.Errorf("%d events stored, want the valid one", n)
	}
}
