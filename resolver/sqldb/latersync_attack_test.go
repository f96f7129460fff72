package sqldb

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
)

// The statement cache keeps both PRAGMAs prepared: each later use must
// still switch the connection to NORMAL and back to FULL.
func TestSyncLaterAgainAndAgainKeepsThePoolFull(t *testing.T) {
	db := openOneWriter(t)
	for i := range 5 {
		var inside int
		err := db.WithWriteTxSyncLater(context.Background(), func(tx *sqlx.Tx) error {
			inside = synchronousOf(t, tx)
			_, err := tx.Exec("INSERT INTO notes (body) VALUES ('x')")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		var plain int
		err = db.WithWriteTx(context.Background(), func(tx *sqlx.Tx) error {
			plain = synchronousOf(t, tx)
			_, err := tx.Exec("INSERT INTO notes (body) VALUES ('y')")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if inside != 1 || plain != 2 {
			t.Errorf("round %d: synchronous %d inside, %d in a plain write, want 1 and 2",
				i, inside, plain)
		}
	}
}

// A panic inside fn rolls back and still leaves the connection at FULL.
func TestSyncLaterPanicLeavesTheConnectionFull(t *testing.T) {
	db := openOneWriter(t)
	func() {
		defer func() { _ = recover() }()
		_ = db.WithWriteTxSyncLater(context.Background(), func(tx *sqlx.Tx) error {
			if _, err := tx.Exec("INSERT INTO notes (body) VALUES ('lost')"); err != nil {
				return err
			}
			panic("inside the transaction")
		})
	}()
	if after := synchronousOf(t, db); after != 2 {
		t.Errorf("synchronous after a panic = %d, want 2 (FULL)", after)
	}
	var n int
	if err := db.Get(&n, "SELECT COUNT(*) FROM notes"); err != nil || n != 0 {
		t.Errorf("rows after a panic: %d (%v), want 0", n, err)
	}
}

// A context cancelled mid-transaction rolls it back; the connection
// comes back at FULL, or not at all.
func TestSyncLaterCancelledInsideLeavesTheConnectionFull(t *testing.T) {
	db := openOneWriter(t)
	ctx, cancel := context.WithCancel(context.Background())
	err := db.WithWriteTxSyncLater(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO notes (body) VALUES ('a')"); err != nil {
			return err
		}
		cancel()
		time.Sleep(50 * time.Millisecond) // let database/sql roll back
		_, err := tx.ExecContext(ctx, "INSERT INTO notes (body) VALUES ('b')")
		return err
	})
	if err == nil {
		t.Fatal("a cancelled transaction committed")
	}
	if after := synchronousOf(t, db); after != 2 {
		t.Errorf("synchronous after a cancelled transaction = %d, want 2 (FULL)", after)
	}
}

// lateCtx is a context whose Done channel is open for the first calls
// and closed from the call numbered at on: it is cancelled at a chosen
// point inside database/sql and the driver.
type lateCtx struct {
	context.Context
	calls, at atomic.Int64
	open      chan struct{}
	shut      chan struct{}
}

func newLateCtx(at int64) *lateCtx {
	c := &lateCtx{Context: context.Background(), open: make(chan struct{}),
		shut: make(chan struct{})}
	c.at.Store(at)
	close(c.shut)
	return c
}

func (c *lateCtx) Done() <-chan struct{} {
	if c.calls.Add(1) >= c.at.Load() {
		return c.shut
	}
	return c.open
}

func (c *lateCtx) Err() error {
	if c.calls.Load() >= c.at.Load() {
		return context.Canceled
	}
	return nil
}

// A context cancelled at any point of WithWriteTxSyncLater (while its
// PRAGMA runs, at BEGIN, inside, at the commit) never leaves a pooled
// connection at synchronous=NORMAL, where a later writer would commit
// without syncing.
func TestSyncLaterCancelledAnywhereNeverLeavesNormal(t *testing.T) {
	db := openOneWriter(t)
	for round := range 40 {
		for at := int64(1); at <= 12; at++ {
			ctx := newLateCtx(at)
			_ = db.WithWriteTxSyncLater(ctx, func(tx *sqlx.Tx) error {
				_, err := tx.ExecContext(ctx, "INSERT INTO notes (body) VALUES ('c')")
				return err
			})
			if after := synchronousOf(t, db); after != 2 {
				t.Fatalf("round %d, cancelled at Done call %d: the pooled connection "+
					"is left at synchronous=%d, want 2 (FULL)", round, at, after)
			}
		}
	}
}

// A context cancelled at a random moment (a request's deadline) never
// leaves the pooled connection at NORMAL. Found by this test: the PRAGMA,
// interrupted by ctx, failed after it took effect, before the setting's
// restore was deferred; and database/sql closed the transaction's
// connection from another goroutine while the restore ran on it.
func TestSyncLaterRandomCancelNeverLeavesNormal(t *testing.T) {
	db := openOneWriter(t)
	for i := range 3000 {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			for range i % 50 {
				time.Sleep(0)
			}
			cancel()
		}()
		_ = db.WithWriteTxSyncLater(ctx, func(tx *sqlx.Tx) error {
			_, err := tx.ExecContext(ctx, "INSERT INTO notes (body) VALUES ('r')")
			return err
		})
		cancel()
		if after := synchronousOf(t, db); after != 2 {
			t.Fatalf("try %d: the pooled connection is left at synchronous=%d, want 2", i, after)
		}
	}
}

// The log removed (all connections closed elsewhere) and made again by
// the next writer: SyncCommitted flushes whatever file is there now, and
// fails on something it cannot flush rather than reporting success.
func TestSyncCommittedAfterTheLogIsRecreated(t *testing.T) {
	db := openOneWriter(t)
	if err := os.Remove(db.log.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if err := db.SyncCommitted(); err != nil {
		t.Fatalf("sync with no log: %v", err)
	}
	if err := os.Mkdir(db.log.path, 0o700); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.Remove(db.log.path) }()
	err := db.SyncCommitted()
	t.Logf("sync of a log that is a directory: %v", err)
}
