package resolver_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// raPeopleStream is requests of several messages from each caller, whose
// people share identifiers across callers and requests: one request's
// message often merges profiles another caller's request made or joined.
// Each message has a time of its own, so the people do not depend on the
// order the messages are stored in.
func raPeopleStream(callers, requests, size, people int) [][][]string {
	base, _ := time.Parse(time.RFC3339, atkT0)
	stream := make([][][]string, callers)
	n := 0
	for c := range callers {
		for r := range requests {
			var request []string
			for k := range size {
				n++
				person := (3*c + 5*r + k) % people
				at := base.Add(time.Duration(n) * time.Second).Format(time.RFC3339)
				id := fmt.Sprintf("c%d-r%d-k%d", c, r, k)
				anon := fmt.Sprintf("p%d-device%d", person, (c+r+k)%3)
				other := fmt.Sprintf("xid:p%d-key%d", person, (c*k+r)%4)
				if (r+k)%3 == 0 {
					traits := fmt.Sprintf(`{"last":%q}`, id)
					request = append(request, atkIdentify(id, "", anon, traits, at, other))
				} else {
					request = append(request, atkTrack(id, anon, at, other))
				}
			}
			stream[c] = append(stream[c], request)
		}
	}
	return stream
}

// raSend sends each caller's requests of stream from a goroutine of its
// own, one after the other, then closes committer.
func raSend(t *testing.T, committer *resolver.GroupCommitter, stream [][][]string) {
	t.Helper()
	var wg sync.WaitGroup
	for _, mine := range stream {
		wg.Go(func() {
			for _, request := range mine {
				var messages []*resolver.Message
				for _, raw := range request {
					messages = append(messages, mustParseMessage(t, raw))
				}
				if _, err := committer.Ingest(context.Background(), messages); err != nil {
					t.Errorf("group ingest: %v", err)
				}
			}
		})
	}
	wg.Wait()
	committer.Close()
}

// Requests that do not fit one shared transaction wait while it commits;
// the next transaction takes what was read ahead for them meanwhile, minus
// what the one before touched (on every engine here, though SQLite does
// not read ahead by default). The people, events and traits must be
// those of one message an Ingest, and many transactions must have taken
// a read-ahead (or this test would not test it). Each read-ahead is made
// before the transaction under way writes (WaitForReadAheads), so each is
// out of date where that transaction's messages merged or added. None may
// fail: a failed one is stored again request by request, which would hide
// a wrong read-ahead.
func TestGroupCommitReadAheadKeepsPeopleAsOneAtATime(t *testing.T) {
	const callers, requests, size, people = 8, 15, 5, 7
	rules := resolver.DefaultRules()
	rules.DefaultLimit = 1000
	stream := raPeopleStream(callers, requests, size, people)
	clock := func() time.Time { return fixedNow }

	groupDB := sqltest.MustOpen(t)
	var groups, readAhead, retried atomic.Int64
	committer := resolver.NewGroupCommitter(resolver.NewStore(groupDB, rules, clock, nil),
		resolver.GroupOptions{MaxMessages: 4 * size, Observe: func(s resolver.GroupStats) {
			groups.Add(1)
			if s.ReadAhead {
				readAhead.Add(1)
			}
			if s.Retried { // a shared transaction failed: none should
				retried.Add(1)
			}
		}})
	resolver.ReadAheadOnEveryEngine(committer)
	resolver.WaitForReadAheads(committer)
	raSend(t, committer, stream)
	t.Logf("%d transactions, %d took a read-ahead", groups.Load(), readAhead.Load())
	if readAhead.Load() == 0 {
		t.Fatal("no transaction took a read-ahead")
	}
	if retried.Load() > 0 {
		t.Errorf("%d shared transactions failed and were stored request by request",
			retried.Load())
	}

	raSameAsOneAtATime(t, rules, stream, groupDB)
}

// raSameAsOneAtATime fails t where the people groupDB holds after stream
// differ from those of its messages stored one Ingest each, caller after
// caller, or break the identity invariants.
func raSameAsOneAtATime(t *testing.T, rules resolver.Rules, stream [][][]string,
	groupDB *sqldb.DB) {
	t.Helper()
	var serial []string
	for _, mine := range stream {
		for _, request := range mine {
			serial = append(serial, request...)
		}
	}
	oneDB := sqltest.MustOpen(t)
	clock := func() time.Time { return fixedNow }
	ingestIn(t, resolver.NewStore(oneDB, rules, clock, nil), serial, 1)
	atkSamePeople(t, atkRead(t, oneDB, nil), atkRead(t, groupDB, nil))
	checkIdentityInvariants(t, groupDB)
}

// By default the committer reads ahead on PostgreSQL and never on SQLite.
func TestGroupCommitReadsAheadOnPostgreSQLOnly(t *testing.T) {
	const callers, requests, size = 8, 15, 5
	db, store := mustResolverStore(t)
	var readAhead atomic.Int64
	committer := resolver.NewGroupCommitter(store, resolver.GroupOptions{
		MaxMessages: 4 * size, Observe: func(s resolver.GroupStats) {
			if s.ReadAhead {
				readAhead.Add(1)
			}
		}})
	raSend(t, committer, raPeopleStream(callers, requests, size, 7))

	postgres := db.Dialect() == sqldb.Postgres
	if got := readAhead.Load(); postgres != (got > 0) {
		t.Errorf("%d transactions took a read-ahead on %s", got, db.Dialect())
	}
}
