package resolver_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
)

// groupMessage is a track from one of a few people, so requests that share
// a transaction also share profiles.
func groupMessage(t *testing.T, id string, person int) *resolver.Message {
	return mustParseMessage(t, fmt.Sprintf(`{"type":"track","messageId":%q,`+
		`"userId":"u%d","anonymousId":"a%d","event":"Product Added",`+
		`"timestamp":"2026-11-26T20:02:00.000Z"}`, id, person%5, person%7))
}

// recordGroups collects the committer's group sizes.
type recordGroups struct {
	mu     sync.Mutex
	groups []resolver.GroupStats
}

func (r *recordGroups) observe(s resolver.GroupStats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.groups = append(r.groups, s)
}

func (r *recordGroups) largest() resolver.GroupStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	var best resolver.GroupStats
	for _, g := range r.groups {
		if g.Requests > best.Requests {
			best = g
		}
	}
	return best
}

func TestGroupCommitSharesTransactionsAndAnswersEachCaller(t *testing.T) {
	db, store := mustResolverStore(t)
	var seen recordGroups
	committer := resolver.NewGroupCommitter(store, resolver.GroupOptions{Observe: seen.observe})
	defer committer.Close()

	release := resolver.HoldWriteLock(t, db)
	const callers = 40
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			id := fmt.Sprintf("group-%d", i)
			outcomes, err := committer.Ingest(context.Background(),
				[]*resolver.Message{groupMessage(t, id, i), groupMessage(t, "shared", i)})
			if err != nil {
				t.Errorf("caller %d: %v", i, err)
				return
			}
			if len(outcomes) != 2 || outcomes[0].MessageID != id ||
				outcomes[0].Status != resolver.StatusStored || outcomes[0].ProfileID == 0 {
				t.Errorf("caller %d got outcomes %+v", i, outcomes)
			}
		})
	}
	resolver.WaitForCallersInIngest(t, callers) // queued behind the lock
	release()
	wg.Wait()

	if got := seen.largest(); got.Requests < 2 {
		t.Errorf("largest group answered %d requests; waiting callers should share one", got.Requests)
	}
	checkPhases(t, &seen)
	// Every message once; "shared" was sent by every caller and kept once.
	if n := countRows(t, db, `SELECT COUNT(*) FROM events`); n != callers+1 {
		t.Errorf("stored %d events, want %d", n, callers+1)
	}
	checkIdentityInvariants(t, db)
}

func TestGroupCommitFailsOnlyTheBadRequest(t *testing.T) {
	db, store := mustResolverStore(t)
	resolver.PoisonEvents(t, db, "poison")
	var seen recordGroups
	committer := resolver.NewGroupCommitter(store, resolver.GroupOptions{Observe: seen.observe})
	defer committer.Close()

	release := resolver.HoldWriteLock(t, db)
	errs := make([]error, 6)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			id := fmt.Sprintf("good-%d", i)
			if i == 3 {
				id = "poison"
			}
			_, errs[i] = committer.Ingest(context.Background(),
				[]*resolver.Message{groupMessage(t, id, i)})
		})
	}
	resolver.WaitForCallersInIngest(t, len(errs))
	release()
	wg.Wait()

	for i, err := range errs {
		if (err != nil) != (i == 3) {
			t.Errorf("request %d: error %v; only the poisoned request should fail", i, err)
		}
	}
	if n := countRows(t, db, `SELECT COUNT(*) FROM events`); n != 5 {
		t.Errorf("stored %d events, want the 5 good ones", n)
	}
	if n := countRows(t, db,
		`SELECT COUNT(*) FROM events WHERE message_id = 'poison'`); n != 0 {
		t.Errorf("the refused message was stored %d times", n)
	}
}

func TestGroupCommitAfterCloseStoresNothing(t *testing.T) {
	db, store := mustResolverStore(t)
	committer := resolver.NewGroupCommitter(store, resolver.GroupOptions{})
	committer.Close()

	_, err := committer.Ingest(context.Background(),
		[]*resolver.Message{groupMessage(t, "late", 1)})
	if resolver.ErrorCode(err) != resolver.EUnavailable {
		t.Errorf("after Close: error %v, want code %s", err, resolver.EUnavailable)
	}
	if n := countRows(t, db, `SELECT COUNT(*) FROM events`); n != 0 {
		t.Errorf("stored %d events after Close", n)
	}
}

