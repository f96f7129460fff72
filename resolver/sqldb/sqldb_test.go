package sqldb_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

func TestSQLiteOpensWithWALForeignKeysAndFullSync(t *testing.T) {
	db := sqltest.MustOpenSQLite(t)
	ctx := context.Background()

	for _, tc := range []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"synchronous", "2"}, // FULL
		{"wal_autocheckpoint", "16000"},
		{"journal_size_limit", "134217728"},
	} {
		var got string
		if err := db.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("PRAGMA %s = %s, want %s", tc.pragma, got, tc.want)
		}
	}
}

func TestDialectFromDSN(t *testing.T) {
	cases := map[string]sqldb.Dialect{
		"knit.db":                       sqldb.SQLite,
		"/var/lib/knit/knit.db":         sqldb.SQLite,
		"postgres://u@localhost/knit":   sqldb.Postgres,
		"POSTGRESQL://u@localhost/knit": sqldb.Postgres,
	}
	for dsn, want := range cases {
		if got := sqldb.DialectFromDSN(dsn); got != want {
			t.Errorf("DialectFromDSN(%q) = %s, want %s", dsn, got, want)
		}
	}
}

func TestWithTxRollsBackOnError(t *testing.T) {
	db := sqltest.MustOpen(t)
	ctx := context.Background()
	errBoom := errors.New("boom")

	err := db.WithTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.Exec(`INSERT INTO settings (key, value) VALUES ('k', 'v')`); err != nil {
			return err
		}
		return errBoom
	})
	if err != errBoom {
		t.Fatalf("WithTx returned %v, want the callback's error", err)
	}
	var n int
	if err := db.Get(&n, `SELECT COUNT(*) FROM settings`); err != nil || n != 0 {
		t.Errorf("%d rows after rollback (err %v), want 0", n, err)
	}
}

