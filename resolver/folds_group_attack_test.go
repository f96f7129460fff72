package resolver_test

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// atkSamePeople fails t where got's people, their identifiers, events or
// traits differ from want's (stored one message an Ingest).
func atkSamePeople(t *testing.T, want, got atkState) {
	t.Helper()
	for name, pair := range map[string][2]any{
		"profiles": {want.Profiles, got.Profiles},
		"owners":   {want.Owners, got.Owners},
		"events":   {want.Events, got.Events},
		"traits":   {want.Traits, got.Traits},
	} {
		if !reflect.DeepEqual(pair[0], pair[1]) {
			t.Errorf("%s differ:\none by one: %v\ngrouped:    %v", name, pair[0], pair[1])
		}
	}
}

// Many concurrent GroupCommitter callers whose messages merge each
// other's profiles: their shared transactions fold merges made by several
// callers. With limits out of reach and every message at its own time the
// people, their identifiers, events and traits do not depend on the order
// of commit, so the result must equal one message an Ingest in any order,
// and the identity invariants must hold (atkRead checks that nothing
// stays on a retired profile; merged_into must name a live profile).
func TestAttackFoldGroupCommitterCallersMergeEachOther(t *testing.T) {
	const callers, requests, groups = 8, 12, 6
	rules := resolver.DefaultRules()
	rules.DefaultLimit = 1000
	base, _ := time.Parse(time.RFC3339, atkT0)
	var all [][]string // per caller, per request, one raw message
	n := 0
	for c := range callers {
		var mine []string
		for r := range requests {
			n++
			g := (c + r) % groups
			at := base.Add(time.Duration(n) * time.Second).Format(time.RFC3339)
			anon := fmt.Sprintf("g%d-a%d", g, (c+2*r)%4)
			ext := []string{fmt.Sprintf("xid:g%d-k%d", g, (c*r)%5)}
			if r%3 == 0 {
				ext = append(ext, fmt.Sprintf("anonymous_id:g%d-a%d", g, (c+r+1)%4))
			}
			id := fmt.Sprintf("c%d-r%d", c, r)
			if r%2 == 0 {
				traits := fmt.Sprintf(`{"plan":%q,"c%d":%q}`, id, c, id)
				mine = append(mine, atkIdentify(id, "", anon, traits, at, ext...))
			} else {
				mine = append(mine, atkTrack(id, anon, at, ext...))
			}
		}
		all = append(all, mine)
	}

	clock := func() time.Time { return fixedNow }
	groupDB := sqltest.MustOpen(t)
	store := resolver.NewStore(groupDB, rules, clock, nil)
	var mu sync.Mutex
	shared := 0 // transactions that held more than one caller's message
	committer := resolver.NewGroupCommitter(store, resolver.GroupOptions{MaxMessages: 20,
		Observe: func(s resolver.GroupStats) {
			mu.Lock()
			defer mu.Unlock()
			if s.Requests > 1 {
				shared++
			}
		}})
	var wg sync.WaitGroup
	errs := make(chan error, callers*requests)
	for _, mine := range all {
		wg.Go(func() {
			for _, raw := range mine {
				msg := mustParseMessage(t, raw)
				_, err := committer.Ingest(context.Background(), []*resolver.Message{msg})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	committer.Close()
	close(errs)
	t.Logf("%d shared transactions", shared)
	for err := range errs {
		t.Fatalf("group ingest: %v", err)
	}

	var serial []string
	for r := range requests {
		for c := range callers {
			serial = append(serial, all[c][r])
		}
	}
	oneDB := sqltest.MustOpen(t)
	one := resolver.NewStore(oneDB, rules, clock, nil)
	ingestIn(t, one, serial, 1)

	want, got := atkRead(t, oneDB, nil), atkRead(t, groupDB, nil)
	atkSamePeople(t, want, got)
	if len(got.Profiles) != groups {
		t.Errorf("want %d people, got %d: %v", groups, len(got.Profiles), got.Profiles)
	}
	var stale int
	err := groupDB.Get(&stale, `SELECT COUNT(*) FROM profiles p JOIN profiles q
		ON p.merged_into = q.id WHERE q.merged_into IS NOT NULL OR p.merged_into = p.id`)
	if err != nil {
		t.Fatal(err)
	}
	if stale != 0 {
		t.Errorf("%d profiles point at a retired profile", stale)
	}
	var merges, retired int
	if err := groupDB.Get(&merges, `SELECT COUNT(*) FROM profile_merges`); err != nil {
		t.Fatal(err)
	}
	err = groupDB.Get(&retired, `SELECT COUNT(*) FROM profiles WHERE merged_into IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	if merges == 0 || merges != retired {
		t.Errorf("%d merges recorded, %d profiles retired", merges, retired)
	}
}
