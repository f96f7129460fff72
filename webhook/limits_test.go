package webhook_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/webhook"
)

// copies returns a batch of n copies of one message: deduplication stores
// it once, so a large batch costs the rate limit n and the database little.
func copies(n int, id string) []string {
	items := make([]string, n)
	for i := range items {
		items[i] = track(id)
	}
	return items
}

// mustRetryAfter checks a refusal's Retry-After: whole seconds from 1 to
// most.
func mustRetryAfter(t *testing.T, rec *httptest.ResponseRecorder, most int) {
	t.Helper()
	wait, err := strconv.Atoi(rec.Header().Get("Retry-After"))
	if err != nil || wait < 1 || wait > most {
		t.Errorf("Retry-After = %q, want whole seconds from 1 to %d",
			rec.Header().Get("Retry-After"), most)
	}
}

// TestRateLimitCountsMessagesPerSource: each source (a write key, and
// /webhook) has its own bucket, drawn per message. A source that drained
// its bucket gets 429 with Retry-After and an error naming the limit;
// nothing of the refused request is stored or recorded as refused, and
// other sources are not held back.
func TestRateLimitCountsMessagesPerSource(t *testing.T) {
	const keyA, keyB = "wk-a", "wk-b"
	// One message every 100 s: the bucket refills by less than one message
	// while the test runs, however slowly (at one a second, storing the
	// full batch took over a second on a loaded machine, and the single
	// message below was let through).
	s := mustServer(t, webhook.Config{WriteKeys: []string{keyA, keyB},
		Limits: webhook.Limits{Rate: 0.01, Burst: webhook.MaxBatchMessages}})

	full := batchBody(copies(webhook.MaxBatchMessages, "m-full")...)
	mustSucceed(t, mustPost(t, s, call{path: "/v1/batch", user: keyA, body: full}))

	// 100 more messages at one every 100 s need about 10,000 s.
	rec := mustPost(t, s, call{path: "/v1/batch", user: keyA,
		body: batchBody(copies(100, "m-over")...)})
	mustFail(t, rec, http.StatusTooManyRequests, resolver.ERateLimited,
		webhook.WriteKeySource(keyA), "KNIT_RATE_LIMIT", "100 message(s)")
	mustRetryAfter(t, rec, 10000)
	if wait, _ := strconv.Atoi(rec.Header().Get("Retry-After")); wait < 9000 {
		t.Errorf("Retry-After = %d for 100 messages at one every 100 s", wait)
	}
	rec = mustPost(t, s, call{path: "/v1/track", user: keyA, body: []byte(track("m-one"))})
	mustFail(t, rec, http.StatusTooManyRequests, resolver.ERateLimited)
	mustRetryAfter(t, rec, 100)

	// Another write key and Segment's webhook each have a bucket of their own.
	mustSucceed(t, mustPost(t, s, call{path: "/v1/batch", user: keyB,
		body: batchBody(copies(100, "m-b")...)}))
	mustSucceed(t, mustPost(t, s, call{path: "/webhook", body: array(copies(100, "m-w")...)}))

	if got := mustMessageIDs(t, s); !equalStrings(got, []string{"m-full", "m-b", "m-w"}) {
		t.Errorf("stored %v, want only the admitted requests' messages", got)
	}
	if n := mustCount(t, s, `SELECT COUNT(*) FROM rejected_messages`); n != 0 {
		t.Errorf("%d refusals recorded; a 429 is retried, not lost", n)
	}
}

// TestRateLimitRefusesWebhookBatchesOverTheBurst: /webhook counts each
// element of an Actions batch too, and a limit is applied only to
// requests that pass authentication, so unsigned requests cannot drain
// Segment's bucket.
func TestRateLimitRefusesWebhookBatchesOverTheBurst(t *testing.T) {
	const secret = "s3cret"
	s := mustServer(t, webhook.Config{Secret: secret,
		Limits: webhook.Limits{Rate: 0.001, Burst: webhook.MaxBatchMessages}})
	signed := func(body []byte, first string) call {
		return call{path: "/webhook", body: body,
			header: map[string]string{"X-Signature": webhook.Signature(secret, []byte(first))}}
	}
	for range 3 {
		rec := mustPost(t, s, call{path: "/webhook", body: array(copies(2000, "m-x")...),
			header: map[string]string{"X-Signature": "00"}})
		mustFail(t, rec, http.StatusUnauthorized, resolver.EUnauthorized)
	}
	mustSucceed(t, mustPost(t, s, signed(array(copies(2000, "m-1")...), track("m-1"))))
	rec := mustPost(t, s, signed(array(copies(501, "m-2")...), track("m-2")))
	mustFail(t, rec, http.StatusTooManyRequests, resolver.ERateLimited, "webhook")
	mustSucceed(t, mustPost(t, s, signed(array(copies(500, "m-3")...), track("m-3"))))
}

// slowBody is a request body that sends its first byte and then holds
// until released, so a request stays in flight for as long as a test
// needs.
type slowBody struct {
	reader  *io.PipeReader
	writer  *io.PipeWriter
	started chan struct{}
}

