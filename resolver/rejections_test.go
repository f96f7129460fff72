package resolver_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// onEachEngine runs test on a fresh database of every engine available:
// SQLite always, PostgreSQL when sqltest.PostgresEnv is set.
func onEachEngine(t *testing.T, test func(t *testing.T, db *sqldb.DB)) {
	t.Run("sqlite", func(t *testing.T) { test(t, sqltest.MustOpenSQLite(t)) })
	t.Run("postgres", func(t *testing.T) { test(t, sqltest.MustOpenPostgres(t)) })
}

// clock is a settable time for a store.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func rejectionAt(at time.Time, n int) resolver.Rejection {
	return resolver.Rejection{
		ReceivedMS: at.UnixMilli(), Source: "webhook", Endpoint: "/webhook",
		Reason: fmt.Sprintf("reason %d", n), MessageID: fmt.Sprintf("m%d", n),
		Excerpt: fmt.Sprintf(`{"messageId":"m%d"}`, n),
	}
}

func mustRecord(t *testing.T, store *resolver.Store, rejections ...resolver.Rejection) {
	t.Helper()
	if err := store.RecordRejections(context.Background(), rejections); err != nil {
		t.Fatalf("record rejections: %v", err)
	}
}

func mustRejectionIDs(t *testing.T, db *sqldb.DB) (count int, oldest, newest string) {
	t.Helper()
	err := db.QueryRow(`SELECT COUNT(*), COALESCE(MIN(message_id), ''),
		COALESCE(MAX(message_id), '') FROM rejected_messages`).Scan(&count, &oldest, &newest)
	if err != nil {
		t.Fatalf("count rejections: %v", err)
	}
	return count, oldest, newest
}

func TestRecordRejectionsKeepsWhatWasRefused(t *testing.T) {
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		store := resolver.NewStore(db, resolver.DefaultRules(),
			func() time.Time { return fixedNow }, nil)
		first, second := rejectionAt(fixedNow.Add(-time.Minute), 1), rejectionAt(fixedNow, 2)
		second.Source, second.Endpoint = "wk_0123456789ab", "/v1/batch"
		mustRecord(t, store, first, second)
		mustRecord(t, store) // nothing to record is no error

		got, err := resolver.NewProfiles(db).RecentRejections(context.Background(), fixedNow, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Fatalf("got %d rejections, want 2: %+v", len(got), got)
		}
		for i, want := range []resolver.Rejection{second, first} { // newest first
			want.ID = got[i].ID
			if got[i] != want {
				t.Errorf("rejection %d = %+v, want %+v", i, got[i], want)
			}
		}
		if !got[0].ReceivedAt().Equal(fixedNow) {
			t.Errorf("ReceivedAt = %v, want %v", got[0].ReceivedAt(), fixedNow)
		}
		if only, _ := resolver.NewProfiles(db).RecentRejections(context.Background(),
			fixedNow, 1); len(only) != 1 || only[0].MessageID != "m2" {
			t.Errorf("limit 1 gave %+v, want the newest alone", only)
		}
	})
}

func TestRecordRejectionsCleansText(t *testing.T) {
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		store := resolver.NewStore(db, resolver.DefaultRules(),
			func() time.Time { return fixedNow }, nil)
		r := rejectionAt(fixedNow, 1)
		// Invalid UTF-8 and a NUL, which PostgreSQL's text refuses, each
		// becoming a three-byte U+FFFD; then a three-byte character across
		// the 1,000-byte limit.
		r.Excerpt = "a\xff\x00b" + strings.Repeat("x", 990) + "€€"
		r.Reason = strings.Repeat("é", 600)
		r.MessageID = strings.Repeat("m", 300)
		mustRecord(t, store, r)

		got, err := resolver.NewProfiles(db).RecentRejections(context.Background(), fixedNow, 1)
		if err != nil || len(got) != 1 {
			t.Fatalf("read back: %v %+v", err, got)
		}
		excerpt := got[0].Excerpt
		want := "a\uFFFD\uFFFDb" + strings.Repeat("x", 990)
		if excerpt != want {
			t.Errorf("excerpt = %q...%q (%d bytes), want %q...%q (%d)", excerpt[:8],
				excerpt[len(excerpt)-4:], len(excerpt), want[:8], want[len(want)-4:], len(want))
		}
		for name, text := range map[string]string{"excerpt": excerpt,
			"reason": got[0].Reason, "message id": got[0].MessageID} {
			if !utf8.ValidString(text) || len(text) > resolver.MaxExcerptBytes {
				t.Errorf("%s is %d bytes, valid UTF-8 %v", name, len(text), utf8.ValidString(text))
			}
		}
		if len(got[0].Reason) != resolver.MaxExcerptBytes || len(got[0].MessageID) != 200 {
			t.Errorf("reason %d bytes, message id %d; want 1,000 and 200",
				len(got[0].Reason), len(got[0].MessageID))
		}
	})
}

func TestRejectionsAreBoundedByCount(t *testing.T) {
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		store := resolver.NewStore(db, resolver.DefaultRules(),
			func() time.Time { return fixedNow }, nil)
		recorded := 0
		record := func(n int) {
			batch := make([]resolver.Rejection, n)
			for i := range batch {
				batch[i] = rejectionAt(fixedNow, 100_000+recorded)
				recorded++
			}
			mustRecord(t, store, batch...)
			if count, _, _ := mustRejectionIDs(t, db); count > resolver.MaxRejections {
				t.Fatalf("%d rows after %d recorded, want at most %d",
					count, recorded, resolver.MaxRejections)
			}
		}
		for recorded < 12_000 { // whole batches, as a full request sends
			record(2500 - 1)
		}
		for range 150 { // then one at a time, as most refusals come
			record(1)
		}
		count, oldest, newest := mustRejectionIDs(t, db)
		if want := fmt.Sprintf("m%d", 100_000+recorded-1); newest != want {
			t.Errorf("newest kept is %s, want %s", newest, want)
		}
		if want := fmt.Sprintf("m%d", 100_000+recorded-count); oldest != want {
			t.Errorf("oldest of %d kept is %s, want %s: not the newest rows", count, oldest, want)
		}
		if count < resolver.MaxRejections-100 {
			t.Errorf("%d rows kept, want near %d", count, resolver.MaxRejections)
		}
	})
}

func TestRejectionsExpireAfterAWeek(t *testing.T) {
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		now := &clock{now: fixedNow}
		store := resolver.NewStore(db, resolver.DefaultRules(), now.Now, nil)
		week := resolver.RejectionRetention
		mustRecord(t, store, rejectionAt(fixedNow.Add(-week-time.Hour), 1),
			rejectionAt(fixedNow.Add(-week+time.Hour), 2))
		if count, oldest, _ := mustRejectionIDs(t, db); count != 1 || oldest != "m2" {
			t.Fatalf("kept %d rows from %s, want m2 alone: m1 came expired", count, oldest)
		}

		// Two hours on, m2 has expired: it is not shown, and it is deleted
		// as soon as anything is recorded.
		now.now = fixedNow.Add(2 * time.Hour)
		profiles := resolver.NewProfiles(db)
		if shown, err := profiles.RecentRejections(context.Background(), now.now,
			10); err != nil || len(shown) != 0 {
			t.Fatalf("shown %+v, %v; want none", shown, err)
		}
		mustRecord(t, store, rejectionAt(now.now, 3))
		if count, oldest, _ := mustRejectionIDs(t, db); count != 1 || oldest != "m3" {
			t.Errorf("kept %d rows from %s, want m3 alone", count, oldest)
		}
	})
}