func TestGroupCommitAbandonedCallStoresNothing(t *testing.T) {
	db, store := mustResolverStore(t)
	committer := resolver.NewGroupCommitter(store, resolver.GroupOptions{})
	defer committer.Close()

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := committer.Ingest(ctx, []*resolver.Message{groupMessage(t, "gone", 1)})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled call: error %v, want context.Canceled", err)
	}
	if n := countRows(t, db, `SELECT COUNT(*) FROM events`); n != 0 {
		t.Errorf("stored %d events of a cancelled call", n)
	}
}

// countRows runs a COUNT query.
func countRows(t *testing.T, db *sqldb.DB, query string) int {
	t.Helper()
	var n int
	if err := db.Get(&n, query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// TestGroupCommitAnswersUnavailableAtOnce fills the database while a group
// waits: every request is answered "unavailable" from the one failed
// transaction, none retried alone (each would wait out a busy timeout).
func TestGroupCommitAnswersUnavailableAtOnce(t *testing.T) {
	db, store := mustResolverStore(t)
	var seen recordGroups
	committer := resolver.NewGroupCommitter(store, resolver.GroupOptions{Observe: seen.observe})
	defer committer.Close()
	makeFull(t, db)

	release := resolver.HoldWriteLock(t, db)
	errs := make([]error, 5)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = committer.Ingest(context.Background(),
				[]*resolver.Message{groupMessage(t, fmt.Sprintf("full-%d", i), i)})
		})
	}
	resolver.WaitForCallersInIngest(t, len(errs))
	release()
	wg.Wait()

	for i, err := range errs {
		if resolver.ErrorCode(err) != resolver.EUnavailable {
			t.Errorf("request %d: error %v, want code %s", i, err, resolver.EUnavailable)
		}
	}
	seen.mu.Lock()
	defer seen.mu.Unlock()
	for _, g := range seen.groups {
		if g.Retried {
			t.Errorf("a group of %d requests was retried one by one", g.Requests)
		}
		if g.Phases != (resolver.IngestPhases{}) {
			t.Errorf("a failed group reported phases %+v", g.Phases)
		}
	}
}

// checkPhases checks that every committed group says where its time went:
// each phase measured, none left out.
func checkPhases(t *testing.T, seen *recordGroups) {
	t.Helper()
	seen.mu.Lock()
	defer seen.mu.Unlock()
	for i, g := range seen.groups {
		p := g.Phases
		if p.Wait <= 0 || p.ReadAhead <= 0 || p.Resolve <= 0 || p.Write <= 0 ||
			p.Commit <= 0 || p.Sync <= 0 {
			t.Errorf("group %d of %d messages: phases %+v, want each above zero",
				i, g.Messages, p)
		}
	}
}

// makeFull makes every later event insert fail as a full disk would: on
// SQLite it needs pages the one connection may not add; on PostgreSQL a
// trigger raises disk_full.
func makeFull(t *testing.T, db *sqldb.DB) {
	t.Helper()
	if db.Dialect() == sqldb.Postgres {
		for _, s := range []string{`CREATE FUNCTION full_disk() RETURNS trigger AS $$
			BEGIN RAISE EXCEPTION 'no room' USING ERRCODE = 'disk_full'; END $$
			LANGUAGE plpgsql`,
			`CREATE TRIGGER full_disk BEFORE INSERT ON events
				FOR EACH ROW EXECUTE FUNCTION full_disk()`} {
			if _, err := db.Exec(s); err != nil {
				t.Fatalf("make full: %v", err)
			}
		}
		return
	}
	// Each stored event also needs room for a large blob; there is none.
	for _, s := range []string{`CREATE TABLE ballast (b BLOB)`,
		`CREATE TRIGGER full_disk BEFORE INSERT ON events
			BEGIN INSERT INTO ballast VALUES (randomblob(200000)); END`} {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("make full: %v", err)
		}
	}
	db.SetMaxOpenConns(1)
	var pages int
	if err := db.Get(&pages, `PRAGMA page_count`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)); err != nil {
		t.Fatal(err)
	}
}
