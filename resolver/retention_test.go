package resolver_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

func TestOldMonthsOfEventsAreDroppedWholeOnPostgres(t *testing.T) {
	db := sqltest.MustOpenPostgres(t)
	ctx := context.Background()
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

	// Two events received in September and one in December.
	for i, received := range []time.Time{
		time.Date(2026, 9, 10, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 9, 30, 23, 59, 0, 0, time.UTC),
		time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
	} {
		store := resolver.NewStore(db, resolver.DefaultRules(),
			func() time.Time { return received }, nil)
		if _, err := resolver.MaintainEvents(ctx, db, received, 0); err != nil {
			t.Fatal(err)
		}
		m, err := resolver.ParseMessage([]byte(`{"type":"track","event":"E",
			"anonymousId":"a","messageId":"m`+string(rune('0'+i))+`"}`),
			resolver.Envelope{Source: "test", ReceivedAt: received})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Ingest(ctx, []*resolver.Message{m}); err != nil {
			t.Fatal(err)
		}
	}

	dropped, err := resolver.MaintainEvents(ctx, db, now, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dropped, []string{"events_2026_09"}) {
		t.Errorf("dropped %v, want only September (October and November are kept)", dropped)
	}
	var left int
	if err := db.Get(&left, `SELECT COUNT(*) FROM events`); err != nil || left != 1 {
		t.Errorf("%d events left (%v), want December's one", left, err)
	}
	var ahead int
	if err := db.Get(&ahead, `SELECT COUNT(*) FROM pg_class
		WHERE relname = 'events_2027_02' AND relnamespace = current_schema()::regnamespace`,
	); err != nil || ahead != 1 {
		t.Errorf("February 2027's partition is not ready (%d, %v)", ahead, err)
	}
}
