package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

func TestBenchTrafficIsValidSegmentAndRepeatsWithItsSeed(t *testing.T) {
	end := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	a := newBenchStream(7, 500, "run1", 0, end, 30*24*time.Hour)
	b := newBenchStream(7, 500, "run1", 0, end, 30*24*time.Hour)
	other := newBenchStream(7, 500, "run1", 1, end, 30*24*time.Hour)

	ids := map[string]bool{}
	events := map[string]int{}
	for range 3000 {
		raw := a.appendNext(nil)
		if again := b.appendNext(nil); !bytes.Equal(raw, again) {
			t.Fatalf("one seed gave two messages:\n%s\n%s", raw, again)
		}
		for _, msg := range [][]byte{raw, other.appendNext(nil)} {
			m, err := resolver.ParseMessage(msg, resolver.Envelope{Source: "test",
				ReceivedAt: end})
			if err != nil {
				t.Fatalf("%s does not parse: %v", msg, err)
			}
			if ids[m.ID] || !strings.HasPrefix(m.ID, "bench-7-run1-") {
				t.Fatalf("messageId %q repeated or not from the seed and run", m.ID)
			}
			ids[m.ID] = true
			events[m.Type+" "+m.Event]++
			if m.Timestamp.After(end) || m.Timestamp.Before(end.Add(-31*24*time.Hour)) {
				t.Errorf("%s: timestamp %s outside the last 30 days", m.ID, m.Timestamp)
			}
		}
	}
	for _, want := range []string{"identify ", "page Home", "track App Opened",
		"track Product Viewed", "track Product Added", "track Product Removed",
		"track Order Completed", "track Workout Completed"} {
		if events[want] == 0 {
			t.Errorf("no %q in 6,000 messages: %v", want, events)
		}
	}
}

func TestBenchLiveTrafficIsStampedWhenSent(t *testing.T) {
	s := newBenchStream(3, 500, "live", 0, time.Now(), 0)

	for range 2000 {
		before := time.Now()
		raw := s.appendNext(nil)
		after := time.Now()
		m, err := resolver.ParseMessage(raw, resolver.Envelope{Source: "test",
			ReceivedAt: after})
		if err != nil {
			t.Fatalf("%s does not parse: %v", raw, err)
		}
		earliest := before.Add(-liveLag).Truncate(time.Millisecond)
		if m.Timestamp.Before(earliest) || m.Timestamp.After(after) {
			t.Fatalf("%s: timestamp %s, want between %s and %s", m.ID, m.Timestamp,
				earliest, after)
		}
	}
}

func TestBenchBodiesAreWhatTheEndpointsTake(t *testing.T) {
	s := newBenchStream(1, 100, "r", 0, time.Now(), 24*time.Hour)
	var batch struct {
		Batch []json.RawMessage `json:"batch"`
	}
	if err := json.Unmarshal(s.appendBatch(nil, 25), &batch); err != nil ||
		len(batch.Batch) != 25 {
		t.Fatalf("batch body: %v, %d messages", err, len(batch.Batch))
	}

	body, signed := s.appendWebhook(nil, 3)
	var array []json.RawMessage
	if err := json.Unmarshal(body, &array); err != nil || len(array) != 3 {
		t.Fatalf("webhook array: %v, %d messages", err, len(array))
	}
	if !bytes.Equal(signed, array[0]) {
		t.Errorf("signed bytes are not the first element:\n%s\n%s", signed, array[0])
	}
	body, signed = s.appendWebhook(nil, 1)
	if !bytes.Equal(body, signed) || body[0] != '{' {
		t.Errorf("a single webhook message is signed whole: %s", body)
	}
}

func TestLatencyPercentilesAreWithinTwoPercent(t *testing.T) {
	var h latencyHist
	for i := 10000; i >= 1; i-- {
		h.add(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.50, 5000 * time.Microsecond}, {0.95, 9500 * time.Microsecond},
		{0.99, 9900 * time.Microsecond}, {1, 10000 * time.Microsecond}} {
		got := h.quantile(c.q)
		if diff := float64(got-c.want) / float64(c.want); diff < 0 || diff > 0.02 {
			t.Errorf("p%v = %s, want %s to 2 %%", c.q*100, got, c.want)
		}
	}
	var merged latencyHist
	merged.merge(&h)
	merged.add(time.Second)
	if merged.quantile(1) != time.Second || merged.n != 10001 {
		t.Errorf("merged: max %s of %d", merged.quantile(1), merged.n)
	}
}

func TestBenchFlagMistakesAreUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--mode", "batch"}, // no write key
		{"bench", "--mode", "grpc", "--write-key", "k"},
		{"bench", "--mode", "webhook", "--batch", "2501"},
		{"bench", "--mode", "webhook", "--run-id", `a"b`},
		{"bench", "--mode", "webhook", "--url", "127.0.0.1:8080"},
		{"bench", "seed", "--profiles", "10", "--events", "5", "--db",
			sqltest.MustDSN(t, "few.db")},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, func(string) string { return "" }, &stdout,
			&stderr)
		if !errors.Is(err, errUsage) {
			t.Errorf("knit %s: %v, want a usage error", strings.Join(args, " "), err)
		}
	}
}