func TestSnapshotSeesOneMomentAndDoesNotBlockWriters(t *testing.T) {
	db := sqltest.MustOpen(t)
	ctx := context.Background()
	count := func(q sqlx.QueryerContext) int {
		var n int
		if err := sqlx.GetContext(ctx, q, &n, `SELECT COUNT(*) FROM settings`); err != nil {
			t.Fatal(err)
		}
		return n
	}

	err := db.Snapshot(ctx, func(tx *sqlx.Tx) error {
		before := count(tx)
		// A write commits while the snapshot is open, without waiting for it.
		if _, err := db.ExecContext(ctx,
			`INSERT INTO settings (key, value) VALUES ('k', 'v')`); err != nil {
			return err
		}
		if after := count(tx); after != before {
			t.Errorf("snapshot saw %d rows, then %d", before, after)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := count(db); n != 1 {
		t.Errorf("after the snapshot %d rows, want 1", n)
	}
}

func TestWriteTransactionsTakeTurnsAcrossPoolsOnPostgres(t *testing.T) {
	pools := sqltest.MustOpenPostgresPools(t, 2)
	ctx := context.Background()

	firstIn, firstDone := make(chan struct{}), make(chan struct{})
	var firstFinished atomic.Bool
	go func() {
		defer close(firstDone)
		_ = pools[0].WithWriteTx(ctx, func(tx *sqlx.Tx) error {
			close(firstIn)
			time.Sleep(300 * time.Millisecond) // long enough for the second to queue
			firstFinished.Store(true)
			return nil
		})
	}()

	<-firstIn
	var sawFirstFinished bool
	err := pools[1].WithWriteTx(ctx, func(tx *sqlx.Tx) error {
		sawFirstFinished = firstFinished.Load()
		return nil
	})
	<-firstDone
	if err != nil {
		t.Fatal(err)
	}
	if !sawFirstFinished {
		t.Error("a write transaction on another pool ran while the first held the lock")
	}
}

func TestNamedLocksKeepOneNameFromOverlappingAcrossPools(t *testing.T) {
	pools := sqltest.MustOpenPostgresPools(t, 2)
	ctx := context.Background()

	firstIn, firstDone := make(chan struct{}), make(chan struct{})
	otherDone := make(chan struct{})
	var firstFinished atomic.Bool
	go func() {
		defer close(firstDone)
		_ = pools[0].WithNamedLock(ctx, "audience:carts", func() error {
			close(firstIn)
			<-otherDone                        // held until another name has run
			time.Sleep(300 * time.Millisecond) // long enough for the same name to queue
			firstFinished.Store(true)
			return nil
		})
	}()
	<-firstIn

	// Another name is not held up (the first lock is released only after
	// it ran, so waiting would time out); the same name waits.
	other, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err := pools[1].WithNamedLock(other, "audience:shoes", func() error { return nil })
	close(otherDone)
	if err != nil {
		t.Fatalf("another name waited for the first lock: %v", err)
	}
	var sawFirstFinished bool
	if err := pools[1].WithNamedLock(ctx, "audience:carts", func() error {
		sawFirstFinished = firstFinished.Load()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	<-firstDone
	if !sawFirstFinished {
		t.Error("the same name ran on another pool while the first held it")
	}
}

// A write transaction on PostgreSQL plans each statement for the tables as
// they are, not with a generic plan cached while they were small, and
// compiles none to machine code; other transactions keep the server's
// settings.
func TestWriteTransactionsPlanForTheTablesAsTheyAreOnPostgres(t *testing.T) {
	db := sqltest.MustOpenPostgres(t)
	ctx := context.Background()
	mode := func(tx *sqlx.Tx) string {
		var got string
		err := tx.GetContext(ctx, &got, `SELECT current_setting('plan_cache_mode')
			|| ' jit ' || current_setting('jit')`)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	var inWrite, inOther string
	if err := db.WithWriteTx(ctx, func(tx *sqlx.Tx) error {
		inWrite = mode(tx)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.WithTx(ctx, func(tx *sqlx.Tx) error {
		inOther = mode(tx)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var server string
	if err := db.GetContext(ctx, &server, `SELECT current_setting('jit')`); err != nil {
		t.Fatal(err)
	}
	if want := "force_custom_plan jit off"; inWrite != want {
		t.Errorf("a write transaction runs with %q, want %q", inWrite, want)
	}
	if want := "auto jit " + server; inOther != want {
		t.Errorf("another transaction runs with %q, want %q", inOther, want)
	}
}

// knit's PostgreSQL sessions compile nothing to machine code unless the
// URL asks for it: every connection of the pool, snapshots included.
func TestPostgresSessionsRunWithoutJITUnlessTheURLSetsIt(t *testing.T) {
	db := sqltest.MustOpenPostgres(t)
	ctx := context.Background()

	if jit := showJIT(ctx, t, db.DB); jit != "off" {
		t.Errorf("a pool's session has jit %q, want off", jit)
	}
	err := db.Snapshot(ctx, func(tx *sqlx.Tx) error {
		var jit string
		if err := tx.GetContext(ctx, &jit, "SHOW jit"); err != nil {
			return err
		}
		if jit != "off" {
			t.Errorf("a snapshot has jit %q, want off", jit)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	server := os.Getenv(sqltest.PostgresEnv)
	separator := "?"
	if strings.Contains(server, "?") {
		separator = "&"
	}
	asked, err := sqldb.OpenPostgres(ctx, server+separator+"jit=on")
	if err != nil {
		t.Fatal(err)
	}
	defer asked.Close()
	if jit := showJIT(ctx, t, asked.DB); jit != "on" {
		t.Errorf("with jit=on in the URL the session has jit %q", jit)
	}
}

func showJIT(ctx context.Context, t *testing.T, db *sqlx.DB) string {
	t.Helper()
	var jit string
	if err := db.GetContext(ctx, &jit, "SHOW jit"); err != nil {
		t.Fatal(err)
	}
	return jit
}
