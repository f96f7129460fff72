// Package sqldb is knit's one seam between portable SQL and the database
// engine underneath. Every engine difference (placeholders, constraint error
// codes, how a write transaction starts) is decided here and nowhere else.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"
)

// Dialect names a supported database engine.
type Dialect string

// The engines knit runs on.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DB is a database handle that knows its dialect. Queries are written with
// `?` placeholders and rebound for the engine by sqlx.
type DB struct {
	*sqlx.DB
	dialect Dialect
}

// New wraps an open *sql.DB whose driver speaks dialect. driverName is the
// name the connection was opened with (sqlx needs it for rebinding).
func New(db *sql.DB, driverName string, dialect Dialect) *DB {
	return &DB{DB: sqlx.NewDb(db, driverName), dialect: dialect}
}

// Dialect reports the engine behind db.
func (db *DB) Dialect() Dialect { return db.dialect }

// DialectFromDSN tells which engine a --db value names: a postgres:// or
// postgresql:// URL is PostgreSQL, anything else is a SQLite file path.
func DialectFromDSN(dsn string) Dialect {
	lower := strings.ToLower(dsn)
	if strings.HasPrefix(lower, "postgres://") ||
		strings.HasPrefix(lower, "postgresql://") {
		return Postgres
	}
	return SQLite
}

// SQLiteDSN turns a file path into a go-sqlite3 DSN with the settings knit
// relies on: WAL so readers never wait for the writer, synchronous FULL so a
// commit that knit acknowledged survives a power cut, a busy timeout so
// concurrent writers queue instead of failing, foreign keys on, and
// immediate write transactions so two writers never deadlock on upgrade.
func SQLiteDSN(path string) string {
	params := "_journal_mode=WAL&_busy_timeout=10000&_foreign_keys=on" +
		"&_synchronous=FULL&_txlock=immediate"
	if strings.Contains(path, "?") {
		return "file:" + path + "&" + params
	}
	return "file:" + path + "?" + params
}

// WithTx runs fn inside one transaction and commits when fn returns nil.
// Any error, or a panic, rolls the transaction back.
func (db *DB) WithTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer func() { _ = tx.Rollback() }()

	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// CheckWAL verifies that a SQLite database really runs in WAL mode, since
// the pragma silently stays on "delete" for some file systems. It does
// nothing on other engines.
func (db *DB) CheckWAL(ctx context.Context) error {
	if db.dialect != SQLite {
		return nil
	}
	var mode string
	err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode)
	if err != nil {
		return fmt.Errorf("read journal_mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") && !isMemory(db) {
		return fmt.Errorf("sqlite journal_mode is %q, want wal", mode)
	}
	return nil
}

func isMemory(db *DB) bool {
	var file string
	row := db.QueryRow("SELECT file FROM pragma_database_list WHERE name = 'main'")
	if err := row.Scan(&file); err != nil {
		return false
	}
	return file == ""
}

// IsNoRows reports whether err says a query found no row.
func IsNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }
