package resolver

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// FRAGILE: a request that lands in a shared transaction that fails is
// stored again alone with Store.Ingest and answered at once. When its
// messages are duplicates of a group committed but not yet synced, the
// caller gets nil (a 2xx, "duplicate") before that group's sync has
// returned: the write-ahead log holding the messages may not be on disk
// yet. What makes it safe is that Store.Ingest's own commit writes a
// frame and so fsyncs the whole log (TestDuplicateOnlyIngestStillWritesALogFrame).
func TestGroupRetryAnswersADuplicateBeforeItsSync(t *testing.T) {
	store, g, held := heldCommitter(t)
	poisonEvents(t, store.db, "poison")

	// The first group is committed; its sync is held.
	first := ingestInBackground(t, g, "orig")
	held.waitForSyncToStart(t, first)
	waitForEvent(t, store, "orig")

	// A group to wait on the lock, then a duplicate of "orig" and a
	// poisoned message queued behind it: they share the next group.
	release := holdWriteLock(t, store.db)
	blocker := ingestInBackground(t, g, "blocker")
	waitForCallersInIngest(t, 1)
	dup := ingestInBackground(t, g, "orig")
	poisoned := ingestInBackground(t, g, "poison")
	waitForCallersInIngest(t, 3)
	release()

	// The poisoned request fails alone (from the one-by-one retry).
	if r := <-poisoned; r.err == nil {
		t.Fatalf("the poisoned request was stored: %+v", r.outcomes)
	}
	select {
	case r := <-dup:
		if r.err == nil {
			// Safe only because Store.Ingest's own transaction always
			// writes a frame (bumpGenerationSQL) and so fsyncs the whole
			// log at its FULL commit: TestDuplicateOnlyIngestStillWritesALogFrame.
			t.Logf("the duplicate was answered %+v before the group's sync; "+
				"its own FULL commit synced the log", r.outcomes)
		}
	case <-time.After(300 * time.Millisecond):
	}
	held.release <- nil // the first sync, entered above
	if r := <-first; r.err != nil {
		t.Errorf("first: %v", r.err)
	}
	for _, c := range []chan ingestResult{blocker} {
		if r := held.letSyncsGoUntil(c); r.err != nil {
			t.Errorf("after the syncs: %v", r.err)
		}
	}
}

// The same, without a GroupCommitter's retry: Store.Ingest, as import
// uses it, reports a message of a group committed but not yet synced as
// a duplicate (stored) before the sync.
func TestStoreIngestReportsAnUnsyncedMessageAsStored(t *testing.T) {
	store, g, held := heldCommitter(t)
	first := ingestInBackground(t, g, "orig")
	held.waitForSyncToStart(t, first)
	outcomes, err := store.Ingest(context.Background(), raMessages(t, raTrack("orig", "anon-orig")))
	if err == nil && outcomes[0].Status == StatusDuplicate {
		t.Logf("Store.Ingest answered %q stored (duplicate) while its group's sync "+
			"was still held", outcomes[0].MessageID)
	}
	held.release <- nil
	<-first
}

// A transaction that finds only duplicates still commits a frame to the
// log (the write generation), so its synchronous=FULL commit flushes the
// log, with any earlier group's frames not yet synced: what makes the
// one-by-one retry's and import's "duplicate" answers durable.
func TestDuplicateOnlyIngestStillWritesALogFrame(t *testing.T) {
	db := sqltest.MustOpenSQLite(t)
	clock := func() time.Time { return time.Date(2026, 12, 4, 15, 8, 0, 0, time.UTC) }
	store := NewStore(db, DefaultRules(), clock, nil)
	messages := raMessages(t, raTrack("once", "anon-once"))
	if _, err := store.Ingest(context.Background(), messages); err != nil {
		t.Fatal(err)
	}
	var wal string
	if err := db.Get(&wal, "SELECT file FROM pragma_database_list WHERE name = 'main'"); err != nil {
		t.Fatal(err)
	}
	wal += "-wal"
	before := atkHashFile(t, wal)
	outcomes, err := store.Ingest(context.Background(), raMessages(t, raTrack("once", "anon-once")))
	if err != nil || outcomes[0].Status != StatusDuplicate {
		t.Fatalf("second ingest: %+v, %v", outcomes, err)
	}
	if after := atkHashFile(t, wal); after == before {
		t.Fatal("a duplicate-only Store.Ingest left the log untouched: its commit " +
			"syncs nothing, so its duplicate answers may precede the sync")
	}
}

