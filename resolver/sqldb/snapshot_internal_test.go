package sqldb

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
)

func TestSnapshotNames(t *testing.T) {
	for id, want := range map[string]bool{
		"00000003-0000001B-1": true, "0A-ff-1": true, "1": true,
		"": false, "-1": false, "1-": false, "g1": false,
		"00000003-0000001B-1'; DROP TABLE events; --": false,
	} {
		if got := isSnapshotName(id); got != want {
			t.Errorf("isSnapshotName(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestLockStatementTakesOnlyTableNames(t *testing.T) {
	if got, err := lockStatement([]string{"events", "audience_members"}); err != nil ||
		got != "LOCK TABLE events, audience_members IN ACCESS SHARE MODE" {
		t.Errorf("lockStatement = %q, %v", got, err)
	}
	for _, bad := range [][]string{nil, {""}, {"events; DROP TABLE x"}, {"Events"}} {
		if _, err := lockStatement(bad); err == nil {
			t.Errorf("lockStatement(%q) took it", bad)
		}
	}
}

// TestJoiningBehindAQueuedExclusiveLockGivesUp is the wait that would
// never end: the first transaction holds its read lock, a request for an
// exclusive lock queues behind it, and a transaction joining the snapshot
// would queue behind that request while the first waits for the joiner.
// The joiner asks without waiting and is given up (errLockBusy).
func TestJoiningBehindAQueuedExclusiveLockGivesUp(t *testing.T) {
	db := openAttackPostgres(t)
	ctx := context.Background()
	lock, err := lockStatement([]string{"rows"})
	if err != nil {
		t.Fatal(err)
	}

	exclusive := make(chan error, 1)
	err = db.Snapshot(ctx, func(first *sqlx.Tx) error {
		if _, err := first.ExecContext(ctx, lock); err != nil {
			return err
		}
		id, err := exportSnapshot(ctx, first)
		if err != nil {
			return err
		}
		go func() { // outside the snapshot, as partition maintenance would

			exclusive <- db.WithTx(ctx, func(tx *sqlx.Tx) error {
				_, err := tx.ExecContext(ctx, `LOCK TABLE rows IN ACCESS EXCLUSIVE MODE`)
				return err
			})
		}()
		waitForWaitingLock(t, db)

		_, _, err = db.joinSnapshot(ctx, id, time.Minute, lock+" NOWAIT")
		if !errors.Is(err, errLockBusy) {
			t.Errorf("joining behind the queued exclusive lock: %v, want errLockBusy", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-exclusive; err != nil { // granted once first ended
		t.Errorf("the exclusive lock: %v", err)
	}
}

// waitForWaitingLock returns once some session of this database waits
// for a lock.
func waitForWaitingLock(t *testing.T, db *DB) {
	t.Helper()
	deadline := time.Now().Add(time.Minute) // a guard against hanging only
	for time.Now().Before(deadline) {
		var waiting int
		if err := db.Get(&waiting, `SELECT COUNT(*) FROM pg_locks l
			JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE NOT l.granted AND a.datname = current_database()
			AND l.relation = 'rows'::regclass`); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the exclusive lock request never queued")
}