func TestBenchHelpNamesEveryOption(t *testing.T) {
	for args, wants := range map[string][]string{
		"bench --help": {"knit bench seed", "-url", "-write-key", "KNIT_BENCH_WRITE_KEY",
			"-webhook-secret", "-mode", "-batch", "-concurrency", "-duration", "-events",
			"-warmup", "-rate", "-seed", "-people", "-run-id", "-server-pid",
			"-api-token", "-json", "VmHWM"},
		"bench seed --help": {"-db", "-profiles", "-events", "-seed", "-batch", "-days",
			"deterministic"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), strings.Fields(args),
			func(string) string { return "" }, &stdout, &stderr)
		if !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("knit %s: %v", args, err)
		}
		for _, want := range wants {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("knit %s does not mention %s", args, want)
			}
		}
	}
}

// mustBench runs `knit bench` in-process and returns its JSON report.
func mustBench(t *testing.T, args ...string) benchReport {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args = append([]string{"bench", "run", "--json"}, args...)
	if err := run(context.Background(), args, func(string) string { return "" }, &stdout,
		&stderr); err != nil {
		t.Fatalf("knit %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(),
			stderr.String())
	}
	var report benchReport
	if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, stdout.String())
	}
	return report
}

func TestBenchRunCountsWhatTheServerStored(t *testing.T) {
	dsn := sqltest.MustDSN(t, "bench.db")
	s := mustServe(t, dsn, time.Now().UTC().Format(time.RFC3339))
	common := []string{"--url", s.base, "--duration", "2s", "--warmup", "300ms",
		"--concurrency", "2", "--people", "300"}

	batch := mustBench(t, append(common, "--mode", "batch", "--batch", "20",
		"--write-key", seedWriteKey, "--api-token", testToken)...)
	checkBenchReport(t, batch, dsn, batch.AcceptedTotal)
	if batch.ServerMemory.Source != "metrics" || batch.ServerMemory.PeakBytes <= 0 {
		t.Errorf("memory from /metrics: %+v", batch.ServerMemory)
	}

	hook := mustBench(t, append(common, "--mode", "webhook", "--webhook-secret",
		seedSecret, "--server-pid", strconv.Itoa(os.Getpid()))...)
	checkBenchReport(t, hook, dsn, batch.AcceptedTotal+hook.AcceptedTotal)
	if hook.ServerMemory.Source != "proc" ||
		hook.ServerMemory.PeakBytes < hook.ServerMemory.RSSBytes {
		t.Errorf("memory from /proc: %+v", hook.ServerMemory)
	}
	if hook.Batch != 1 || hook.Requests != hook.EventsAccepted {
		t.Errorf("webhook mode sent %d a request: %d requests, %d events", hook.Batch,
			hook.Requests, hook.EventsAccepted)
	}
}

// checkBenchReport checks a report against the database, which must hold
// stored events in all.
func checkBenchReport(t *testing.T, r benchReport, dsn string, stored int64) {
	t.Helper()
	var events int64
	mustScan(t, mustOpenReadOnly(t, dsn), `SELECT COUNT(*) FROM events`, &events)
	if r.AcceptedTotal == 0 || events != stored || r.AcceptedTotal != r.EventsSent {
		t.Errorf("%s: %d sent, %d accepted; the database holds %d, want %d", r.Mode,
			r.EventsSent, r.AcceptedTotal, events, stored)
	}
	if r.FailedRequests != 0 || r.RejectedEvents != 0 || len(r.ErrorsByStatus) != 0 {
		t.Errorf("%s: errors %v, first %q", r.Mode, r.ErrorsByStatus, r.FirstError)
	}
	l := r.Latency
	if !(0 < l.P50 && l.P50 <= l.P95 && l.P95 <= l.P99 && l.P99 <= l.Max) {
		t.Errorf("%s: percentiles out of order: %+v", r.Mode, l)
	}
	if r.EventsAccepted == 0 || r.EventsAccepted > r.AcceptedTotal ||
		r.EventsPerSecond <= 0 || r.Window <= 0 || r.Generator.CPUSeconds <= 0 {
		t.Errorf("%s: window %v s, %d events, %v events/s, generator %+v", r.Mode,
			r.Window, r.EventsAccepted, r.EventsPerSecond, r.Generator)
	}
}

