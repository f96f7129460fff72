package sqldb_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver/sqldb"
)

// The writer's own checkpoint waits for 16,000 pages of log; rows
// committed well below that still reach the database file, copied by the
// background checkpointer, and Close stops it.
func TestCommittedPagesReachTheFileWithoutTheWriterCheckpointing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wal.db")
	db, err := sqldb.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := db.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	if _, err := db.Exec(`CREATE TABLE filler (body TEXT)`); err != nil {
		t.Fatal(err)
	}
	before := fileSize(t, path)

	// About 2 MB: 500 pages of log, far below the writer's threshold.
	body := strings.Repeat("x", 4000)
	for range 500 {
		if _, err := db.Exec(`INSERT INTO filler (body) VALUES (?)`, body); err != nil {
			t.Fatal(err)
		}
	}

	deadline := time.Now().Add(30 * time.Second)
	for fileSize(t, path) < before+2_000_000 {
		if time.Now().After(deadline) {
			t.Fatalf("database file still %d bytes (log %d): nothing copied it",
				fileSize(t, path), fileSize(t, path+"-wal"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}
