package resolver_test

import (
	"context"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
)

func TestTraitsMergeFieldByFieldByEventTime(t *testing.T) {
	identify := func(id, user, at, traits string) string {
		return `{"type":"identify","messageId":"` + id + `","userId":"` + user +
			`","timestamp":"` + at + `","traits":` + traits + `}`
	}
	cases := []struct {
		name     string
		messages []string
		want     string // the traits as the Profile API shows them
	}{
		{"nested objects merge field by field",
			[]string{
				identify("m1", "u1", "2026-01-01T00:00:00Z",
					`{"address":{"city":"Paris","street":"Rue A"}}`),
				identify("m2", "u1", "2026-02-01T00:00:00Z", `{"address":{"city":"Lyon"}}`),
			},
			`address={"city":"Lyon","street":"Rue A"}`},
		{"an older message arriving late changes nothing newer",
			[]string{
				identify("m2", "u1", "2026-02-01T00:00:00Z", `{"plan":"pro","address":{"city":"Lyon"}}`),
				identify("m1", "u1", "2026-01-01T00:00:00Z",
					`{"plan":"free","address":{"city":"Paris","zip":"75001"}}`),
			},
			`address={"city":"Lyon","zip":"75001"} plan="pro"`},
		{"null removes a trait, and a later value brings it back",
			[]string{
				identify("m1", "u1", "2026-01-01T00:00:00Z", `{"plan":"pro","address":{"city":"A"}}`),
				identify("m2", "u1", "2026-02-01T00:00:00Z", `{"plan":null,"address":null}`),
				identify("m3", "u1", "2026-03-01T00:00:00Z", `{"address":{"zip":"1"}}`),
			},
			`address={"zip":"1"}`},
		{"a removal older than the value is ignored",
			[]string{
				identify("m2", "u1", "2026-02-01T00:00:00Z", `{"plan":"pro"}`),
				identify("m1", "u1", "2026-01-01T00:00:00Z", `{"plan":null}`),
			},
			`plan="pro"`},
		{"a newer scalar replaces an object and a newer object replaces a scalar",
			[]string{
				identify("m1", "u1", "2026-01-01T00:00:00Z", `{"a":{"x":1},"b":"flat"}`),
				identify("m2", "u1", "2026-02-01T00:00:00Z", `{"a":"flat","b":{"y":2}}`),
			},
			`a="flat" b={"y":2}`},
		{"numbers keep every digit and never overflow",
			[]string{identify("m1", "u1", "2026-01-01T00:00:00Z",
				`{"big":12345678901234567890123,"huge":1e400}`)},
			`big=12345678901234567890123 huge=1e400`},
		{"across a merge each field keeps its latest value",
			[]string{
				identify("m1", "u1", "2026-03-01T00:00:00Z", `{"address":{"city":"Lyon"}}`),
				`{"type":"identify","messageId":"m2","anonymousId":"a1",` +
					`"timestamp":"2026-02-01T00:00:00Z",` +
					`"traits":{"address":{"city":"Paris","street":"Rue B"},"plan":"free"}}`,
				`{"type":"track","messageId":"m3","userId":"u1","anonymousId":"a1",` +
					`"event":"E","timestamp":"2026-04-01T00:00:00Z"}`,
			},
			`address={"city":"Lyon","street":"Rue B"} plan="free"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, store := mustResolverStore(t)
			mustIngestEach(t, store, tc.messages...)
			profiles := resolver.NewProfiles(db)
			profile, err := profiles.Find(context.Background(),
				resolver.Identifier{Type: "user_id", Value: "u1"})
			if err != nil {
				t.Fatal(err)
			}
			traits, err := profiles.Traits(context.Background(), profile)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, tr := range traits {
				got = append(got, tr.Key+"="+string(tr.Value))
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("traits %s\nwant   %s", strings.Join(got, " "), tc.want)
			}
			checkTraitsInAgrees(t, db, profile, traits)
		})
	}
}

// checkTraitsInAgrees wants TraitsIn, read in a snapshot, to give the
// profile's traits as Traits gave them (want), without their sources, and
// nothing for a profile that does not exist.
func checkTraitsInAgrees(t *testing.T, db *sqldb.DB, profile int64, want []resolver.Trait) {
	t.Helper()
	missing := profile + 1000
	var got map[int64][]resolver.Trait
	err := db.Snapshot(context.Background(), func(tx *sqlx.Tx) (err error) {
		got, err = resolver.TraitsIn(context.Background(), tx, []int64{profile, missing})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got[missing]; ok || len(got) != 1 {
		t.Errorf("TraitsIn gave profiles %v, want only %d", slices.Collect(maps.Keys(got)),
			profile)
	}
	for i := range want {
		want[i].Source = ""
	}
	if !reflect.DeepEqual(got[profile], want) {
		t.Errorf("TraitsIn gave %+v\nTraits gave  %+v", got[profile], want)
	}
}
