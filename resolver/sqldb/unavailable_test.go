package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// mustSQLiteFile makes a SQLite file holding table t (a text column)
// and returns its path; the file is closed again.
func mustSQLiteFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "faults.db")
	db, err := sqldb.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE t (v TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustOpenSQLite(t *testing.T, path string) *sqldb.DB {
	t.Helper()
	db, err := sqldb.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestSQLiteFaultsAreUnavailable(t *testing.T) {
	ctx := context.Background()
	insert := func(db *sqldb.DB, value string) error {
		return db.WithWriteTx(ctx, func(tx *sqlx.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO t (v) VALUES (?)`, value)
			return err
		})
	}

	t.Run("read-only file", func(t *testing.T) {
		db := mustOpenSQLite(t, mustSQLiteFile(t)+"?mode=ro")
		mustBeUnavailable(t, insert(db, "x"))
	})

	t.Run("disk full", func(t *testing.T) {
		db := mustOpenSQLite(t, mustSQLiteFile(t))
		// PRAGMA max_page_count holds for its connection only: keep one.
		db.SetMaxOpenConns(1)
		var pages int
		if err := db.Get(&pages, `PRAGMA page_count`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)); err != nil {
			t.Fatal(err)
		}
		mustBeUnavailable(t, insert(db, strings.Repeat("x", 64*1024)))
	})

	t.Run("locked by another writer past the busy timeout", func(t *testing.T) {
		path := mustSQLiteFile(t)
		holder := mustOpenSQLite(t, path)
		// The first _busy_timeout in the DSN wins: wait 50 ms, not 10 s.
		waiter := mustOpenSQLite(t, path+"?_busy_timeout=50")
		tx, err := holder.BeginTxx(ctx, nil) // immediate: takes the write lock
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback() }()
		if _, err := tx.Exec(`INSERT INTO t (v) VALUES ('held')`); err != nil {
			t.Fatal(err)
		}
		mustBeUnavailable(t, insert(waiter, "x"))
	})

	t.Run("cannot open", func(t *testing.T) {
		_, err := sqldb.OpenSQLite(ctx, filepath.Join(t.TempDir(), "no-dir", "knit.db"))
		mustBeUnavailable(t, err)
	})

	t.Run("mistakes of the request are not", func(t *testing.T) {
		db := mustOpenSQLite(t, mustSQLiteFile(t))
		if err := insert(db, "once"); err != nil {
			t.Fatal(err)
		}
		var v string
		for name, err := range map[string]error{
			"unique constraint": insert(db, "once"),
			"syntax":            db.WithTx(ctx, execFn(`INSERT INTO`)),
			"no such table":     db.WithTx(ctx, execFn(`SELECT * FROM nope`)),
			"no rows":           db.Get(&v, `SELECT v FROM t WHERE v = 'none'`),
		} {
			mustBeAvailable(t, name, err)
		}
	})
}

func TestOtherErrorsAreNotUnavailable(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for name, err := range map[string]error{
		"nil":       nil,
		"plain":     errors.New("boom"),
		"no rows":   fmt.Errorf("wrapped: %w", sql.ErrNoRows),
		"cancelled": ctx.Err(),
	} {
		mustBeAvailable(t, name, err)
	}
}

// TestPostgresStatesAreClassified pins the SQLSTATEs knit answers with 503
// (the live tests below produce some of them for real).
func TestPostgresStatesAreClassified(t *testing.T) {
	unavailable := []string{"08006", "08001", "25006", "40001", "40P01", "53000", "53100",
		"53200", "53300", "57014", "57P01", "57P02", "57P03", "58030"}
	available := []string{"23505", "23503", "42601", "42P01", "22P02", "P0001"}
	for _, code := range unavailable {
		err := fmt.Errorf("query: %w", &pgconn.PgError{Code: code})
		if !sqldb.Unavailable(err) {
			t.Errorf("SQLSTATE %s is not unavailable", code)
		}
	}
	for _, code := range available {
		mustBeAvailable(t, "SQLSTATE "+code, &pgconn.PgError{Code: code})
	}
}

func TestPostgresRefusingConnectionsIsUnavailable(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := listener.Addr().String()
	listener.Close() // nothing listens there now
	_, err = sqldb.OpenPostgres(context.Background(),
		"postgres://knit@"+addr+"/knit?sslmode=disable&connect_timeout=2")
	mustBeUnavailable(t, err)
}

func TestPostgresReadOnlyAndDeadlockAreUnavailable(t *testing.T) {
	db := sqltest.MustOpenPostgres(t)
	ctx := context.Background()
	if _, err := db.Exec(`CREATE TABLE t (v TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO t VALUES ('a'), ('b')`); err != nil {
		t.Fatal(err)
	}

	readOnly := db.WithTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.Exec(`SET TRANSACTION READ ONLY`); err != nil {
			return err
		}
		_, err := tx.Exec(`INSERT INTO t VALUES ('c')`)
		return err
	})
	mustBeUnavailable(t, readOnly)
	mustBeUnavailable(t, mustDeadlock(t, db))
	mustBeAvailable(t, "unique violation", db.WithTx(ctx, execFn(`INSERT INTO t VALUES ('a')`)))
}

// mustDeadlock has two transactions lock rows a and b in opposite orders
// and returns the error of the one PostgreSQL chose to end.
func mustDeadlock(t *testing.T, db *sqldb.DB) error {
	t.Helper()
	ctx := context.Background()
	first, err := db.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = first.Rollback() }()
	second, err := db.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = second.Rollback() }()

	lock := `UPDATE t SET v = v WHERE v = $1`
	if _, err := first.Exec(lock, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := second.Exec(lock, "b"); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 1)
	go func() {
		_, err := first.Exec(lock, "b") // waits for second
		errs <- err
	}()
	_, secondErr := second.Exec(lock, "a") // closes the cycle
	if secondErr != nil {
		_ = second.Rollback() // frees b for first
		<-errs
		return secondErr
	}
	return <-errs
}

func execFn(query string) func(tx *sqlx.Tx) error {
	return func(tx *sqlx.Tx) error {
		_, err := tx.Exec(query)
		return err
	}
}

func mustBeUnavailable(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("no error, want one the database is unavailable for")
	}
	t.Logf("unavailable: %v", err)
	if !sqldb.Unavailable(err) {
		t.Errorf("Unavailable(%v) = false, want true", err)
	}
}

func mustBeAvailable(t *testing.T, name string, err error) {
	t.Helper()
	if sqldb.Unavailable(err) {
		t.Errorf("%s: Unavailable(%v) = true, want false", name, err)
	}
}