// mustStartSlow sends a request whose body holds, and returns once the
// handler is reading the body; finish sends the rest and returns the
// answer.
func mustStartSlow(t *testing.T, s *server, c call,
	contentLength int64) (finish func() *httptest.ResponseRecorder) {
	t.Helper()
	reader, writer := io.Pipe()
	req := httptest.NewRequestWithContext(context.Background(), http.MethodPost, c.path, reader)
	req.ContentLength = contentLength
	if c.user != "" {
		req.SetBasicAuth(c.user, "")
	}
	for key, value := range c.header {
		req.Header.Set(key, value)
	}
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.router.ServeHTTP(rec, req)
	}()
	// The write returns once the handler reads: it is past the gate.
	if _, err := writer.Write(c.body[:1]); err != nil {
		t.Fatalf("start the slow request: %v", err)
	}
	return func() *httptest.ResponseRecorder {
		_, _ = io.Copy(writer, bytes.NewReader(c.body[1:]))
		_ = writer.Close()
		<-done
		return rec
	}
}

// TestInflightRequestCapAnswers503: with every slot taken, an ingestion
// request is answered at once with 503, Retry-After and an error naming
// KNIT_MAX_INFLIGHT; once a slot is free, requests pass again.
func TestInflightRequestCapAnswers503(t *testing.T) {
	const key = "wk-a"
	s := mustServer(t, webhook.Config{WriteKeys: []string{key},
		Limits: webhook.Limits{MaxInflight: 1}})
	slow := []byte(track("m-slow"))
	finish := mustStartSlow(t, s, call{path: "/webhook", body: slow}, int64(len(slow)))

	for _, c := range []call{
		{path: "/webhook", body: []byte(track("m-2"))},
		{path: "/v1/track", user: key, body: []byte(track("m-3"))},
		{path: "/v1/batch", user: key, body: batchBody(track("m-4"))},
	} {
		rec := mustPost(t, s, c)
		mustFail(t, rec, http.StatusServiceUnavailable, resolver.EUnavailable,
			"KNIT_MAX_INFLIGHT")
		mustRetryAfter(t, rec, 1)
	}
	mustSucceed(t, finish())
	mustSucceed(t, mustPost(t, s, call{path: "/webhook", body: []byte(track("m-5"))}))
	if got := mustMessageIDs(t, s); !equalStrings(got, []string{"m-slow", "m-5"}) {
		t.Errorf("stored %v, want m-slow and m-5", got)
	}
}

// TestInflightBytesCapCountsBodies: a body of unknown length or compressed
// counts as the most a request may hold (500 KB); a small body counts its
// Content-Length. With the allowance taken, bodies wait outside with 503.
func TestInflightBytesCapCountsBodies(t *testing.T) {
	s := mustServer(t, webhook.Config{
		Limits: webhook.Limits{MaxInflightBytes: webhook.MaxRequestBytes + 1 + 50}})

	small := []byte(track("m-small"))
	finish := mustStartSlow(t, s, call{path: "/webhook", body: small}, int64(len(small)))
	// A second small body fits beside the first; beside a large one, where
	// 50 bytes are left, it does not.
	mustSucceed(t, mustPost(t, s, call{path: "/webhook", body: []byte(track("m-2"))}))
	mustSucceed(t, finish())

	unknown := []byte(track("m-unknown"))
	finish = mustStartSlow(t, s, call{path: "/webhook", body: unknown}, -1)
	rec := mustPost(t, s, call{path: "/webhook", body: []byte(track("m-3"))})
	mustFail(t, rec, http.StatusServiceUnavailable, resolver.EUnavailable,
		"KNIT_MAX_INFLIGHT_BYTES")
	mustRetryAfter(t, rec, 1)
	mustSucceed(t, finish())

	gz := mustGzip(t, []byte(track("m-gzip")))
	finish = mustStartSlow(t, s, call{path: "/webhook", body: gz,
		header: map[string]string{"Content-Encoding": "gzip"}}, int64(len(gz)))
	rec = mustPost(t, s, call{path: "/webhook", body: []byte(track("m-4"))})
	mustFail(t, rec, http.StatusServiceUnavailable, resolver.EUnavailable)
	mustSucceed(t, finish())

	mustSucceed(t, mustPost(t, s, call{path: "/webhook", body: []byte(track("m-5"))}))
	want := []string{"m-small", "m-2", "m-unknown", "m-gzip", "m-5"}
	if got := mustMessageIDs(t, s); !equalStrings(got, want) {
		t.Errorf("stored %v, want %v", got, want)
	}
}

// TestLimitsThatCannotWorkAreRefused: each bad limit is named by its
// setting, all at once.
func TestLimitsThatCannotWorkAreRefused(t *testing.T) {
	err := webhook.Limits{Rate: -1, Burst: 10, MaxInflight: -1, MaxInflightBytes: 1000}.Validate()
	for _, want := range []string{"KNIT_RATE_LIMIT", "KNIT_RATE_BURST", "KNIT_MAX_INFLIGHT ",
		"KNIT_MAX_INFLIGHT_BYTES"} {
		if err == nil || !strings.Contains(err.Error()+" ", want) {
			t.Errorf("Validate() = %v, want it to name %s", err, strings.TrimSpace(want))
		}
	}
	for _, ok := range []webhook.Limits{{}, webhook.DefaultLimits(),
		{Rate: 1000, Burst: 5000, MaxInflight: 1, MaxInflightBytes: 1 << 20}} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
}
