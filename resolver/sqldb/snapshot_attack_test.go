package sqldb

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
)

// attackLock is the joiners' lock of the attack schema's one table.
const attackLock = "LOCK TABLE rows IN ACCESS SHARE MODE NOWAIT"

// openAttackPostgres opens a pool on a schema of its own, with one table,
// dropped when the test ends. (sqltest imports this package, so an
// internal test opens its own.)
func openAttackPostgres(t *testing.T) *DB {
	t.Helper()
	server := os.Getenv("KNIT_TEST_POSTGRES")
	if server == "" {
		t.Skip("KNIT_TEST_POSTGRES is not set: no PostgreSQL to test on")
	}
	admin, err := OpenPostgres(context.Background(), server)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	schema := fmt.Sprintf("knit_snap_attack_%d", time.Now().UnixNano())
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec("DROP SCHEMA " + schema + " CASCADE") })
	u, err := url.Parse(server)
	if err != nil {
		t.Fatal(err)
	}
	query := u.Query()
	query.Set("search_path", schema)
	u.RawQuery = query.Encode()
	db, err := OpenPostgres(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Exec(`CREATE TABLE rows (id BIGINT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	return db
}

func countRows(t *testing.T, q sqlx.QueryerContext) int {
	t.Helper()
	var n int
	if err := sqlx.GetContext(context.Background(), q, &n, `SELECT COUNT(*) FROM rows`); err != nil {
		t.Fatal(err)
	}
	return n
}

// mustReleaseAll fails when a connection is still taken from the pool a
// while later: a transaction whose ctx ended is rolled back by
// database/sql in the background, so its connection comes back a little
// after the call returns.
func mustReleaseAll(t *testing.T, db *DB) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for db.Stats().InUse != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if inUse := db.Stats().InUse; inUse != 0 {
		t.Errorf("%d connections still in use", inUse)
	}
}

// TestAttackCommitBetweenExportAndJoin commits a row after the snapshot
// is exported and before another transaction joins it: the joined
// transaction sees the exported moment, not the commit.
func TestAttackCommitBetweenExportAndJoin(t *testing.T) {
	db := openAttackPostgres(t)
	ctx := context.Background()
	err := db.Snapshot(ctx, func(first *sqlx.Tx) error {
		id, err := exportSnapshot(ctx, first)
		if err != nil {
			return err
		}
		if _, err := db.Exec(`INSERT INTO rows VALUES (1)`); err != nil {
			return err
		}
		joined, release, err := db.joinSnapshot(ctx, id, time.Second, attackLock)
		if err != nil {
			return err
		}
		defer release()
		if n := countRows(t, joined); n != 0 {
			t.Errorf("the joined transaction sees %d rows, want the exported moment's 0", n)
		}
		if n := countRows(t, first); n != 0 {
			t.Errorf("the exporter sees %d rows, want 0", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, db); n != 1 {
		t.Errorf("afterwards %d rows, want 1", n)
	}
	mustReleaseAll(t, db)
}

// TestAttackJoinAFinishedOrUnknownSnapshot: joining a snapshot whose
// exporter has ended, or one that never was, fails at once and gives its
// connection back.
func TestAttackJoinAFinishedOrUnknownSnapshot(t *testing.T) {
	db := openAttackPostgres(t)
	ctx := context.Background()
	var ended string
	if err := db.Snapshot(ctx, func(tx *sqlx.Tx) error {
		var err error
		ended, err = exportSnapshot(ctx, tx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{ended, "00000003-0000001B-1", "1"} {
		tx, release, err := db.joinSnapshot(ctx, id, time.Second, attackLock)
		if err == nil {
			release()
			t.Errorf("joined snapshot %q that no transaction exports", id)
			continue
		}
		if tx != nil || release != nil || errors.Is(err, errPoolBusy) {
			t.Errorf("joining %q: tx %v, release %v, err %v", id, tx != nil, release != nil, err)
		}
		mustReleaseAll(t, db)
	}
}

// TestAttackSharedSnapshotGivesEveryConnectionBack ends shared snapshots
// every way they end (fn fails, fn succeeds, ctx already ended, ctx ended
// during fn, a refused name): every connection goes back to the pool and
// no session stays in a transaction.
func TestAttackSharedSnapshotGivesEveryConnectionBack(t *testing.T) {
	db := openAttackPostgres(t)
	boom := errors.New("boom")
	if err := db.SharedSnapshot(context.Background(), 4, time.Second, []string{"rows"},
		func(txs []*sqlx.Tx) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("fn's error came back as %v", err)
	}
	mustReleaseAll(t, db)

	if err := db.SharedSnapshot(context.Background(), 8, time.Second, []string{"rows"},
		func(txs []*sqlx.Tx) error {
			if len(txs) != 8 {
				t.Errorf("%d transactions, want 8", len(txs))
			}
			for _, tx := range txs {
				countRows(t, tx)
			}
			return nil
		}); err != nil {
		t.Fatal(err)
	}
	mustReleaseAll(t, db)

	ended, cancel := context.WithCancel(context.Background())
	cancel()
	err := db.SharedSnapshot(ended, 4, time.Second, []string{"rows"},
		func(txs []*sqlx.Tx) error { t.Error("fn ran with an ended ctx"); return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("with an ended ctx: %v, want context.Canceled", err)
	}
	mustReleaseAll(t, db)

	during, cancel := context.WithCancel(context.Background())
	err = db.SharedSnapshot(during, 4, time.Second, []string{"rows"},
		func(txs []*sqlx.Tx) error {
			cancel()
			_, err := txs[len(txs)-1].ExecContext(during, `SELECT pg_sleep(5)`)
			return err
		})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("ended during fn: %v, want context.Canceled", err)
	}
	mustReleaseAll(t, db)

	_, _, err = db.joinSnapshot(context.Background(), "1'; SELECT 1; --", time.Second,
		attackLock)
	if err == nil ||
		!strings.Contains(err.Error(), "not a snapshot name") {
		t.Errorf("a quoted name: %v", err)
	}
	mustReleaseAll(t, db)
}
