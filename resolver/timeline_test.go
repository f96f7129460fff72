package resolver_test

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// mustJane ingests the seed journey and returns its database, a reader and
// Jane's profile id.
func mustJane(t *testing.T) (*sqldb.DB, *resolver.Profiles, int64) {
	t.Helper()
	db := sqltest.MustOpen(t)
	mustIngestFile(t, mustStore(t, db),
		filepath.Join("..", "testdata", "seed-journey", "messages.ndjson"))
	profiles := resolver.NewProfiles(db)
	jane, err := profiles.Find(context.Background(),
		resolver.Identifier{Type: resolver.TypeEmail, Value: "janedoe@example.com"})
	if err != nil {
		t.Fatalf("find Jane: %v", err)
	}
	return db, profiles, jane
}

func TestTimelinePagesNewestFirstWithoutGapsOrRepeats(t *testing.T) {
	_, profiles, jane := mustJane(t)
	ctx := context.Background()

	var seen []string
	var before *resolver.EventPosition
	pages := 0
	for {
		page, err := profiles.Timeline(ctx, jane, before, 25)
		if err != nil {
			t.Fatalf("timeline page %d: %v", pages+1, err)
		}
		pages++
		for _, e := range page.Events {
			seen = append(seen, e.MessageID)
		}
		if page.Older == nil {
			break
		}
		before = page.Older
	}
	if pages != 3 || len(seen) != 69 {
		t.Fatalf("%d pages with %d events, want 3 pages with 69", pages, len(seen))
	}
	for i, id := range seen {
		if want := fmt.Sprintf("jane-%03d", 69-i); id != want {
			t.Fatalf("event %d is %s, want %s (newest first)", i, id, want)
		}
	}
}

func TestTimelineFullLastPageSaysNoOlder(t *testing.T) {
	_, profiles, jane := mustJane(t)
	page, err := profiles.Timeline(context.Background(), jane, nil, 69)
	if err != nil || len(page.Events) != 69 || page.Older != nil {
		t.Fatalf("a page of exactly all events: %d events, older %v, err %v",
			len(page.Events), page.Older, err)
	}
	if _, err := profiles.Timeline(context.Background(), jane, nil, 0); err == nil {
		t.Error("a page of 0 events was accepted")
	}
}

func TestPresencesTellAppsAndDevicesApart(t *testing.T) {
	_, profiles, jane := mustJane(t)
	presences, err := profiles.Presences(context.Background(), jane)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	total := 0
	for _, p := range presences {
		got[p.App+" on "+p.DeviceType+" "+p.DeviceID] = p.Events
		total += p.Events
		if p.First().After(p.Last()) {
			t.Errorf("%+v: first after last", p)
		}
	}
	for _, want := range []string{"SegKicks on ios ios_abc123",
		"SegKicks on android and_1a2b3c4d", "SegRuns on android and_1a2b3c4d"} {
		if got[want] == 0 {
			t.Errorf("presences lack %s: %v", want, got)
		}
	}
	if len(got) != 3 || total != 69 {
		t.Errorf("presences = %v (%d events), want 3 places and 69 events", got, total)
	}
	if presences[0].App != "SegKicks" || presences[0].DeviceType != "ios" {
		t.Errorf("first presence = %+v, want SegKicks on the iPhone", presences[0])
	}
}

