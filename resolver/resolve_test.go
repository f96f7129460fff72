package resolver_test

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// mustResolverStore opens a fresh migrated database and a store over it
// with Segment's default identity rules.
func mustResolverStore(t testing.TB) (*sqldb.DB, *resolver.Store) {
	t.Helper()
	db := sqltest.MustOpen(t)
	clock := func() time.Time { return time.Date(2026, 12, 4, 15, 8, 0, 0, time.UTC) }
	return db, resolver.NewStore(db, resolver.DefaultRules(), clock, nil)
}

// mustIngestEach stores raw messages one by one, each in its own Ingest
// call, as Segment delivers them, and returns their outcomes.
func mustIngestEach(t testing.TB, store *resolver.Store, raws ...string) []resolver.Outcome {
	t.Helper()
	var outcomes []resolver.Outcome
	for _, raw := range raws {
		m := mustParseMessage(t, raw)
		got, err := store.Ingest(context.Background(), []*resolver.Message{m})
		if err != nil {
			t.Fatalf("ingest %s: %v", raw, err)
		}
		outcomes = append(outcomes, got...)
	}
	return outcomes
}

// mustIdentities returns every profile's identifiers as sorted type:value
// strings, keyed by profile id.
func mustIdentities(t testing.TB, db *sqldb.DB) map[int64][]string {
	t.Helper()
	rows, err := db.Query(`SELECT profile_id, type, value FROM identities
		ORDER BY profile_id, type, value`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()

	got := map[int64][]string{}
	for rows.Next() {
		var profile int64
		var kind, value string
		if err := rows.Scan(&profile, &kind, &value); err != nil {
			t.Fatal(err)
		}
		got[profile] = append(got[profile], kind+":"+value)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// mustEventProfiles returns the profile of every stored event by messageId;
// 0 stands for NULL, an event that resolved to no profile.
func mustEventProfiles(t testing.TB, db *sqldb.DB) map[string]int64 {
	t.Helper()
	rows, err := db.Query(`SELECT message_id, profile_id FROM events`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()

	got := map[string]int64{}
	for rows.Next() {
		var id string
		var profile sql.NullInt64
		if err := rows.Scan(&id, &profile); err != nil {
			t.Fatal(err)
		}
		got[id] = profile.Int64
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// mustMerges returns profile_merges rows as "merged->survivor by message".
func mustMerges(t testing.TB, db *sqldb.DB) []string {
	t.Helper()
	var rows []struct {
		Survivor  int64  `db:"survivor"`
		Merged    int64  `db:"merged"`
		MessageID string `db:"message_id"`
	}
	err := db.Select(&rows, `SELECT survivor, merged, message_id
		FROM profile_merges ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%d->%d by %s", r.Merged, r.Survivor, r.MessageID))
	}
	return got
}

func TestIngestResolvesWithMergeProtection(t *testing.T) {
	tests := []struct {
		name         string
		messages     []string
		wantProfiles map[int64][]string
		wantEvents   map[string]int64
		wantMerges   []string
	}{
		{
			name: "anonymous activity then identify links to one profile",
			messages: []string{
				`{"type":"track","messageId":"m1","event":"Viewed","anonymousId":"a1"}`,
				`{"type":"identify","messageId":"m2","userId":"u1","anonymousId":"a1"}`,
			},
			wantProfiles: map[int64][]string{1: {"anonymous_id:a1", "user_id:u1"}},
			wantEvents:   map[string]int64{"m1": 1, "m2": 1},
		},
		{
			name: "identify with the same userId on a second device adds the device",
			messages: []string{
				`{"type":"identify","messageId":"m1","userId":"u1","anonymousId":"a1"}`,
				`{"type":"identify","messageId":"m2","userId":"u1","anonymousId":"a2"}`,
			},
			wantProfiles: map[int64][]string{
				1: {"anonymous_id:a1", "anonymous_id:a2", "user_id:u1"},
			},
			wantEvents: map[string]int64{"m1": 1, "m2": 1},
		},
		{
			name: "identify on a second device with earlier activity merges both",
			messages: []string{
				`{"type":"identify","messageId":"m1","userId":"u1","anonymousId":"a1"}`,
				`{"type":"track","messageId":"m2","event":"Viewed","anonymousId":"a2"}`,
				`{"type":"identify","messageId":"m3","userId":"u1","anonymousId":"a2"}`,
			},
			wantProfiles: map[int64][]string{
				1: {"anonymous_id:a1", "anonymous_id:a2", "user_id:u1"},
			},
			wantEvents: map[string]int64{"m1": 1, "m2": 1, "m3": 1},
			wantMerges: []string{"2->1 by m3"},
		},
		{
			name: "two people sharing one anonymousId stay two profiles",
			messages: []string{
				`{"type":"identify","messageId":"m1","userId":"u1","anonymousId":"a1"}`,
				`{"type":"identify","messageId":"m2","userId":"u2","anonymousId":"a1"}`,
				`{"type":"track","messageId":"m3","event":"Viewed","anonymousId":"a1"}`,
			},
			wantProfiles: map[int64][]string{
				1: {"anonymous_id:a1", "user_id:u1"},
				2: {"user_id:u2"},
			},
			wantEvents: map[string]int64{"m1": 1, "m2": 2, "m3": 1},
		},
		{
			name: "two people sharing one ios.id stay two profiles",
			messages: []string{
				`{"type":"identify","messageId":"m1","userId":"u1","anonymousId":"a1",
					"context":{"device":{"type":"ios","id":"IPAD"}}}`,
				`{"type":"identify","messageId":"m2","userId":"u2","anonymousId":"a2",
					"context":{"device":{"type":"ios","id":"IPAD"}}}`,
				`{"type":"track","messageId":"m3","event":"Viewed","userId":"u2",
					"context":{"device":{"type":"ios","id":"IPAD"}}}`,
			},
			wantProfiles: map[int64][]string{
				1: {"anonymous_id:a1", "ios.id:IPAD", "user_id:u1"},
				2: {"anonymous_id:a2", "user_id:u2"},
			},
			wantEvents: map[string]int64{"m1": 1, "m2": 2, "m3": 2},
		},
		{
			name: "a second user_id with a known email makes a new profile without the email",
			messages: []string{
				`{"type":"identify","messageId":"m1","userId":"abc123",
					"traits":{"email":"jane@example.com"}}`,
				`{"type":"identify","messageId":"m2","userId":"abc456",
					"traits":{"email":"jane@example.com"}}`,
			},
			wantProfiles: map[int64][]string{
				1: {"email:jane@example.com", "user_id:abc123"},
				2: {"user_id:abc456"},
			},
			wantEvents: map[string]int64{"m1": 1, "m2": 2},
		},
		{
			name: "a sixth anonymous_id is not attached but the message lands on the profile",
			messages: []string{
				`{"type":"identify","messageId":"m1","userId":"u1","anonymousId":"a1"}`,
				`{"type":"identify","messageId":"m2","userId":"u1","anonymousId":"a2"}`,
				`{"type":"identify","messageId":"m3","userId":"u1","anonymousId":"a3"}`,
				`{"type":"identify","messageId":"m4","userId":"u1","anonymousId":"a4"}`,
				`{"type":"identify","messageId":"m5","userId":"u1","anonymousId":"a5"}`,
				`{"type":"identify","messageId":"m6","userId":"u1","anonymousId":"a6"}`,
			},
			wantProfiles: map[int64][]string{1: {
				"anonymous_id:a1", "anonymous_id:a2", "anonymous_id:a3",
				"anonymous_id:a4", "anonymous_id:a5", "user_id:u1",
			}},
			wantEvents: map[string]int64{
				"m1": 1, "m2": 1, "m3": 1, "m4": 1, "m5": 1, "m6": 1,
			},
		},
		{
			name: "a message whose every identifier is blocked has no profile",
			messages: []string{
				`{"type":"identify","messageId":"m1","userId":"null","anonymousId":"undefined",
					"traits":{"email":"  "},"context":{"device":{"type":"ios","id":"0000"}}}`,
			},
			wantProfiles: map[int64][]string{},
			wantEvents:   map[string]int64{"m1": 0},
		},
		{
			name: "merging moves events and identifiers to the lower profile id",
			messages: []string{
				`{"type":"track","messageId":"m1","event":"Viewed","anonymousId":"a1"}`,
				`{"type":"identify","messageId":"m2","userId":"u1","anonymousId":"a2"}`,
				`{"type":"track","messageId":"m3","event":"Bought","userId":"u1",
					"anonymousId":"a1"}`,
			},
			wantProfiles: map[int64][]string{
				1: {"anonymous_id:a1", "anonymous_id:a2", "user_id:u1"},
			},
			wantEvents: map[string]int64{"m1": 1, "m2": 1, "m3": 1},
			wantMerges: []string{"2->1 by m3"},
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, store := mustResolverStore(t)
			mustIngestEach(t, store, tt.messages...)

			if got := mustIdentities(t, db); !reflect.DeepEqual(got, tt.wantProfiles) {
				t.Errorf("profiles:\ngot  %v\nwant %v", got, tt.wantProfiles)
			}
			if got := mustEventProfiles(t, db); !reflect.DeepEqual(got, tt.wantEvents) {
				t.Errorf("events.profile_id:\ngot  %v\nwant %v", got, tt.wantEvents)
			}
			if got := mustMerges(t, db); !reflect.DeepEqual(got, tt.wantMerges) {
				t.Errorf("profile_merges:\ngot  %q\nwant %q", got, tt.wantMerges)
			}
		})
	}
}

// mustTraits returns every stored trait as "profile/key" -> JSON value.
func mustTraits(t testing.TB, db *sqldb.DB) map[string]string {
	t.Helper()
	var rows []struct {
		Profile int64  `db:"profile_id"`
		Key     string `db:"key"`
		Value   string `db:"value"`
	}
	if err := db.Select(&rows, `SELECT profile_id, key, value FROM traits`); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rows {
		got[fmt.Sprintf("%d/%s", r.Profile, r.Key)] = r.Value
	}
	return got
}

func TestTraitsKeepTheValueWithTheLatestEventTime(t *testing.T) {
	tests := []struct {
		name     string
		messages []string
		want     map[string]string
	}{
		{
			name: "a later identify replaces the trait",
			messages: []string{
				`{"type":"identify","messageId":"m1","userId":"u1",
					"timestamp":"2026-12-01T10:00:00Z","traits":{"plan":"free"}}`,
				`{"type":"identify","messageId":"m2","userId":"u1",
					"timestamp":"2026-12-02T10:00:00Z","traits":{"plan":"pro"}}`,
			},
			want: map[string]string{"1/plan": `"pro"`},
		},
		{
			name: "an older identify arriving later does not roll the trait back",
			messages: []string{
				`{"type":"identify","messageId":"m1","userId":"u1",
					"timestamp":"2026-12-02T10:00:00Z","traits":{"plan":"pro"}}`,
				`{"type":"identify","messageId":"m2","userId":"u1",
					"timestamp":"2026-12-01T10:00:00Z","traits":{"plan":"free","age":30}}`,
			},
			want: map[string]string{"1/plan": `"pro"`, "1/age": `30`},
		},
		{
			name: "on a merge the survivor's newer trait wins",
			messages: []string{
				`{"type":"identify","messageId":"m1","anonymousId":"a1",
					"timestamp":"2026-12-02T10:00:00Z","traits":{"plan":"pro"}}`,
				`{"type":"identify","messageId":"m2","userId":"u1","anonymousId":"a2",
					"timestamp":"2026-12-01T10:00:00Z","traits":{"plan":"free"}}`,
				`{"type":"track","messageId":"m3","event":"Viewed","userId":"u1",
					"anonymousId":"a1","timestamp":"2026-12-03T10:00:00Z"}`,
			},
			want: map[string]string{"1/plan": `"pro"`},
		},
		{
			name: "on a merge the merged profile's newer trait wins",
			messages: []string{
				`{"type":"identify","messageId":"m1","anonymousId":"a1",
					"timestamp":"2026-12-01T10:00:00Z","traits":{"plan":"free","city":"Lyon"}}`,
				`{"type":"identify","messageId":"m2","userId":"u1","anonymousId":"a2",
					"timestamp":"2026-12-02T10:00:00Z","traits":{"plan":"pro"}}`,
				`{"type":"track","messageId":"m3","event":"Viewed","userId":"u1",
					"anonymousId":"a1","timestamp":"2026-12-03T10:00:00Z"}`,
			},
			want: map[string]string{"1/plan": `"pro"`, "1/city": `"Lyon"`},
		},
		{
			name: "an older identify that causes a merge does not overwrite newer traits",
			messages: []string{
				`{"type":"identify","messageId":"m1","anonymousId":"a1",
					"timestamp":"2026-12-02T10:00:00Z","traits":{"plan":"pro"}}`,
				`{"type":"identify","messageId":"m2","userId":"u1","anonymousId":"a2",
					"timestamp":"2026-12-03T10:00:00Z","traits":{"name":"Jane"}}`,
				`{"type":"identify","messageId":"m3","userId":"u1","anonymousId":"a1",
					"timestamp":"2026-11-01T10:00:00Z","traits":{"plan":"trial","name":"J"}}`,
			},
			want: map[string]string{"1/plan": `"pro"`, "1/name": `"Jane"`},
		},
		{
			name: "an older identify arriving after a merge does not overwrite",
			messages: []string{
				`{"type":"identify","messageId":"m1","anonymousId":"a1",
					"timestamp":"2026-12-01T10:00:00Z","traits":{"plan":"free"}}`,
				`{"type":"identify","messageId":"m2","userId":"u1","anonymousId":"a2",
					"timestamp":"2026-12-02T10:00:00Z","traits":{"plan":"pro"}}`,
				`{"type":"track","messageId":"m3","event":"Viewed","userId":"u1",
					"anonymousId":"a1","timestamp":"2026-12-03T10:00:00Z"}`,
				`{"type":"identify","messageId":"m4","anonymousId":"a2",
					"timestamp":"2026-11-20T10:00:00Z","traits":{"plan":"trial"}}`,
			},
			want: map[string]string{"1/plan": `"pro"`},
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, store := mustResolverStore(t)
			mustIngestEach(t, store, tt.messages...)

			if got := mustTraits(t, db); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("traits:\ngot  %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestIngestReportsOutcomes(t *testing.T) {
	db, store := mustResolverStore(t)
	messages := []*resolver.Message{
		mustParseMessage(t, `{"type":"track","messageId":"m1","event":"A","userId":"u1"}`),
		mustParseMessage(t, `{"type":"track","messageId":"m1","event":"B","userId":"u2"}`),
		mustParseMessage(t, `{"type":"track","messageId":"m2","event":"C","userId":"null"}`),
	}

	got, err := store.Ingest(context.Background(), messages)
	if err != nil {
		t.Fatal(err)
	}
	want := []resolver.Outcome{
		{MessageID: "m1", Status: resolver.StatusStored, ProfileID: 1},
		{MessageID: "m1", Status: resolver.StatusDuplicate},
		{MessageID: "m2", Status: resolver.StatusStored},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("outcomes:\ngot  %+v\nwant %+v", got, want)
	}
	wantEvents := map[string]int64{"m1": 1, "m2": 0}
	if got := mustEventProfiles(t, db); !reflect.DeepEqual(got, wantEvents) {
		t.Errorf("events.profile_id: got %v, want %v", got, wantEvents)
	}
	wantProfiles := map[int64][]string{1: {"user_id:u1"}}
	if got := mustIdentities(t, db); !reflect.DeepEqual(got, wantProfiles) {
		t.Errorf("profiles: got %v, want %v", got, wantProfiles)
	}
}

func TestIngestSkipsAMessageIDStoredEarlier(t *testing.T) {
	_, store := mustResolverStore(t)
	raw := `{"type":"track","messageId":"m1","event":"A","userId":"u1"}`
	mustIngestEach(t, store, raw)

	got := mustIngestEach(t, store, raw)
	want := []resolver.Outcome{{MessageID: "m1", Status: resolver.StatusDuplicate}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestRulesValidate(t *testing.T) {
	tests := []struct {
		name     string
		edit     func(r *resolver.Rules)
		wantText []string // every part the error must name; nil means valid
	}{
		{
			name: "Segment's defaults are valid",
			edit: func(*resolver.Rules) {},
		},
		{
			name: "a custom type with its own limit is valid",
			edit: func(r *resolver.Rules) { r.Limits["phone"] = 1 },
		},
		{
			name:     "a default limit of 0 is rejected",
			edit:     func(r *resolver.Rules) { r.DefaultLimit = 0 },
			wantText: []string{"identity.default_limit"},
		},
		{
			name:     "a type limit of 0 is rejected",
			edit:     func(r *resolver.Rules) { r.Limits["email"] = 0 },
			wantText: []string{"identity.limits.email", "got 0"},
		},
		{
			name:     "a negative type limit is rejected",
			edit:     func(r *resolver.Rules) { r.Limits["ios.id"] = -2 },
			wantText: []string{"identity.limits.ios.id", "got -2"},
		},
		{
			name: "a type listed twice in priority is rejected",
			edit: func(r *resolver.Rules) {
				r.Priority = []string{"user_id", "email", "user_id"}
			},
			wantText: []string{"identity.priority", `"user_id" twice`},
		},
		{
			name: "every problem is reported at once",
			edit: func(r *resolver.Rules) {
				r.DefaultLimit = 0
				r.Priority = append(r.Priority, "email")
			},
			wantText: []string{"identity.default_limit", `"email" twice`},
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules := resolver.DefaultRules()
			tt.edit(&rules)
			err := rules.Validate()
			if tt.wantText == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if got := resolver.ErrorCode(err); got != resolver.EInvalid {
				t.Fatalf("Validate() = %v with code %q, want code %q",
					err, got, resolver.EInvalid)
			}
			for _, part := range tt.wantText {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("Validate() = %q, want it to name %q", err, part)
				}
			}
		})
	}
}
