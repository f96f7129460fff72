package sqldb

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/jmoiron/sqlx"
)

// WithWriteTxSyncLater is WithWriteTx whose commit, on a SQLite file,
// returns before the write-ahead log reaches the disk: the transaction is
// committed and other connections see it, but a power cut could still undo
// it until SyncCommitted returns. So the caller must not report it stored
// before calling SyncCommitted. Meanwhile the next transaction can start:
// the disk's flush and the writer's work overlap. Every other transaction,
// and this one's connection afterwards, still syncs at its commit.
//
// ctx bounds the wait for a connection and fn's own statements; once fn
// returns nil the transaction commits, even if ctx has ended meanwhile.
// On PostgreSQL and on in-memory SQLite it is WithWriteTx.
func (db *DB) WithWriteTxSyncLater(ctx context.Context,
	fn func(tx *sqlx.Tx) error) error {
	if db.log == nil {
		return db.WithWriteTx(ctx, fn)
	}
	conn, err := db.Connx(ctx)
	if err != nil {
		return fmt.Errorf("take a connection to write: %w", err)
	}
	defer func() { _ = conn.Close() }()

	// Neither the PRAGMAs nor the transaction follow ctx: database/sql
	// closes a transaction's connection, from another goroutine, when
	// the transaction's context ends, which raced with putting the
	// setting back; and a PRAGMA interrupted by ctx can fail after it
	// took effect. fn's statements still stop when ctx ends.
	background := context.WithoutCancel(ctx)
	defer syncAtCommitAgain(conn)
	_, err = conn.ExecContext(background, "PRAGMA synchronous=NORMAL")
	if err != nil {
		return fmt.Errorf("commit without syncing: %w", err)
	}

	tx, err := conn.BeginTxx(background, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	return commitAfter(tx, fn)
}

// syncAtCommitAgain puts conn back to syncing at each commit before the
// pool lends it again; a connection that cannot be put back is closed
// instead, so no later transaction commits on it unsynced.
func syncAtCommitAgain(conn *sqlx.Conn) {
	_, err := conn.ExecContext(context.Background(), "PRAGMA synchronous=FULL")
	if err == nil {
		return
	}
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
}

// SyncCommitted makes every transaction committed so far durable: on a
// SQLite file it flushes the write-ahead log to the disk, which is what
// a commit of WithWriteTxSyncLater left undone, and the log's directory
// too the first time it meets that log file (a log made since the last
// restart). It does nothing elsewhere, where each commit waits for the
// disk itself.
func (db *DB) SyncCommitted() error {
	if db.log == nil {
		return nil
	}
	return db.log.sync()
}

// logSyncer flushes one SQLite file's write-ahead log.
type logSyncer struct {
	path string
	// syncDir flushes a directory: syncDirectory, or a test's stand-in.
	syncDir func(dir string) error

	mu sync.Mutex
	// known is the log file whose directory entry is on disk already.
	known os.FileInfo
}

func newLogSyncer(path string) *logSyncer {
	return &logSyncer{path: path, syncDir: syncDirectory}
}

// sync flushes the log, and its directory when the log is a file it has
// not met before. A missing log is no error: SQLite removes its log only
// when the last connection closes, after copying the whole log into the
// database file and syncing that file.
func (l *logSyncer) sync() error {
	f, err := os.Open(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open the write-ahead log to sync it: %w", err)
	}
	defer func() { _ = f.Close() }()

	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync the write-ahead log %s: %w", l.path, err)
	}
	return l.syncDirOnce(f)
}

// syncDirOnce flushes the directory of the log open as f unless it has
// done so for this very file.
func (l *logSyncer) syncDirOnce(f *os.File) error {
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat the write-ahead log: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.known != nil && os.SameFile(l.known, info) {
		return nil
	}

	if err := l.syncDir(filepath.Dir(l.path)); err != nil {
		return err
	}
	l.known = info
	return nil
}

// syncDirectory flushes the directory at dir, so the names it holds
// survive a power cut.
func syncDirectory(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open the directory %s to sync it: %w", dir, err)
	}
	defer func() { _ = d.Close() }()

	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync the directory %s: %w", dir, err)
	}
	return nil
}

// logPath is the write-ahead log of the SQLite database that db opened,
// from SQLite's own list of its files; "" for an in-memory database.
func logPath(ctx context.Context, db *DB) (string, error) {
	var file string
	err := db.QueryRowContext(ctx,
		"SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&file)
	if err != nil {
		return "", fmt.Errorf("find the database file: %w", err)
	}
	if file == "" {
		return "", nil
	}
	return file + "-wal", nil
}
