package audiences_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/knit-cdp/knit/audiences"
	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// flakyReceiver fails its first calls, then takes everything, and keeps
// every body it took.
type flakyReceiver struct {
	mu       sync.Mutex
	failures []error // then statuses below
	statuses []int
	taken    []map[string]any
	headers  []map[string]string
}

func (f *flakyReceiver) Send(_ context.Context, r audiences.Request) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.failures) > 0 {
		err := f.failures[0]
		f.failures = f.failures[1:]
		return 0, err
	}
	if len(f.statuses) > 0 {
		status := f.statuses[0]
		f.statuses = f.statuses[1:]
		return status, nil
	}
	var body map[string]any
	_ = json.Unmarshal(r.Body, &body)
	f.taken = append(f.taken, body)
	f.headers = append(f.headers, r.Headers)
	return 200, nil
}

func TestOutboxDeliversEntriesDespiteFailuresAndOnlyOnce(t *testing.T) {
	db := sqltest.MustOpen(t)
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	defs := audiences.WithBuiltins(nil)
	for i := range defs {
		if defs[i].Name == "shoe_reorder" {
			defs[i].Destinations = []audiences.Destination{{URL: "http://127.0.0.1/hook",
				Style: "track", Secret: "s3cret", WriteKey: "wk"}}
		}
	}
	store := resolver.NewStore(db, resolver.DefaultRules(), clock, nil)
	if _, err := store.Ingest(context.Background(), mustSeed(t)); err != nil {
		t.Fatal(err)
	}
	runner := audiences.NewRunner(db, defs, clock, nil)
	if _, err := runner.Run(context.Background(), "shoe_reorder"); err != nil {
		t.Fatal(err)
	}

	receiver := &flakyReceiver{failures: []error{errors.New("connection refused")},
		statuses: []int{503, 429}}
	for attempt := 0; attempt < 6; attempt++ {
		if _, err := runner.DeliverDue(context.Background(), receiver, 10); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Hour) // past every backoff
	}
	// A new runner over the same database (a restart) finds nothing left.
	again := audiences.NewRunner(db, defs, clock, nil)
	if n, err := again.DeliverDue(context.Background(), receiver, 10); err != nil || n != 0 {
		t.Errorf("after delivery a restart finds %d due (err %v)", n, err)
	}

	if len(receiver.taken) != 1 {
		t.Fatalf("delivered %d times, want once: %v", len(receiver.taken), receiver.taken)
	}
	got := receiver.taken[0]
	props, _ := got["properties"].(map[string]any)
	if got["type"] != "track" || got["event"] != "Audience Entered" ||
		props["audience_key"] != "shoe_reorder" || props["shoe_reorder"] != true ||
		got["userId"] != "abc123def" || got["messageId"] == "" {
		t.Errorf("delivered %v", got)
	}
	if h := receiver.headers[0]; h["X-Signature"] == "" || h["Authorization"] != "Basic d2s6" {
		t.Errorf("headers %v", h)
	}
	stats, err := runner.Outbox(context.Background(), "shoe_reorder")
	if err != nil || stats.Delivered != 1 || stats.Pending != 0 || stats.Failed != 0 {
		t.Errorf("outbox %+v (err %v)", stats, err)
	}
}

func TestOutboxGivesUpAndShowsTheFailure(t *testing.T) {
	db := sqltest.MustOpen(t)
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	defs := audiences.WithBuiltins(nil)
	for i := range defs {
		defs[i].Destinations = []audiences.Destination{{URL: "http://127.0.0.1/hook",
			GiveUpAfter: audiences.Duration(2 * time.Hour)}}
	}
	store := resolver.NewStore(db, resolver.DefaultRules(), clock, nil)
	if _, err := store.Ingest(context.Background(), mustSeed(t)); err != nil {
		t.Fatal(err)
	}
	runner := audiences.NewRunner(db, defs, clock, nil)
	if _, err := runner.Run(context.Background(), "cart_abandonment"); err != nil {
		t.Fatal(err)
	}
	down := &flakyReceiver{statuses: []int{500, 500, 500, 500, 500, 500, 500, 500}}
	for range 5 {
		if _, err := runner.DeliverDue(context.Background(), down, 10); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Hour)
	}
	stats, _ := runner.Outbox(context.Background(), "cart_abandonment")
	if stats.Failed != 1 || stats.Delivered != 0 {
		t.Errorf("outbox %+v, want the one message failed", stats)
	}
}