func TestSightingsSayWhereEachIdentifierWasFirstAndLastSeen(t *testing.T) {
	_, profiles, jane := mustJane(t)
	sightings, err := profiles.Sightings(context.Background(), jane)
	if err != nil {
		t.Fatal(err)
	}
	byValue := map[string]resolver.Sighting{}
	for _, s := range sightings {
		byValue[s.Value] = s
	}
	day := func(d, h int) time.Time { return time.Date(2026, 8, d, h, 0, 0, 0, time.UTC) }
	for _, want := range []struct {
		value, firstApp, firstDevice, lastApp, lastDevice string
		first, last                                       time.Time
	}{
		{"anon_123", "SegKicks", "ios ios_abc123", "SegKicks", "ios ios_abc123",
			day(3, 9), time.Date(2026, 11, 26, 20, 3, 0, 0, time.UTC)},
		{"anon_789", "SegRuns", "android and_1a2b3c4d", "SegRuns", "android and_1a2b3c4d",
			day(5, 7), time.Date(2026, 11, 24, 6, 30, 0, 0, time.UTC)},
		{"abc123def", "SegKicks", "ios ios_abc123", "SegKicks", "android and_1a2b3c4d",
			time.Date(2026, 8, 3, 9, 8, 0, 0, time.UTC),
			time.Date(2026, 11, 27, 21, 0, 0, 0, time.UTC)},
	} {
		s := byValue[want.value]
		if s.App != want.firstApp || s.Device != want.firstDevice ||
			!s.FirstSeen.Equal(want.first) || s.LastApp != want.lastApp ||
			s.LastDevice != want.lastDevice || !s.LastSeen.Equal(want.last) {
			t.Errorf("%s: first %s in %s on %s, last %s in %s on %s; want %+v", want.value,
				s.FirstSeen, s.App, s.Device, s.LastSeen, s.LastApp, s.LastDevice, want)
		}
	}
	if len(sightings) != 7 {
		t.Errorf("%d identifiers, want 7", len(sightings))
	}
}

func TestSummariesNameEachPersonWithTheirIdentifiers(t *testing.T) {
	_, profiles, jane := mustJane(t)
	ctx := context.Background()
	summaries, err := profiles.Summaries(ctx, []int64{jane, 999999})
	if err != nil {
		t.Fatal(err)
	}
	if len(summaries) != 1 || summaries[0].Profile != jane {
		t.Fatalf("summaries = %+v, want Jane's alone", summaries)
	}
	s := summaries[0]
	var keys []string
	for _, trait := range s.NameTraits {
		keys = append(keys, trait.Key+"="+string(trait.Value))
	}
	if !slices.Equal(keys, []string{`first_name="Jane"`, `last_name="Doe"`}) {
		t.Errorf("name traits = %v", keys)
	}
	if len(s.Identifiers) != 7 ||
		!s.LastSeen.Equal(time.Date(2026, 11, 27, 21, 0, 0, 0, time.UTC)) {
		t.Errorf("identifiers %v, last seen %s", s.Identifiers, s.LastSeen)
	}
	if none, err := profiles.Summaries(ctx, nil); err != nil || none != nil {
		t.Errorf("no profiles: %v, %v", none, err)
	}
	if _, err := profiles.Summaries(ctx, make([]int64, 101)); err == nil {
		t.Error("101 profiles were summarised")
	}
}

