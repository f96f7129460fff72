package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mattn/go-sqlite3"
)

// walAutoCheckpointPages is how long the write-ahead log may grow, in
// pages, before the committing writer copies it back into the database
// file (SQLite's default is 1,000). A longer log lets a page that many
// transactions change be copied once instead of once each: ingestion took
// 30 to 40 % less time a message with 16,000 (64 MB at 4 KB pages).
const walAutoCheckpointPages = 16000

// walSizeLimitBytes is what the log file is cut back to after a checkpoint
// that empties it: a reader held open for long lets the log grow past
// walAutoCheckpointPages, and without a limit the file keeps that size.
const walSizeLimitBytes = 128 << 20

// backgroundCheckpointEvery is how often a goroutine beside the writer
// copies committed pages from the log into the file, so that the writer's
// own checkpoint, when the log reaches walAutoCheckpointPages, finds most of
// the work done and holds up fewer requests.
// DB.CheckpointSoon starts one earlier.
const backgroundCheckpointEvery = 100 * time.Millisecond

// checkpointSpacing is the least time between the starts of two background
// checkpoints, however often CheckpointSoon asks for one.
const checkpointSpacing = 10 * time.Millisecond

// sqliteConnector opens go-sqlite3 connections to one DSN and sets each
// up with the statements in setup, without registering a driver name.
type sqliteConnector struct {
	dsn    string
	driver *sqlite3.SQLiteDriver
}

func newSQLiteConnector(dsn string, setup ...string) sqliteConnector {
	hook := func(conn *sqlite3.SQLiteConn) error {
		for _, statement := range setup {
			if _, err := conn.Exec(statement, nil); err != nil {
				return fmt.Errorf("%s: %w", statement, err)
			}
		}
		return nil
	}
	return sqliteConnector{dsn: dsn, driver: &sqlite3.SQLiteDriver{ConnectHook: hook}}
}

// Connect opens one connection; database/sql calls it.
func (c sqliteConnector) Connect(context.Context) (driver.Conn, error) {
	return c.driver.Open(c.dsn)
}

// Driver returns the driver behind the connector; database/sql calls it.
func (c sqliteConnector) Driver() driver.Driver { return c.driver }

// checkpointer copies the write-ahead log into the database file every
// backgroundCheckpointEvery, on the pool of readers, until stop is called.
type checkpointer struct {
	cancel context.CancelFunc
	done   sync.WaitGroup
	// wake holds a request for a checkpoint not yet started.
	wake chan struct{}
	// runs counts the checkpoints started, for tests.
	runs atomic.Int64
}

// nudge asks for a checkpoint as soon as spacing allows; asking again
// before it starts asks for nothing more.
func (c *checkpointer) nudge() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// CheckpointSoon asks the background checkpointer to copy SQLite's
// write-ahead log into the database file as soon as the copy under way,
// if any, ends, at most once every checkpointSpacing, instead of at its
// next tick. A writer that has just committed many pages calls it, so
// that its own checkpoint, when the log reaches walAutoCheckpointPages,
// finds less to copy. It returns at once, and does nothing on PostgreSQL.
func (db *DB) CheckpointSoon() {
	if db.checkpoints != nil {
		db.checkpoints.nudge()
	}
}

// startCheckpointer starts copying for the database that pool opens. A
// passive checkpoint never waits for or blocks the writer or readers; one
// that fails (the file is busy, full or read-only) is simply tried again
// at the next tick, and the writer's own checkpoint remains as before.
func startCheckpointer(pool *sql.DB, every time.Duration) *checkpointer {
	ctx, cancel := context.WithCancel(context.Background())
	c := &checkpointer{cancel: cancel, wake: make(chan struct{}, 1)}
	c.done.Go(func() {
		ticker := time.NewTicker(every)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-c.wake:
			case <-ticker.C:
			}
			started := time.Now()
			c.runs.Add(1)
			_, _ = pool.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
			if !sleepCtx(ctx, checkpointSpacing-time.Since(started)) {
				return
			}
		}
	})
	return c
}

// sleepCtx waits for d, or less when ctx ends first; it reports whether
// ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// stop ends the copying and waits for a checkpoint under way to finish.
func (c *checkpointer) stop() {
	c.cancel()
	c.done.Wait()
}
