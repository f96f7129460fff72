package resolver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// heldSyncs stands in for the database's SyncCommitted: each sync waits
// until the test lets it go, then returns what the test chose.
type heldSyncs struct {
	entered chan struct{} // a value each time a sync starts
	release chan error    // what each sync returns, once sent
	mu      sync.Mutex
	count   int
}

// heldCommitter is a GroupCommitter whose syncs the test holds, closed
// when the test ends.
func heldCommitter(t *testing.T) (*Store, *GroupCommitter, *heldSyncs) {
	store, g, held := committerWithHeldSyncs(t)
	t.Cleanup(g.Close)
	return store, g, held
}

// committerWithHeldSyncs is heldCommitter left open.
func committerWithHeldSyncs(t *testing.T) (*Store, *GroupCommitter, *heldSyncs) {
	_, store := raStore(t)
	g := NewGroupCommitter(store, GroupOptions{})
	held := newHeldSyncs()
	g.syncCommitted = held.sync
	return store, g, held
}

func newHeldSyncs() *heldSyncs {
	return &heldSyncs{entered: make(chan struct{}, 100), release: make(chan error)}
}

func (h *heldSyncs) sync() error {
	h.mu.Lock()
	h.count++
	h.mu.Unlock()
	h.entered <- struct{}{}
	return <-h.release
}

func (h *heldSyncs) syncs() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count
}

// letSyncsGoUntil lets every sync that starts return nil until answered
// gives an answer, and returns that.
func (h *heldSyncs) letSyncsGoUntil(answered chan ingestResult) ingestResult {
	for {
		select {
		case <-h.entered:
			h.release <- nil
		case r := <-answered:
			return r
		}
	}
}

// waitForSyncToStart waits until a sync starts, and fails when answered
// gives an answer first.
func (h *heldSyncs) waitForSyncToStart(t *testing.T, answered chan ingestResult) {
	t.Helper()
	select {
	case <-h.entered:
	case r := <-answered:
		t.Fatalf("answered with no sync: %+v", r)
	}
}

type ingestResult struct {
	outcomes []Outcome
	err      error
}

// ingestInBackground calls g.Ingest with one track and sends its answer.
func ingestInBackground(t *testing.T, g *GroupCommitter, id string) chan ingestResult {
	t.Helper()
	messages := raMessages(t, raTrack(id, "anon-"+id))
	answered := make(chan ingestResult, 1)
	go func() {
		outcomes, err := g.Ingest(context.Background(), messages)
		answered <- ingestResult{outcomes, err}
	}()
	return answered
}

// A caller hears back only once the log holding its commit is synced,
// though the commit is already visible: a 2xx means on disk.
func TestGroupCommitAnswersOnlyAfterTheSync(t *testing.T) {
	store, g, held := heldCommitter(t)

	answered := ingestInBackground(t, g, "synced-1")
	held.waitForSyncToStart(t, answered)
	if n := raCount(t, store, "synced-1"); n != 1 {
		t.Fatalf("the group was not committed before its sync: %d events", n)
	}
	select {
	case r := <-answered:
		t.Fatalf("answered before the sync returned: %+v", r)
	case <-time.After(200 * time.Millisecond):
	}

	held.release <- nil
	r := <-answered
	if r.err != nil || len(r.outcomes) != 1 || r.outcomes[0].Status != StatusStored {
		t.Fatalf("after the sync: %+v, %v", r.outcomes, r.err)
	}
}

// While one sync runs the committer goes on: the groups committed
// meanwhile are answered by the next sync, all at once.
func TestGroupCommitSyncsGroupsCommittedMeanwhileTogether(t *testing.T) {
	store, g, held := heldCommitter(t)

	first := ingestInBackground(t, g, "first")
	held.waitForSyncToStart(t, first)
	var later []chan ingestResult
	for i := range 3 {
		id := fmt.Sprintf("later-%d", i)
		later = append(later, ingestInBackground(t, g, id))
		waitForEvent(t, store, id) // committed while the first sync waits
	}

	held.release <- nil
	if r := <-first; r.err != nil {
		t.Fatalf("first: %v", r.err)
	}
	for i, answered := range later {
		if r := held.letSyncsGoUntil(answered); r.err != nil {
			t.Errorf("later %d: %v", i, r.err)
		}
	}
	if got := held.syncs(); got != 2 {
		t.Errorf("%d syncs for 4 groups, want 2 (one for the three committed "+
			"while the first synced)", got)
	}
}

// When the sync fails the caller is told to retry. The committer then
// stores nothing more: a later request is refused with nothing stored.
// After a restart (a new committer over the same file) the retry finds
// the message stored once.
func TestGroupCommitFailedSyncAsksForARetry(t *testing.T) {
	store, g, held := heldCommitter(t)

	answered := ingestInBackground(t, g, "unsynced")
	held.waitForSyncToStart(t, answered)
	if g.DiskFailed() {
		t.Fatal("DiskFailed before any sync failed")
	}
	held.release <- errors.New("input/output error")
	r := <-answered
	if ErrorCode(r.err) != EUnavailable {
		t.Fatalf("after a failed sync: %+v, %v; want code %s", r.outcomes, r.err, EUnavailable)
	}
	if n := raCount(t, store, "unsynced"); n != 1 {
		t.Fatalf("%d events after the failed sync; the commit stands, want 1", n)
	}
	if !g.DiskFailed() {
		t.Fatal("DiskFailed is false after a failed sync")
	}

	refused := ingestInBackground(t, g, "after-the-failure")
	r = held.letSyncsGoUntil(refused)
	if ErrorCode(r.err) != EUnavailable {
		t.Fatalf("a request after the failed sync: %+v, %v; want code %s",
			r.outcomes, r.err, EUnavailable)
	}
	if n := raCount(t, store, "after-the-failure"); n != 0 {
		t.Fatalf("a request after the failed sync stored %d events, want 0", n)
	}

	restarted := NewGroupCommitter(store, GroupOptions{})
	defer restarted.Close()
	outcomes, err := restarted.Ingest(context.Background(),
		raMessages(t, raTrack("unsynced", "anon-unsynced")))
	if err != nil || outcomes[0].Status != StatusDuplicate {
		t.Fatalf("retry after a restart: %+v, %v; want a duplicate", outcomes, err)
	}
}

// Close waits for the callers whose groups are committed but not yet
// synced, and answers them.
func TestGroupCommitCloseAnswersGroupsWaitingForTheSync(t *testing.T) {
	_, g, held := committerWithHeldSyncs(t)

	answered := ingestInBackground(t, g, "closing")
	held.waitForSyncToStart(t, answered)
	closed := make(chan struct{})
	go func() { g.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while a caller waited for the sync")
	case <-time.After(200 * time.Millisecond):
	}

	held.release <- nil
	<-closed
	if r := <-answered; r.err != nil {
		t.Fatalf("closing: %v", r.err)
	}
}

// raCount counts the stored events of messageId id.
func raCount(t *testing.T, s *Store, id string) int {
	t.Helper()
	var n int
	err := s.db.Get(&n, s.db.Rebind("SELECT COUNT(*) FROM events WHERE message_id = ?"), id)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitForEvent waits until the event of messageId id is committed.
func waitForEvent(t *testing.T, s *Store, id string) {
	t.Helper()
	for raCount(t, s, id) == 0 {
		time.Sleep(time.Millisecond)
	}
}