func TestAudienceMembershipsReadOnlyTheNamedAudiences(t *testing.T) {
	db, profiles, jane := mustJane(t)
	ctx := context.Background()
	for _, stmt := range []string{
		`INSERT INTO audience_runs (id, audience, started_ms, evaluated_ms, status)
		 VALUES (7, 'cart_abandonment', 1, 1764244800000, 'ok'),
		        (8, 'retired', 1, 1764244800000, 'ok')`,
		fmt.Sprintf(`INSERT INTO audience_members (audience, profile_id, run_id,
		 identifiers, attributes) VALUES
		 ('cart_abandonment', %d, 7, '[]', '{"abandoned_products":["shoe-c"]}'),
		 ('retired', %d, 8, '[]', '{}'),
		 ('cart_abandonment', %d, 7, '[]', '{}')`, jane, jane, jane+1000),
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	got, err := profiles.AudienceMemberships(ctx, jane,
		[]string{"cart_abandonment", "shoe_reorder"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Audience != "cart_abandonment" || got[0].RunID != 7 ||
		got[0].Attributes != `{"abandoned_products":["shoe-c"]}` ||
		!got[0].EvaluatedAt.Equal(time.Date(2025, 11, 27, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("memberships = %+v", got)
	}
	if none, err := profiles.AudienceMemberships(ctx, jane, nil); err != nil || none != nil {
		t.Errorf("no audiences: %v, %v", none, err)
	}
}

func TestProductNamesComeFromThePersonsOwnEvents(t *testing.T) {
	_, profiles, jane := mustJane(t)
	names, err := profiles.ProductNames(context.Background(), jane,
		[]string{"shoe-c", "sock-1", "shoe-d", "shoe_%", "no-such-product"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"shoe-c": "ShoeC", "sock-1": "Running Socks", "shoe-d": "ShoeD"}
	if len(names) != len(want) {
		t.Errorf("names = %v, want %v", names, want)
	}
	for id, name := range want {
		if names[id] != name {
			t.Errorf("%s is named %q, want %q", id, names[id], name)
		}
	}
}

func TestCurrentProfileFollowsAMerge(t *testing.T) {
	db := sqltest.MustOpen(t)
	store := mustStore(t, db)
	ctx := context.Background()
	env := resolver.Envelope{Source: "test", ReceivedAt: fixedNow}
	for i, line := range []string{
		`{"messageId":"m1","type":"track","event":"A","anonymousId":"a1",
		  "timestamp":"2026-08-01T00:00:00Z"}`,
		`{"messageId":"m2","type":"track","event":"B","userId":"u1",
		  "timestamp":"2026-08-01T00:01:00Z"}`,
		`{"messageId":"m3","type":"identify","userId":"u1","anonymousId":"a1",
		  "timestamp":"2026-08-01T00:02:00Z"}`,
	} {
		m, err := resolver.ParseMessage([]byte(line), env)
		if err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
		if _, err := store.Ingest(ctx, []*resolver.Message{m}); err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
	}
	profiles := resolver.NewProfiles(db)
	live, err := profiles.Find(ctx, resolver.Identifier{Type: "user_id", Value: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	for id := int64(1); id <= 2; id++ {
		if got, err := profiles.CurrentProfile(ctx, id); err != nil || got != live {
			t.Errorf("profile %d is now %d (%v), want %d", id, got, err, live)
		}
	}
	if _, err := profiles.CurrentProfile(ctx, 99); resolver.ErrorCode(err) != resolver.ENotFound {
		t.Errorf("a profile never made: %v, want not found", err)
	}
	checkPersonHistoryIsHistory(t, profiles, live, 3)
}

// checkPersonHistoryIsHistory checks PersonHistory reads what History
// reads for profile, at least least records.
func checkPersonHistoryIsHistory(t *testing.T, profiles *resolver.Profiles, profile int64,
	least int) {
	t.Helper()
	ctx := context.Background()
	want, err := profiles.History(ctx, profile)
	if err != nil {
		t.Fatal(err)
	}
	got, err := profiles.PersonHistory(ctx, profile)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) < least || !reflect.DeepEqual(got, want) {
		t.Errorf("PersonHistory =\n%+v\nHistory =\n%+v", got, want)
	}
}

func TestPersonHistoryReadsWhatHistoryReads(t *testing.T) {
	_, profiles, jane := mustJane(t)
	checkPersonHistoryIsHistory(t, profiles, jane, 6)
}

func TestTimelinePagesThroughEventsAtTheSameMillisecond(t *testing.T) {
	db := sqltest.MustOpen(t)
	store := mustStore(t, db)
	ctx := context.Background()
	env := resolver.Envelope{Source: "test", ReceivedAt: fixedNow}
	var batch []*resolver.Message
	for i := range 7 {
		m, err := resolver.ParseMessage(fmt.Appendf(nil, `{"messageId":"same-%d",
			"type":"track","event":"Tapped","anonymousId":"a1",
			"timestamp":"2026-08-01T00:00:00.000Z"}`, i), env)
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, m)
	}
	if _, err := store.Ingest(ctx, batch); err != nil {
		t.Fatal(err)
	}
	profiles := resolver.NewProfiles(db)
	profile, err := profiles.Find(ctx, resolver.Identifier{Type: "anonymous_id", Value: "a1"})
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	var before *resolver.EventPosition
	for range 10 {
		page, err := profiles.Timeline(ctx, profile, before, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Events {
			seen = append(seen, e.MessageID)
		}
		if before = page.Older; before == nil {
			break
		}
	}
	want := []string{"same-6", "same-5", "same-4", "same-3", "same-2", "same-1", "same-0"}
	if !slices.Equal(seen, want) {
		t.Errorf("pages of 2 at one millisecond = %v, want %v", seen, want)
	}
}