func TestBenchRunAtAFixedRateSendsTheEventsAskedFor(t *testing.T) {
	dsn := sqltest.MustDSN(t, "rate.db")
	s := mustServe(t, dsn, time.Now().UTC().Format(time.RFC3339))
	r := mustBench(t, "--url", s.base, "--mode", "batch", "--batch", "10", "--write-key",
		seedWriteKey, "--rate", "500", "--events", "405", "--warmup", "0s",
		"--concurrency", "3")
	// 40 requests of 10 and one of 5.
	if r.EventsSent != 405 || r.RequestsTotal != 41 || r.TargetRate != 500 {
		t.Errorf("sent %d events in %d requests at %v/s; want 405 in 41 at 500/s",
			r.EventsSent, r.RequestsTotal, r.TargetRate)
	}
	checkBenchReport(t, r, dsn, 405)
}

// seedClock is when the seeder's data ends in the tests (its day's start),
// and when the tests compute audiences.
const seedClock = "2026-11-30T12:00:00Z"

func TestBenchSeedIsDeterministicAndFillsTheBuiltInAudiences(t *testing.T) {
	args := []string{"--profiles", "200", "--events", "2500", "--seed", "3",
		"--batch", "300", "--clock", seedClock}
	first := sqltest.MustDSN(t, "seed-a.db")
	out := mustRun(t, append([]string{"bench", "seed", "--db", first}, args...)...)
	if !strings.Contains(out, "stored 2500, duplicates 0") {
		t.Errorf("first seed said %q", out)
	}
	counts := seedCounts(t, first)
	if counts[0] != 2500 || counts[1] != 200 {
		t.Errorf("seeded %d events and %d live profiles, want 2500 and 200", counts[0],
			counts[1])
	}
	out = mustRun(t, append([]string{"bench", "seed", "--db", first}, args...)...)
	if !strings.Contains(out, "stored 0, duplicates 2500") || seedCounts(t, first) != counts {
		t.Errorf("seeding again said %q and changed the counts", out)
	}
	second := sqltest.MustDSN(t, "seed-b.db")
	mustRun(t, append([]string{"bench", "seed", "--db", second}, args...)...)
	if got := seedCounts(t, second); got != counts {
		t.Errorf("another database seeded alike holds %v, the first %v", got, counts)
	}

	mustRun(t, "audiences", "run", "--db", first, "--clock", seedClock)
	for _, name := range []string{"cart_abandonment", "shoe_reorder"} {
		if members := exportedMembers(t, first, name); len(members) == 0 {
			t.Errorf("%s has no members in the seeded data", name)
		}
	}
}

// seedCounts fingerprints a seeded database: events, live profiles,
// identifiers, a sum over the events' times and the events on profiles.
func seedCounts(t *testing.T, dsn string) [5]int64 {
	t.Helper()
	db := mustOpenReadOnly(t, dsn)
	var c [5]int64
	mustScan(t, db, `SELECT COUNT(*), COALESCE(SUM(ts_ms % 1000003), 0),
		COUNT(profile_id) FROM events`, &c[0], &c[3], &c[4])
	mustScan(t, db, `SELECT COUNT(*) FROM profiles
		WHERE merged_into IS NULL AND retired_ms IS NULL`, &c[1])
	mustScan(t, db, `SELECT COUNT(*) FROM identities`, &c[2])
	return c
}

// BenchmarkBenchBatchBody measures building a tracking API batch of 100
// messages, the generator's whole work per request in batch mode.
func BenchmarkBenchBatchBody(b *testing.B) {
	s := newBenchStream(1, 100000, "r", 0, time.Now(), 30*24*time.Hour)
	var body []byte
	b.ReportAllocs()
	for b.Loop() {
		body = s.appendBatch(body[:0], 100)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/event")
	b.ReportMetric(float64(len(body))/100, "bytes/event")
}

// BenchmarkBenchClient measures the load generator's CPU per event, HTTP
// client included, against a server in the same process that answers at
// once: an upper bound of what the generator takes from the server it
// measures, since cpu-ns/event counts the trivial server too.
func BenchmarkBenchClient(b *testing.B) {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter,
		r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write([]byte(`{"success":true}`))
	}))
	defer server.Close()
	for _, mode := range []struct {
		name  string
		batch int
	}{{"batch", 100}, {"webhook", 1}} {
		b.Run(mode.name, func(b *testing.B) {
			cfg := &benchConfig{url: server.URL, mode: mode.name, writeKey: "k",
				secret: "s", batch: mode.batch, concurrency: 1, people: 100000, days: 30,
				duration: time.Hour, timeout: 10 * time.Second, seed: 1, runID: "b"}
			w := newBenchWorker(newBenchRun(cfg, time.Now()), 0)
			cpu := processCPU()
			for b.Loop() {
				w.send(context.Background(), mode.batch, time.Time{})
			}
			if w.stats.failed > 0 {
				b.Fatalf("%d requests failed: %s", w.stats.failed, w.stats.firstError)
			}
			events := float64(b.N * mode.batch)
			b.ReportMetric(float64((processCPU()-cpu).Nanoseconds())/events, "cpu-ns/event")
		})
	}
}
