package resolver_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/knit-cdp/knit/migrations"
	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// prOpenPostgres opens a migrated database in a fresh pr_ schema of the
// test server, dropped at the end; it skips without a server.
func prOpenPostgres(t *testing.T) *sqldb.DB {
	t.Helper()
	server := os.Getenv(sqltest.PostgresEnv)
	if server == "" {
		t.Skipf("%s is not set", sqltest.PostgresEnv)
	}
	ctx := context.Background()
	admin, err := sqldb.OpenPostgres(ctx, server)
	if err != nil {
		t.Fatal(err)
	}
	random := make([]byte, 6)
	_, _ = rand.Read(random)
	schema := "pr_reads_" + hex.EncodeToString(random)
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		_ = admin.Close()
	})
	u, err := url.Parse(server)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db, err := sqldb.OpenPostgres(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := migrations.Up(ctx, db.DB.DB, "postgres"); err != nil {
		t.Fatal(err)
	}
	return db
}

// prStream: a profile that absorbs another by a merge, events at one
// millisecond, an event with many identifiers, and an erased person.
var prStream = []string{
	`{"type":"identify","messageId":"m1","userId":"u1","anonymousId":"a1",` +
		`"timestamp":"2026-11-01T10:00:00Z","traits":{"email":"one@x.test"}}`,
	`{"type":"track","messageId":"m2","anonymousId":"a2","event":"E",` +
		`"timestamp":"2026-11-01T10:01:00Z"}`,
	`{"type":"identify","messageId":"m3","userId":"u1","anonymousId":"a2",` +
		`"timestamp":"2026-11-01T10:02:00Z"}`,
	`{"type":"track","messageId":"m4","userId":"u1","anonymousId":"a3","event":"F",` +
		`"timestamp":"2026-11-01T10:03:00Z"}`,
	`{"type":"track","messageId":"m5","userId":"u1","event":"F",` +
		`"timestamp":"2026-11-01T10:03:00Z"}`,
	`{"type":"track","messageId":"m6","userId":"u2","anonymousId":"a9","event":"E",` +
		`"timestamp":"2026-11-01T10:04:00Z"}`,
	`{"type":"delete","messageId":"d1","userId":"u2"}`,
	`{"type":"identify","messageId":"m7","userId":"u1","anonymousId":"a4",` +
		`"timestamp":"2026-11-01T10:05:00Z","traits":{"email":"Two@x.test","phone":"+15550100"},` +
		`"context":{"device":{"id":"dev-1","type":"ios","advertisingId":"ad-1"},"app":{"name":"A"}}}`,
	`{"type":"track","messageId":"m8","anonymousId":"a2","event":"G",` +
		`"timestamp":"2026-11-01T10:05:00Z"}`,
}

// prReads ingests prStream and reads, for u1's profile, every page of
// events at each page size and order, the sightings, and pages of a
// profile with no events and past the end.
func prReads(t *testing.T, db *sqldb.DB) map[string][]string {
	t.Helper()
	ctx := context.Background()
	store := mustStore(t, db)
	for _, raw := range prStream {
		if _, err := store.Ingest(ctx, []*resolver.Message{mustParseMessage(t, raw)}); err != nil {
			t.Fatal(err)
		}
	}
	profiles := resolver.NewProfiles(db)
	u1, err := profiles.Find(ctx, resolver.Identifier{Type: "user_id", Value: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	// An event of u1 whose message carried no identifier knit links.
	if _, err := db.Exec(db.Rebind(`INSERT INTO events (message_id, source, type,
		ts_ms, received_ms, raw, profile_id) VALUES ('bare', 'test', 'track', ?, ?, '{}', ?)`),
		int64(1793527560000), int64(1793527560000), u1); err != nil {
		t.Fatal(err)
	}

	render := func(page []resolver.ProfileEvent) []string {
		var out []string
		for _, e := range page {
			var ids []string
			for _, id := range e.Identifiers {
				ids = append(ids, id.Type+"="+id.Value)
			}
			out = append(out, e.MessageID+"["+strings.Join(ids, ",")+"]")
		}
		return out
	}
	got := map[string][]string{}
	for _, ascending := range []bool{false, true} {
		whole, err := profiles.EventPage(ctx, u1, resolver.EventQuery{Ascending: ascending, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		got[fmt.Sprintf("whole asc=%v", ascending)] = render(whole)
		for size := 1; size <= 4; size++ {
			var all []string
			var after *resolver.EventPosition
			for pages := 0; ; pages++ {
				page, err := profiles.EventPage(ctx, u1, resolver.EventQuery{
					Ascending: ascending, Limit: size, After: after})
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, render(page)...)
				if len(page) < size || pages > 20 {
					break
				}
				p := page[len(page)-1].Position()
				after = &p
			}
			if !reflect.DeepEqual(all, render(whole)) {
				t.Errorf("pages of %d (asc %v) read %v, one page %v", size, ascending, all, render(whole))
			}
		}
	}
	for _, profile := range []int64{u1 + 1000, -1} {
		page, err := profiles.EventPage(ctx, profile, resolver.EventQuery{Limit: 10})
		if err != nil || len(page) != 0 {
			t.Errorf("profile %d: page %v, %v", profile, render(page), err)
		}
	}
	end := &resolver.EventPosition{TimestampMS: 0, ID: 0}
	page, err := profiles.EventPage(ctx, u1, resolver.EventQuery{Limit: 10, After: end})
	if err != nil || len(page) != 0 {
		t.Errorf("past the end: %v, %v", render(page), err)
	}
	one, err := profiles.EventPage(ctx, u1, resolver.EventQuery{Limit: 10, Include: []string{"G"}})
	if err != nil {
		t.Fatal(err)
	}
	got["only G"] = render(one)

	sightings, err := profiles.Sightings(ctx, u1)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sightings {
		got["sightings"] = append(got["sightings"], fmt.Sprintf("%s=%s last %d in %q on %q",
			s.Type, s.Value, s.LastSeenMS, s.LastApp, s.LastDevice))
	}
	for _, who := range []string{"u2", "a9"} {
		kind := map[string]string{"u2": "user_id", "a9": "anonymous_id"}[who]
		if p, err := profiles.Find(ctx, resolver.Identifier{Type: kind, Value: who}); err == nil {
			page, err := profiles.EventPage(ctx, p, resolver.EventQuery{Limit: 10})
			got["erased "+who] = append(render(page), fmt.Sprint(err))
		}
	}
	return got
}

// Both engines give u1's events the same identifiers in the same order, at
// every page size, and the same last sightings; paging reads what one page
// reads.
func TestPGReadsEventLinksAgreeAcrossEngines(t *testing.T) {
	lite := prReads(t, sqltest.MustOpenSQLite(t))
	if n := len(lite["whole asc=false"]); n != 8 {
		t.Errorf("u1 has %d events on SQLite, want 8: %v", n, lite["whole asc=false"])
	}
	if os.Getenv(sqltest.PostgresEnv) == "" {
		return
	}
	pg := prReads(t, prOpenPostgres(t))
	for key, want := range lite {
		if !reflect.DeepEqual(pg[key], want) {
			t.Errorf("%s:\n postgres %v\n sqlite   %v", key, pg[key], want)
		}
	}
	for key := range pg {
		if _, ok := lite[key]; !ok {
			t.Errorf("%s only on postgres: %v", key, pg[key])
		}
	}
}