// mustSeed parses the seed journey's messages.
func mustSeed(t *testing.T) []*resolver.Message {
	t.Helper()
	raw, err := os.ReadFile("../testdata/seed-journey/messages.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	env := resolver.Envelope{Source: "test", ReceivedAt: time.Now()}
	var out []*resolver.Message
	for _, line := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		m, err := resolver.ParseMessage(line, env)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func TestOutboxFollowsItsDestinationThroughConfigEditsAndSendsOnce(t *testing.T) {
	db := sqltest.MustOpen(t)
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	withDestinations := func(dests ...audiences.Destination) []audiences.Definition {
		defs := audiences.WithBuiltins(nil)
		for i := range defs {
			if defs[i].Name == "shoe_reorder" {
				defs[i].Destinations = dests
			}
		}
		return defs
	}
	crm := audiences.Destination{URL: "http://127.0.0.1/crm", Secret: "a"}
	ads := audiences.Destination{URL: "http://127.0.0.1/ads", WriteKey: "b"}
	store := resolver.NewStore(db, resolver.DefaultRules(), clock, nil)
	if _, err := store.Ingest(context.Background(), mustSeed(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := audiences.NewRunner(db, withDestinations(crm), clock, nil).
		Run(context.Background(), "shoe_reorder"); err != nil {
		t.Fatal(err)
	}

	// A new destination goes first in the list: the queued message still
	// goes to the CRM, once, however many senders run at the same time.
	edited := audiences.NewRunner(db, withDestinations(ads, crm), clock, nil)
	receiver := &recordingReceiver{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := edited.DeliverDue(context.Background(), receiver, 10); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if len(receiver.urls) != 1 || receiver.urls[0] != crm.URL {
		t.Errorf("sent to %v, want the CRM once", receiver.urls)
	}
}

type recordingReceiver struct {
	mu   sync.Mutex
	urls []string
}

func (r *recordingReceiver) Send(_ context.Context, req audiences.Request) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.urls = append(r.urls, req.URL)
	return 200, nil
}

// stuckReceiver never answers the stuck URL until released, and takes
// every other message at once.
type stuckReceiver struct {
	stuck    string
	release  chan struct{}
	mu       sync.Mutex
	received []string
	taken    chan string
}

func (s *stuckReceiver) Send(ctx context.Context, r audiences.Request) (int, error) {
	if r.URL == s.stuck {
		select {
		case <-s.release:
			return 503, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	s.taken <- r.URL
	return 200, nil
}

func TestASlowDestinationHoldsUpNoOther(t *testing.T) {
	db := sqltest.MustOpen(t)
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	defs := audiences.WithBuiltins(nil)
	for i := range defs {
		defs[i].Destinations = []audiences.Destination{
			{URL: "http://127.0.0.1/stuck"}, {URL: "http://127.0.0.1/fine"}}
	}
	store := resolver.NewStore(db, resolver.DefaultRules(), clock, nil)
	if _, err := store.Ingest(context.Background(), mustSeed(t)); err != nil {
		t.Fatal(err)
	}
	runner := audiences.NewRunner(db, defs, clock, nil)
	if _, err := runner.Run(context.Background(), "shoe_reorder"); err != nil {
		t.Fatal(err)
	}

	receiver := &stuckReceiver{stuck: "http://127.0.0.1/stuck",
		release: make(chan struct{}), taken: make(chan string, 10)}
	done := make(chan error, 1)
	go func() {
		_, err := runner.DeliverDue(context.Background(), receiver, 10)
		done <- err
	}()

	select {
	case url := <-receiver.taken:
		if url != "http://127.0.0.1/fine" {
			t.Errorf("delivered to %s", url)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the healthy destination got nothing while the other was stuck")
	}
	close(receiver.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	stats, err := runner.Outbox(context.Background(), "shoe_reorder")
	if err != nil || stats.Delivered != 1 || stats.Pending != 1 {
		t.Errorf("outbox %+v (err %v), want one delivered and one to retry", stats, err)
	}
}
