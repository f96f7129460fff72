package resolver_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver"
)

// TestAttackTraitsInAgreesOnAdversarialHistories compares TraitsIn with
// Traits for every profile (merged-away ones too) after odd histories.
func TestAttackTraitsInAgreesOnAdversarialHistories(t *testing.T) {
	id := func(mid, user, anon, at, traits string) string {
		s := `{"type":"identify","messageId":"` + mid + `","timestamp":"` + at + `","traits":` + traits
		if user != "" {
			s += `,"userId":"` + user + `"`
		}
		if anon != "" {
			s += `,"anonymousId":"` + anon + `"`
		}
		return s + `}`
	}
	db, store := mustResolverStore(t)
	mustIngestEach(t, store,
		id("m1", "u1", "", "2026-01-01T00:00:00Z",
			`{"a.b":{"c.d":1},"é":"ü","k\u0001ey":2,"x":{"y":{"z":{"w":1}}}}`),
		id("m2", "u1", "", "2026-03-01T00:00:00Z", `{"x":{"y":"flat"},"a.b":null}`),
		id("m3", "u1", "", "2026-02-01T00:00:00Z", `{"x":{"y":{"z":{"v":2}}},"a.b":{"c.d":3}}`),
		id("m4", "u1", "", "2026-04-01T00:00:00Z", `{"x":{"y":{"q":1}},"n":null}`),
		id("m5", "u1", "", "1969-01-01T00:00:00Z", `{"old":1,"é":"older"}`),
		id("m6", "", "a1", "2026-05-01T00:00:00Z", `{"x":{"y":"anon"},"p":[1,{"q":null}],"e":{}}`),
		id("m7", "u2", "", "1960-05-01T00:00:00Z", `{"pre":{"epoch":true}}`),
		id("m8", "u3", "", "2026-05-01T00:00:00Z", `{"t":1}`),
		id("m9", "u3", "", "2026-05-01T00:00:00Z", `{"t":{"u":2}}`),
		id("m10", "u3", "", "2026-05-01T00:00:00Z", `{"t":3}`),
		`{"type":"track","messageId":"m11","userId":"u1","anonymousId":"a1","event":"E",`+
			`"timestamp":"2026-06-01T00:00:00Z"}`,
	)
	ctx := context.Background()
	// a legacy whole-object row on a profile, beside leaves under it
	var ids []int64
	if err := db.SelectContext(ctx, &ids, `SELECT id FROM profiles ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO traits
		(profile_id, key, value, ts_ms, message_id)
		VALUES (?, 'legacy', '{"a":1,"b":{"c":2}}', 5, 'old'), (?, ?, '7', 6, 'old2')`),
		ids[0], ids[0], "legacy\x1fb\x1fd"); err != nil {
		t.Fatal(err)
	}
	profiles := resolver.NewProfiles(db)
	want := map[int64][]resolver.Trait{}
	for _, p := range ids {
		// A profile merged away shows the traits of the one it merged into.
		current, err := profiles.CurrentProfile(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		traits, err := profiles.Traits(ctx, current)
		if err != nil {
			t.Fatal(err)
		}
		for i := range traits {
			traits[i].Source = ""
		}
		if len(traits) > 0 {
			want[p] = traits
		}
	}
	var got map[int64][]resolver.Trait
	err := db.Snapshot(ctx, func(tx *sqlx.Tx) (err error) {
		got, err = resolver.TraitsIn(ctx, tx, append(ids, 99999))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ids {
		if len(got[p]) == 0 && len(want[p]) == 0 {
			continue
		}
		if !reflect.DeepEqual(got[p], want[p]) {
			t.Errorf("profile %d: TraitsIn\n%s\nTraits\n%s", p, show(got[p]), show(want[p]))
		}
	}
	t.Logf("%d profiles, e.g. %s", len(ids), show(want[ids[0]]))
}

func show(ts []resolver.Trait) string {
	s := ""
	for _, tr := range ts {
		s += fmt.Sprintf("%s=%s @%d %s\n", tr.Key, tr.Value, tr.UpdatedMS, tr.MessageID)
	}
	return s
}

// TestAttackTraitBeforeEpochIsShown: an identify whose timestamp is before
// 1970 is stored; its traits, the profile's only ones, must show.
func TestAttackTraitBeforeEpochIsShown(t *testing.T) {
	db, store := mustResolverStore(t)
	mustIngestEach(t, store,
		`{"type":"identify","messageId":"m1","userId":"u1",`+
			`"timestamp":"1969-12-31T23:59:59Z",`+
			`"traits":{"plan":"pro","address":{"city":"Paris"}}}`)
	profiles := resolver.NewProfiles(db)
	p, err := profiles.Find(context.Background(), resolver.Identifier{Type: "user_id", Value: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	var stored int
	err = db.GetContext(context.Background(), &stored,
		db.Rebind(`SELECT COUNT(*) FROM traits WHERE profile_id = ?`), p)
	if err != nil {
		t.Fatal(err)
	}
	traits, err := profiles.Traits(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if len(traits) != 2 {
		t.Errorf("%d trait rows stored, Traits shows %s", stored, show(traits))
	}
}
