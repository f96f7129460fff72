package sqldb

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
)

// openOneWriter opens a SQLite file whose writing pool holds a single
// connection, so that a test sees the settings a transaction left on it.
func openOneWriter(t *testing.T) *DB {
	t.Helper()

	db, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "sync.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	db.SetMaxOpenConns(1)
	_, err = db.Exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// synchronousOf reads the connection's synchronous setting: 1 is NORMAL,
// 2 is FULL.
func synchronousOf(t *testing.T, q sqlx.Queryer) int {
	t.Helper()

	var level int
	if err := sqlx.Get(q, &level, "PRAGMA synchronous"); err != nil {
		t.Fatal(err)
	}
	return level
}

// The transaction commits without a sync of its own, and the connection
// goes back to the pool syncing at each commit, so that every other
// writer's commit (an audience run, an erasure) still waits for the disk.
func TestWithWriteTxSyncLaterSyncsNoOtherCommit(t *testing.T) {
	db := openOneWriter(t)

	var inside int
	err := db.WithWriteTxSyncLater(context.Background(), func(tx *sqlx.Tx) error {
		inside = synchronousOf(t, tx)
		_, err := tx.Exec("INSERT INTO notes (body) VALUES ('kept')")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	if inside != 1 {
		t.Errorf("synchronous inside the transaction = %d, want 1 (NORMAL)", inside)
	}
	if after := synchronousOf(t, db); after != 2 {
		t.Errorf("synchronous after it = %d, want 2 (FULL)", after)
	}
	var n int
	if err := db.Get(&n, "SELECT COUNT(*) FROM notes"); err != nil || n != 1 {
		t.Fatalf("rows after the commit: %d (%v), want 1", n, err)
	}
}

// A transaction that fails commits nothing and leaves the connection
// syncing too.
func TestWithWriteTxSyncLaterRollsBackOnError(t *testing.T) {
	db := openOneWriter(t)

	err := db.WithWriteTxSyncLater(context.Background(), func(tx *sqlx.Tx) error {
		_, err := tx.Exec("INSERT INTO notes (body) VALUES (NULL)")
		return err
	})
	if err == nil {
		t.Fatal("a NULL body was committed")
	}

	if after := synchronousOf(t, db); after != 2 {
		t.Errorf("synchronous after the failure = %d, want 2 (FULL)", after)
	}
	var n int
	if err := db.Get(&n, "SELECT COUNT(*) FROM notes"); err != nil || n != 0 {
		t.Fatalf("rows after the failure: %d (%v), want 0", n, err)
	}
}

// SyncCommitted flushes the file's own log, and says so when the flush
// fails.
func TestSyncCommittedFlushesTheLog(t *testing.T) {
	db := openOneWriter(t)
	err := db.WithWriteTxSyncLater(context.Background(), func(tx *sqlx.Tx) error {
		_, err := tx.Exec("INSERT INTO notes (body) VALUES ('kept')")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	if !strings.HasSuffix(db.log.path, "sync.db-wal") {
		t.Fatalf("log path %q is not the file's log", db.log.path)
	}
	if _, err := os.Stat(db.log.path); err != nil {
		t.Fatalf("the log is not where SyncCommitted looks: %v", err)
	}
	if err := db.SyncCommitted(); err != nil {
		t.Fatalf("sync: %v", err)
	}

	db.log.path = os.DevNull // fsync refuses a character device
	if err := db.SyncCommitted(); err == nil {
		t.Fatal("a failed fsync was reported as a success")
	}
}

// A log that is gone was copied into the database file and synced by the
// last connection to close it: nothing is left to flush.
func TestSyncCommittedWithoutALog(t *testing.T) {
	gone := newLogSyncer(filepath.Join(t.TempDir(), "gone.db-wal"))
	if err := gone.sync(); err != nil {
		t.Fatalf("sync of a removed log: %v", err)
	}
}

// In memory there is no disk to wait for: the transaction is WithWriteTx's.
func TestWithWriteTxSyncLaterInMemory(t *testing.T) {
	db, err := OpenSQLite(context.Background(), ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	if db.log != nil {
		t.Fatalf("an in-memory database has a log at %q", db.log.path)
	}

	err = db.WithWriteTxSyncLater(context.Background(), func(tx *sqlx.Tx) error {
		_, err := tx.Exec("SELECT 1")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SyncCommitted(); err != nil {
		t.Fatal(err)
	}
}

// The log's directory is flushed once for each log file: the first sync
// after a restart makes the new log's name durable too, and a log made
// again (after every connection closed) is flushed with its directory
// again.
func TestSyncCommittedFlushesTheDirectoryOfANewLog(t *testing.T) {
	db := openOneWriter(t)
	var dirs []string
	db.log.syncDir = func(dir string) error {
		dirs = append(dirs, dir)
		return nil
	}

	for range 3 {
		if err := db.SyncCommitted(); err != nil {
			t.Fatal(err)
		}
	}
	if len(dirs) != 1 || dirs[0] != filepath.Dir(db.log.path) {
		t.Fatalf("directories synced for one log: %q, want its directory once", dirs)
	}

	if err := os.Rename(db.log.path, db.log.path+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db.log.path, []byte("another log"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := db.SyncCommitted(); err != nil {
		t.Fatal(err)
	}
	if len(dirs) != 2 {
		t.Fatalf("directories synced after the log was made again: %q, want 2", dirs)
	}
}

// A directory that cannot be flushed fails the sync, and the next sync
// tries it again.
func TestSyncCommittedReportsAFailedDirectorySync(t *testing.T) {
	db := openOneWriter(t)
	failures := 1
	db.log.syncDir = func(string) error {
		if failures > 0 {
			failures--
			return errors.New("input/output error")
		}
		return nil
	}

	if err := db.SyncCommitted(); err == nil {
		t.Fatal("a failed directory sync was reported as a success")
	}
	if err := db.SyncCommitted(); err != nil {
		t.Fatalf("the retried directory sync: %v", err)
	}
	if db.log.known == nil {
		t.Fatal("the log was not recorded as known after its directory synced")
	}
}
