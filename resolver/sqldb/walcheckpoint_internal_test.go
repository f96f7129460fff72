package sqldb

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The writer's own checkpoint waits for 16,000 pages of log; rows
// committed well below that still reach the database file, copied by the
// background checkpointer at its tick, and Close stops it.
func TestCommittedPagesReachTheFileWithoutTheWriterCheckpointing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wal.db")
	db, err := OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := db.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	before := sizeOf(t, path)

	mustFill(t, db, 500) // about 2 MB: 500 pages of log
	waitForFileSize(t, db, path, before+2_000_000)
}

// TestCheckpointSoonCopiesWithoutWaitingForTheTick replaces the background
// checkpointer with one that ticks once an hour: rows committed far below
// the writer's own threshold reach the database file only if
// CheckpointSoon starts a copy.
func TestCheckpointSoonCopiesWithoutWaitingForTheTick(t *testing.T) {
	path := filepath.Join(t.TempDir(), "soon.db")
	db, err := OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	db.checkpoints.stop()
	db.checkpoints = startCheckpointer(db.snapshots.DB, time.Hour)
	defer func() {
		if err := db.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()

	mustFill(t, db, 500) // about 2 MB of log
	before := sizeOf(t, path)
	if got := db.checkpoints.runs.Load(); got != 0 {
		t.Fatalf("%d checkpoints started before any was asked for", got)
	}

	db.CheckpointSoon()
	waitForFileSize(t, db, path, before+2_000_000)
}

// waitForFileSize waits until the database file holds want bytes, and fails
// the test when nothing copies the log into it within 30 s.
func waitForFileSize(t *testing.T, db *DB, path string, want int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for sizeOf(t, path) < want {
		if time.Now().After(deadline) {
			t.Fatalf("database file still %d bytes (log %d, %d checkpoints started)",
				sizeOf(t, path), sizeOf(t, path+"-wal"), db.checkpoints.runs.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCheckpointSoonDoesNothingWithoutACheckpointer covers PostgreSQL's
// handle, which has none.
func TestCheckpointSoonDoesNothingWithoutACheckpointer(t *testing.T) {
	(&DB{dialect: Postgres}).CheckpointSoon()
}

func mustFill(t *testing.T, db *DB, rows int) {
	t.Helper()
	if _, err := db.Exec(`CREATE TABLE filler (body TEXT)`); err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("x", 4000)
	for range rows {
		if _, err := db.Exec(`INSERT INTO filler (body) VALUES (?)`, body); err != nil {
			t.Fatal(err)
		}
	}
}

func sizeOf(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}
