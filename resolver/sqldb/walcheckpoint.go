package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"sync"
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
//
// TODO(ingest): checkpointing every 10 ms, or after each commit, took
// 7 to 15 % more batch events a second and halved p99, but cost
// single-message webhooks 2 to 10 % (docs/benchmarks.md, eighteenth
// session); checking early only after large groups is not yet measured.
const backgroundCheckpointEvery = 100 * time.Millisecond

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
}

// startCheckpointer starts copying for the database that pool opens. A
// passive checkpoint never waits for or blocks the writer or readers; one
// that fails (the file is busy, full or read-only) is simply tried again
// at the next tick, and the writer's own checkpoint remains as before.
func startCheckpointer(pool *sql.DB) *checkpointer {
	ctx, cancel := context.WithCancel(context.Background())
	c := &checkpointer{cancel: cancel}
	c.done.Go(func() {
		ticker := time.NewTicker(backgroundCheckpointEvery)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
				_, _ = pool.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
			}
		}
	})
	return c
}

// stop ends the copying and waits for a checkpoint under way to finish.
func (c *checkpointer) stop() {
	c.cancel()
	c.done.Wait()
}
