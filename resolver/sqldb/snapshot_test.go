package sqldb_test

import (
	"context"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

func countProfiles(t *testing.T, q sqlx.QueryerContext) int {
	t.Helper()
	var n int
	if err := sqlx.GetContext(context.Background(), q, &n,
		`SELECT COUNT(*) FROM profiles`); err != nil {
		t.Fatal(err)
	}
	return n
}

func addProfile(t *testing.T, db *sqldb.DB, id int) {
	t.Helper()
	if _, err := db.Exec(db.Rebind(`INSERT INTO profiles (id, created_ms, updated_ms)
		VALUES (?, 0, 0)`), id); err != nil {
		t.Fatal(err)
	}
}

// TestSharedSnapshotSeesOneMoment commits a row while three transactions
// of one shared snapshot are open: none of them sees it, each runs on a
// connection of its own, and afterwards the row is there.
func TestSharedSnapshotSeesOneMoment(t *testing.T) {
	db := sqltest.MustOpenPostgres(t)
	addProfile(t, db, 1)

	err := db.SharedSnapshot(context.Background(), 3, time.Minute, []string{"profiles"},
		func(txs []*sqlx.Tx) error {
			if len(txs) != 3 {
				t.Fatalf("got %d transactions, want 3", len(txs))
			}
			addProfile(t, db, 2) // committed after the snapshot
			backends := map[int]bool{}
			for i, tx := range txs {
				if n := countProfiles(t, tx); n != 1 {
					t.Errorf("transaction %d sees %d profiles, want the snapshot's 1", i, n)
				}
				var pid int
				if err := tx.Get(&pid, `SELECT pg_backend_pid()`); err != nil {
					t.Fatal(err)
				}
				backends[pid] = true
			}
			if len(backends) != 3 {
				t.Errorf("the transactions ran on %d connections, want 3", len(backends))
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if n := countProfiles(t, db); n != 2 {
		t.Errorf("afterwards %d profiles, want 2", n)
	}
}

// TestSharedSnapshotTakesWhatThePoolGives runs with a pool of one
// connection, which the first transaction holds: the others are given up
// after the wait instead of waiting for ever, and fn runs with one.
func TestSharedSnapshotTakesWhatThePoolGives(t *testing.T) {
	db := sqltest.MustOpenPostgres(t)
	db.SetMaxOpenConns(1)
	addProfile(t, db, 1)

	ran := false
	err := db.SharedSnapshot(context.Background(), 3, 50*time.Millisecond, []string{"profiles"},
		func(txs []*sqlx.Tx) error {
			ran = true
			if len(txs) != 1 {
				t.Errorf("got %d transactions from a pool of one, want 1", len(txs))
			}
			if n := countProfiles(t, txs[0]); n != 1 {
				t.Errorf("sees %d profiles, want 1", n)
			}
			return nil
		})
	if err != nil || !ran {
		t.Fatalf("ran %v, error %v", ran, err)
	}
}

// TestSharedSnapshotIsOneTransactionOnSQLite asks for three on SQLite,
// which has no snapshot to share: fn gets one.
func TestSharedSnapshotIsOneTransactionOnSQLite(t *testing.T) {
	db := sqltest.MustOpenSQLite(t)
	err := db.SharedSnapshot(context.Background(), 3, time.Minute, []string{"profiles"},
		func(txs []*sqlx.Tx) error {
			if len(txs) != 1 {
				t.Errorf("got %d transactions, want 1", len(txs))
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
}
