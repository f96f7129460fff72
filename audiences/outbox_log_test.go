package audiences_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/audiences"
	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// A message that a receiver refuses for good is logged as a warning that
// names the audience, the outbox row and the reason, with the
// destination's URL stripped of its credentials.
func TestOutboxLogsAFailedDeliveryWithoutSecrets(t *testing.T) {
	db := sqltest.MustOpen(t)
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	defs := audiences.WithBuiltins(nil)
	for i := range defs {
		defs[i].Destinations = []audiences.Destination{{
			URL: "http://user:pw-secret@127.0.0.1/hook?key=query-secret", Style: "track"}}
	}
	store := resolver.NewStore(db, resolver.DefaultRules(), clock, nil)
	if _, err := store.Ingest(context.Background(), mustSeed(t)); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logged, nil))
	runner := audiences.NewRunner(db, defs, clock, log)
	if _, err := runner.Run(context.Background(), "shoe_reorder"); err != nil {
		t.Fatal(err)
	}
	logged.Reset()

	refusing := &flakyReceiver{statuses: []int{400}}
	if _, err := runner.DeliverDue(context.Background(), refusing, 10); err != nil {
		t.Fatal(err)
	}

	failures := failedDeliveryRecords(t, logged.String())
	if len(failures) != 1 {
		t.Fatalf("logged %d failed deliveries, want 1:\n%s", len(failures), logged.String())
	}
	got := failures[0]
	if got["level"] != "WARN" || got["audience"] != "shoe_reorder" ||
		got["reason"] != "answered 400" || got["attempts"] != float64(1) ||
		got["outbox_id"] == nil {
		t.Errorf("logged %v", got)
	}
	url, _ := got["destination_url"].(string)
	if !strings.Contains(url, "127.0.0.1/hook") || strings.Contains(url, "secret") {
		t.Errorf("destination_url %q: want the host and path, no credentials", url)
	}
}

// failedDeliveryRecords returns the JSON log records of failed deliveries.
func failedDeliveryRecords(t *testing.T, lines string) []map[string]any {
	t.Helper()

	var records []map[string]any
	for line := range strings.Lines(lines) {
		var record map[string]any
		if err := json.Unmarshal([]byte(line), &record); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if record["msg"] == "audience delivery failed" {
			records = append(records, record)
		}
	}
	return records
}
