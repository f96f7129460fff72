package resolver_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// While a GroupCommitter stores most callers' requests, another Store on
// the same database (another process) stores the others' at the same
// time, its transactions falling between the committer's groups. The
// people must be those of one message an Ingest, no shared transaction
// may fail, and the committer must still have taken read-aheads. Run
// with the read-aheads forced stale (WaitForReadAheads) and left to
// their natural timing.
func TestAttackReadAheadWithAnotherStoreWritingBetweenGroups(t *testing.T) {
	for _, wait := range []bool{true, false} {
		t.Run(map[bool]string{true: "stale", false: "natural"}[wait], func(t *testing.T) {
			const callers, requests, size, people = 8, 15, 5, 7
			rules := resolver.DefaultRules()
			rules.DefaultLimit = 1000
			stream := raPeopleStream(callers, requests, size, people)
			clock := func() time.Time { return fixedNow }

			pools := []*resolver.Store{}
			groupDB := sqltest.MustOpen(t)
			pools = append(pools, resolver.NewStore(groupDB, rules, clock, nil),
				resolver.NewStore(groupDB, rules, clock, nil))
			var readAhead, retried atomic.Int64
			committer := resolver.NewGroupCommitter(pools[0], resolver.GroupOptions{
				MaxMessages: 3 * size, Observe: func(s resolver.GroupStats) {
					if s.ReadAhead {
						readAhead.Add(1)
					}
					if s.Retried {
						retried.Add(1)
					}
				}})
			resolver.ReadAheadOnEveryEngine(committer)
			if wait {
				resolver.WaitForReadAheads(committer)
			}
			var wg sync.WaitGroup
			for c, mine := range stream {
				wg.Go(func() {
					for _, request := range mine {
						var messages []*resolver.Message
						for _, raw := range request {
							messages = append(messages, mustParseMessage(t, raw))
						}
						var err error
						if c%4 == 3 { // the other process
							_, err = pools[1].Ingest(context.Background(), messages)
						} else {
							_, err = committer.Ingest(context.Background(), messages)
						}
						if err != nil {
							t.Errorf("ingest: %v", err)
						}
					}
				})
			}
			wg.Wait()
			committer.Close()
			t.Logf("%d transactions took a read-ahead", readAhead.Load())
			if retried.Load() > 0 {
				t.Errorf("%d shared transactions failed", retried.Load())
			}
			raSameAsOneAtATime(t, rules, stream, groupDB)
		})
	}
}