func atkHashFile(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// Many callers with random sizes, random duplicates and a sync that fails
// at random: a nil answer means every message is stored once, an
// unavailable one that each is stored at most once (the committer stores
// nothing after a failed sync), nothing hangs, and after a restart the
// retries store what is missing and find the rest as duplicates.
func TestGroupSyncRandomFailuresKeepExactlyOnce(t *testing.T) {
	store, g, _ := heldCommitter(t)
	var syncs, failed atomic.Int64
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(7, 11))
	g.syncCommitted = func() error {
		syncs.Add(1)
		mu.Lock()
		fail := rng.IntN(3) == 0
		mu.Unlock()
		if fail {
			failed.Add(1)
			return errors.New("injected fsync failure")
		}
		return nil
	}

	const callers = 60
	type result struct {
		ids []string
		err error
	}
	results := make([]result, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			n := 1 + i%7
			var raws, ids []string
			for j := range n {
				id := fmt.Sprintf("m-%d-%d", i, j)
				if j == 0 && i%5 == 0 { // shared by several callers
					id = fmt.Sprintf("shared-%d", i%3)
				}
				ids = append(ids, id)
				raws = append(raws, raTrack(id, fmt.Sprintf("anon-%d", i%9)))
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := g.Ingest(ctx, raMessages(t, raws...))
			results[i] = result{ids, err}
		})
	}
	wg.Wait()
	if failed.Load() == 0 {
		t.Log("no injected failure happened this run")
	}
	for i, r := range results {
		switch {
		case r.err == nil:
			for _, id := range r.ids {
				if n := raCount(t, store, id); n != 1 {
					t.Errorf("caller %d got nil but %s is stored %d times", i, id, n)
				}
			}
		case ErrorCode(r.err) == EUnavailable:
			for _, id := range r.ids {
				if n := raCount(t, store, id); n > 1 {
					t.Errorf("caller %d got unavailable; %s stored %d times, want at most 1",
						i, id, n)
				}
			}
		default:
			t.Errorf("caller %d: unexpected error %v", i, r.err)
		}
	}
	// After a restart, retrying the unavailable ones stores each message
	// that is missing and finds the others as duplicates.
	restarted := NewGroupCommitter(store, GroupOptions{})
	defer restarted.Close()
	for i, r := range results {
		if r.err == nil {
			continue
		}
		var raws []string
		for _, id := range r.ids {
			raws = append(raws, raTrack(id, "anon-retry"))
		}
		if _, err := restarted.Ingest(context.Background(), raMessages(t, raws...)); err != nil {
			t.Errorf("retry %d: %v", i, err)
			continue
		}
		for _, id := range r.ids {
			if n := raCount(t, store, id); n != 1 {
				t.Errorf("retry %d: %s stored %d times, want 1", i, id, n)
			}
		}
	}
}

// More committed groups than the sync queue holds wait behind one held
// sync; Close returns only once every one of them is answered, and none
// is answered before the sync it waits for.
func TestGroupCloseWithAFullSyncQueueAnswersEveryone(t *testing.T) {
	store, g, held := committerWithHeldSyncs(t)
	first := ingestInBackground(t, g, "q-first")
	held.waitForSyncToStart(t, first)

	const groups = syncQueue + 4
	var answers []chan ingestResult
	for i := range groups {
		id := fmt.Sprintf("q-%d", i)
		answers = append(answers, ingestInBackground(t, g, id))
		if i < syncQueue {
			waitForEvent(t, store, id) // one group each, committed
		}
	}
	closed := make(chan struct{})
	go func() { g.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while committed groups waited for their sync")
	case <-time.After(200 * time.Millisecond):
	}
	for i, c := range answers {
		select {
		case r := <-c:
			if r.err == nil {
				t.Fatalf("group %d answered nil before any sync returned", i)
			}
			answers[i] = nil // told to retry or refused: fine, if unstored
			t.Logf("group %d answered before any sync: %v (stored %d)", i, r.err,
				raCount(t, store, fmt.Sprintf("q-%d", i)))
			if n := raCount(t, store, fmt.Sprintf("q-%d", i)); n != 0 && ErrorCode(r.err) != EUnavailable {
				t.Errorf("group %d refused (%v) but stored", i, r.err)
			}
		default:
		}
	}

	// Let every sync return; Close must then return with all answered.
	held.release <- nil // the first sync, entered above
	go func() {
		for {
			select {
			case <-held.entered:
				held.release <- nil
			case <-closed:
				return
			}
		}
	}()
	if r := <-first; r.err != nil {
		t.Errorf("first: %v", r.err)
	}
	<-closed
	for i, c := range answers {
		if c == nil {
			continue
		}
		// Close has handed every answer over; the caller's goroutine
		// may still be on its way (a guard against hanging only).
		select {
		case r := <-c:
			id := fmt.Sprintf("q-%d", i)
			stored := raCount(t, store, id)
			if r.err == nil && stored != 1 {
				t.Errorf("%s answered nil, stored %d", id, stored)
			}
			if r.err != nil && stored != 0 && ErrorCode(r.err) != EUnavailable {
				t.Errorf("%s answered %v but stored", id, r.err)
			}
		case <-time.After(time.Minute):
			t.Errorf("group %d not answered after Close returned", i)
		}
	}
}
