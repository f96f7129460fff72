package sqldb

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"os"

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
// On PostgreSQL and on in-memory SQLite it is WithWriteTx.
func (db *DB) WithWriteTxSyncLater(ctx context.Context,
	fn func(tx *sqlx.Tx) error) error {
	if db.walPath == "" {
		return db.WithWriteTx(ctx, fn)
	}
	conn, err := db.Connx(ctx)
	if err != nil {
		return fmt.Errorf("take a connection to write: %w", err)
	}
	defer func() { _ = conn.Close() }()

	if _, err := conn.ExecContext(ctx, "PRAGMA synchronous=NORMAL"); err != nil {
		return fmt.Errorf("commit without syncing: %w", err)
	}
	defer syncAtCommitAgain(conn)

	tx, err := conn.BeginTxx(ctx, nil)
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
// a commit of WithWriteTxSyncLater left undone. It does nothing elsewhere,
// where each commit waits for the disk itself.
func (db *DB) SyncCommitted() error {
	if db.walPath == "" {
		return nil
	}
	return syncFile(db.walPath)
}

// syncFile flushes the file at path to the disk. A missing file is no
// error: SQLite removes its log only when the last connection closes, after
// copying the whole log into the database file and syncing that file.
func syncFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open the write-ahead log to sync it: %w", err)
	}
	defer func() { _ = f.Close() }()

	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync the write-ahead log %s: %w", path, err)
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
