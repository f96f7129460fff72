package sqldb

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
)

// rowsPerWrite is how many rows each transaction of the load below adds:
// a reader that ever sees a count that is not a multiple of it has seen
// half a transaction.
const rowsPerWrite = 5

// SQLite's connections run without its own mutex (_mutex=no in
// SQLiteDSN), trusting database/sql to hand each connection to one
// goroutine at a time. Writers on several connections of both pools'
// kinds, readers in snapshots and on the writing pool, statements
// interrupted by their contexts and the background checkpointer all run
// at once here: every acknowledged transaction must be there in full, no
// reader may see part of one, and the file must pass integrity_check.
func TestConnectionsWithoutSQLiteMutexUnderLoad(t *testing.T) {
	db := openLoadTarget(t)
	acknowledged := make(chan [2]int, 4096)
	var wg sync.WaitGroup
	for worker := range 6 {
		wg.Go(func() { writeLoad(t, db, worker, acknowledged) })
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for reader := range 3 {
		readers.Go(func() { readLoad(t, db, reader, stop) })
	}

	wg.Wait()
	close(stop)
	readers.Wait()
	close(acknowledged)

	checkWholeTransactions(t, db, acknowledged)
	checkIntegrity(t, db)
}

// openLoadTarget opens a fresh file with OpenSQLite's settings, four
// writing connections, and the table the load writes.
func openLoadTarget(t *testing.T) *DB {
	t.Helper()

	db, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "load.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	db.SetMaxOpenConns(4)

	_, err = db.Exec(`CREATE TABLE load (id INTEGER PRIMARY KEY,
		worker INTEGER NOT NULL, tx INTEGER NOT NULL, body TEXT NOT NULL)`)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// writeLoad runs one worker's transactions, a third of them syncing later
// and a quarter under a context that ends within about a millisecond, and
// sends the number of each one acknowledged.
func writeLoad(t *testing.T, db *DB, worker int, acknowledged chan<- [2]int) {
	rng := rand.New(rand.NewPCG(uint64(worker), 21))
	for n := range 120 {
		ctx, cancel := loadContext(rng)
		err := writeOne(ctx, db, worker, n, rng.IntN(3) == 0)
		cancel()
		if err == nil {
			acknowledged <- [2]int{worker, n}
			continue
		}
		if ctx.Err() == nil {
			t.Errorf("worker %d transaction %d: %v", worker, n, err)
			return
		}
	}
}

// loadContext returns a context that a quarter of the time ends within
// about a millisecond.
func loadContext(rng *rand.Rand) (context.Context, context.CancelFunc) {
	if rng.IntN(4) > 0 {
		return context.WithCancel(context.Background())
	}
	wait := time.Duration(rng.IntN(1000)) * time.Microsecond
	return context.WithTimeout(context.Background(), wait)
}

// writeOne adds one transaction's rows, through WithWriteTxSyncLater and
// SyncCommitted when later is set, through WithWriteTx otherwise.
func writeOne(ctx context.Context, db *DB, worker, n int, later bool) error {
	insert := func(tx *sqlx.Tx) error {
		for row := range rowsPerWrite {
			_, err := tx.ExecContext(ctx,
				`INSERT INTO load (worker, tx, body) VALUES (?, ?, ?)`,
				worker, n, fmt.Sprintf("%d/%d/%d", worker, n, row))
			if err != nil {
				return err
			}
		}
		return nil
	}
	if !later {
		return db.WithWriteTx(ctx, insert)
	}
	if err := db.WithWriteTxSyncLater(ctx, insert); err != nil {
		return err
	}
	return db.SyncCommitted()
}

// readLoad counts the rows until stop, in snapshots and on the writing
// pool, some counts interrupted by their contexts, and fails the test on a
// count that holds part of a transaction.
func readLoad(t *testing.T, db *DB, reader int, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(uint64(reader), 7))
	for {
		select {
		case <-stop:
			return
		default:
		}
		ctx, cancel := loadContext(rng)
		count, err := countLoad(ctx, db, rng.IntN(2) == 0)
		cancel()
		if err != nil && ctx.Err() == nil {
			t.Errorf("reader %d: %v", reader, err)
			return
		}
		if err == nil && count%rowsPerWrite != 0 {
			t.Errorf("reader %d saw %d rows: part of a transaction", reader, count)
			return
		}
	}
}

// countLoad counts the rows in a snapshot or on the writing pool.
func countLoad(ctx context.Context, db *DB, inSnapshot bool) (int, error) {
	var count int
	if !inSnapshot {
		err := db.GetContext(ctx, &count, `SELECT COUNT(*) FROM load`)
		return count, err
	}
	err := db.Snapshot(ctx, func(tx *sqlx.Tx) error {
		return tx.GetContext(ctx, &count, `SELECT COUNT(*) FROM load`)
	})
	return count, err
}

// checkWholeTransactions fails the test unless every transaction stored
// is whole and every acknowledged one is stored.
func checkWholeTransactions(t *testing.T, db *DB, acknowledged <-chan [2]int) {
	t.Helper()

	var stored []struct {
		Worker int `db:"worker"`
		Tx     int `db:"tx"`
		Rows   int `db:"rows"`
	}
	err := db.Select(&stored, `SELECT worker, tx, COUNT(*) AS rows FROM load
		GROUP BY worker, tx`)
	if err != nil {
		t.Fatal(err)
	}
	found := map[[2]int]bool{}
	for _, s := range stored {
		found[[2]int{s.Worker, s.Tx}] = true
		if s.Rows != rowsPerWrite {
			t.Errorf("worker %d transaction %d stored %d rows, want %d",
				s.Worker, s.Tx, s.Rows, rowsPerWrite)
		}
	}
	acked := 0
	for key := range acknowledged {
		acked++
		if !found[key] {
			t.Errorf("worker %d transaction %d was acknowledged but is not stored",
				key[0], key[1])
		}
	}
	if acked < 6*120/2 {
		t.Errorf("only %d of %d transactions were acknowledged: the load did not run",
			acked, 6*120)
	}
}

// checkIntegrity fails the test unless SQLite finds the file sound.
func checkIntegrity(t *testing.T, db *DB) {
	t.Helper()

	var result string
	if err := db.Get(&result, `PRAGMA integrity_check`); err != nil {
		t.Fatal(err)
	}
	if result != "ok" {
		t.Errorf("integrity_check: %s", result)
	}
}
