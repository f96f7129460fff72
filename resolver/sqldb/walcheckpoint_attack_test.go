package sqldb_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // the driver OpenSQLite's reader pool uses

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver/sqldb"
)

// settledGoroutines waits for the goroutine count to fall to at most want
// and returns the count it saw last.
func settledGoroutines(want int) int {
	n := runtime.NumGoroutine()
	for range 200 {
		if n <= want {
			return n
		}
		time.Sleep(10 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return n
}

// Opening and closing many databases, some of them twice and some while
// a checkpoint is likely under way, leaves no goroutine behind.
func TestOpenCloseManyLeavesNoCheckpointer(t *testing.T) {
	dir := t.TempDir()
	before := runtime.NumGoroutine()
	for i := range 40 {
		path := filepath.Join(dir, "many.db")
		db, err := sqldb.OpenSQLite(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS t (body TEXT)`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO t VALUES (?)`, strings.Repeat("x", 9000)); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			time.Sleep(110 * time.Millisecond) // let a tick fire
		}
		if err := db.Close(); err != nil {
			t.Fatalf("close %d: %v", i, err)
		}
		if err := db.Close(); err != nil {
			t.Fatalf("second close %d: %v", i, err)
		}
	}
	if after := settledGoroutines(before); after > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines before, %d after:\n%s", before, after,
			buf[:runtime.Stack(buf, true)])
	}
}

// Close while writers and a long Snapshot are busy returns, and the writes
// that raced it fail with an error rather than a panic.
func TestCloseUnderConcurrentWritesAndSnapshot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "busy.db")
	db, err := sqldb.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE t (body TEXT)`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	body := strings.Repeat("y", 4000)
	for range 3 {
		wg.Go(func() {
			for {
				if _, err := db.Exec(`INSERT INTO t VALUES (?)`, body); err != nil {
					return // closed
				}
			}
		})
	}
	wg.Go(func() {
		_ = db.Snapshot(context.Background(), func(tx *sqlx.Tx) error {
			var n int
			_ = tx.Get(&n, `SELECT COUNT(*) FROM t`)
			time.Sleep(300 * time.Millisecond)
			return nil
		})
	})
	time.Sleep(350 * time.Millisecond)
	start := time.Now()
	if err := db.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	t.Logf("close took %v", time.Since(start))
	wg.Wait()
	if err := db.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}

// walPages writes pages of about 4 KB each, one a transaction.
func writePages(t *testing.T, db *sqldb.DB, n int) {
	t.Helper()
	body := strings.Repeat("z", 3900)
	for range n {
		if _, err := db.Exec(`INSERT INTO t VALUES (?)`, body); err != nil {
			t.Fatal(err)
		}
	}
}

func walSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path + "-wal")
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

// The log's size on disk under sustained writes, with and without a
// Snapshot held open across them. With no reader the background
// checkpoint lets the writer start the log over, so it stays far below the
// 16,000-page threshold; a held Snapshot stops that, as it legitimately
// must, and the log then keeps growing; once the Snapshot ends, the log
// file is reused from its start but never shrinks on disk.
func TestWALSizeUnderWritesAndLongSnapshot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wal.db")
	db, err := sqldb.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	if _, err := db.Exec(`CREATE TABLE t (body TEXT)`); err != nil {
		t.Fatal(err)
	}

	var free int64
	for range 10 {
		writePages(t, db, 300)
		time.Sleep(120 * time.Millisecond) // a background checkpoint
		free = max(free, walSize(t, path))
	}
	t.Logf("no reader, 3,000 pages written: log at most %d KB", free/1024)
	if free > 16000*4096 {
		t.Errorf("log %d bytes with no reader open", free)
	}

	held, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- db.Snapshot(context.Background(), func(tx *sqlx.Tx) error {
			var n int
			if err := tx.Get(&n, `SELECT COUNT(*) FROM t`); err != nil {
				return err
			}
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	startHeld := walSize(t, path)
	writePages(t, db, 3000)
	time.Sleep(250 * time.Millisecond)
	whileHeld := walSize(t, path)
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("Snapshot held over 3,000 more pages: log %d KB -> %d KB",
		startHeld/1024, whileHeld/1024)

	time.Sleep(250 * time.Millisecond) // the checkpoint catches up
	writePages(t, db, 300)
	time.Sleep(250 * time.Millisecond)
	after := walSize(t, path)
	var busy, logFrames, copied int
	err = db.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logFrames, &copied)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("log in use: %d frames, %d copied", logFrames, copied)
	t.Logf("Snapshot ended, 300 more pages: log file %d KB on disk", after/1024)
	if after < whileHeld {
		t.Logf("the log file shrank")
	}
}
