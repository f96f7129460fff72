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
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
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
	// snapshots, when set, is a second pool whose transactions start
	// without taking the write lock (SQLite), for consistent reads.
	snapshots *sqlx.DB
	// checkpoints, when set, copies SQLite's write-ahead log into the
	// database file beside the writer; Close stops it.
	checkpoints *checkpointer
	// log flushes the SQLite file's write-ahead log for SyncCommitted;
	// nil on other engines and in memory.
	log *logSyncer
}

// New wraps an open *sql.DB whose driver speaks dialect. driverName is the
// name the connection was opened with (sqlx needs it for rebinding).
func New(db *sql.DB, driverName string, dialect Dialect) *DB {
	return &DB{DB: sqlx.NewDb(db, driverName), dialect: dialect}
}

// stmtCacheSize is how many statements go-sqlite3 keeps prepared on each
// connection of the writing pool, the most recently used. A write
// transaction runs a few dozen distinct statements, more when the lengths
// of its IN lists vary; preparing them again in each transaction took 7 %
// of the server's CPU under single-message webhooks, and keeping them made
// the ingestion path 10 to 15 % faster in-process; over HTTP, where the
// disk sets the pace, no change stood out of the noise (docs/benchmarks.md,
// fourteenth session).
const stmtCacheSize = 256

// OpenSQLite opens the SQLite file at path with the settings of SQLiteDSN,
// plus a second pool for Snapshot whose transactions begin deferred, so a
// long consistent read never holds the write lock. The "sqlite3" driver must
// be registered by the caller (cmd/ or a test helper imports it).
func OpenSQLite(ctx context.Context, path string) (*DB, error) {
	// The pool that writes keeps up to 32 MB of pages per connection (the
	// default is 2 MB): inserting into the indexes of large tables touched
	// the disk for most rows with the default, and took a third longer. It
	// also keeps the statements it ran prepared (stmtCacheSize).
	writer := sql.OpenDB(newSQLiteConnector(SQLiteDSN(path)+"&_cache_size=-32768"+
		fmt.Sprintf("&_stmt_cache_size=%d", stmtCacheSize),
		fmt.Sprintf("PRAGMA wal_autocheckpoint=%d", walAutoCheckpointPages),
		fmt.Sprintf("PRAGMA journal_size_limit=%d", walSizeLimitBytes)))
	reader, err := sql.Open("sqlite3",
		strings.Replace(SQLiteDSN(path), "_txlock=immediate", "_txlock=deferred", 1))
	if err != nil {
		_ = writer.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}

	db := New(writer, "sqlite3", SQLite)
	db.snapshots = sqlx.NewDb(reader, "sqlite3")
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	walPath, err := logPath(ctx, db)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if walPath != "" {
		db.log = newLogSyncer(walPath)
	}
	db.checkpoints = startCheckpointer(reader, backgroundCheckpointEvery)
	return db, nil
}

// Close closes both pools.
func (db *DB) Close() error {
	if db.checkpoints != nil {
		db.checkpoints.stop()
	}
	var snapshotErr error
	if db.snapshots != nil {
		snapshotErr = db.snapshots.Close()
	}
	return errors.Join(db.DB.Close(), snapshotErr)
}

// Snapshot runs fn in a read-only transaction: every query fn makes sees
// the database as it was at the first one, whatever commits meanwhile.
func (db *DB) Snapshot(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	pool := db.DB
	if db.snapshots != nil {
		pool = db.snapshots
	}
	tx, err := pool.BeginTxx(ctx, &sql.TxOptions{
		ReadOnly: true, Isolation: sql.LevelRepeatableRead,
	})
	if err != nil {
		return fmt.Errorf("begin snapshot: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	return fn(tx)
}

// SharedSnapshot runs fn with up to n read-only transactions, each on a
// connection of its own, that all see the database at one moment, so that
// fn can read tables in parallel as if in one Snapshot transaction. fn
// may read only tables (each locked in every transaction first). The
// first transaction is begun as Snapshot begins one and waits for its
// locks as any query would; each other one is taken only if the pool
// gives a connection within wait and its locks are granted at once. So
// no transaction of fn ever waits for a lock, or a connection, that
// another of them is in the way of: fn may get fewer than n, and always
// gets one. On SQLite fn always gets one.
//
// Why the locks: were a second transaction to wait for a table behind a
// request for an exclusive lock (a new partition of events), which waits
// for the first transaction, which fn keeps open until the second is
// done, the three would wait for ever, and PostgreSQL would not see it.
// pg_dump's parallel workers take their locks the same way.
//
// On PostgreSQL the first transaction exports its snapshot
// (pg_export_snapshot) and the others import it (SET TRANSACTION
// SNAPSHOT) before fn runs.
func (db *DB) SharedSnapshot(ctx context.Context, n int, wait time.Duration,
	tables []string, fn func(txs []*sqlx.Tx) error) error {
	return db.Snapshot(ctx, func(first *sqlx.Tx) error {
		if db.dialect != Postgres || n <= 1 {
			return fn([]*sqlx.Tx{first})
		}
		lock, err := lockStatement(tables)
		if err != nil {
			return err
		}
		if _, err := first.ExecContext(ctx, lock); err != nil {
			return fmt.Errorf("lock the tables read: %w", err)
		}
		id, err := exportSnapshot(ctx, first)
		if err != nil {
			return err
		}

		txs := []*sqlx.Tx{first}
		for len(txs) < n {
			tx, release, err := db.joinSnapshot(ctx, id, wait, lock+" NOWAIT")
			if errors.Is(err, errPoolBusy) || errors.Is(err, errLockBusy) {
				break
			}
			if err != nil {
				return err
			}
			defer release()
			txs = append(txs, tx)
		}
		return fn(txs)
	})
}

// lockStatement locks tables for reading; each name must be a plain
// lower-case identifier.
func lockStatement(tables []string) (string, error) {
	if len(tables) == 0 {
		return "", errors.New("lock the tables read: no table named")
	}
	for _, name := range tables {
		if name == "" || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz_0123456789") != "" {
			return "", fmt.Errorf("lock the tables read: %q is not a table name", name)
		}
	}
	return "LOCK TABLE " + strings.Join(tables, ", ") + " IN ACCESS SHARE MODE", nil
}

// errLockBusy says a lock was not granted at once.
var errLockBusy = errors.New("lock not granted at once")

// errPoolBusy says the pool gave no connection within the wait.
var errPoolBusy = errors.New("no connection free")

// exportSnapshot names tx's snapshot for joinSnapshot.
func exportSnapshot(ctx context.Context, tx *sqlx.Tx) (string, error) {
	var id string
	if err := tx.GetContext(ctx, &id, "SELECT pg_export_snapshot()"); err != nil {
		return "", fmt.Errorf("export snapshot: %w", err)
	}
	if !isSnapshotName(id) {
		return "", fmt.Errorf("export snapshot: unexpected snapshot name %q", id)
	}
	return id, nil
}

// isSnapshotName holds for text of the form of PostgreSQL's snapshot
// names, hexadecimal numbers joined by dashes (00000003-0000001B-1): SET
// TRANSACTION SNAPSHOT takes the name as a literal, not a parameter.
func isSnapshotName(id string) bool {
	if id == "" || id[0] == '-' || id[len(id)-1] == '-' {
		return false
	}
	for _, r := range id {
		hex := r >= '0' && r <= '9' || r >= 'A' && r <= 'F' || r >= 'a' && r <= 'f'
		if !hex && r != '-' {
			return false
		}
	}
	return true
}

// joinSnapshot begins a read-only transaction that sees the snapshot id
// and runs lock in it, on a connection the pool gives within wait
// (errPoolBusy if it gives none; errLockBusy if lock, a NOWAIT lock, is
// not granted). release ends the transaction and returns the connection.
func (db *DB) joinSnapshot(ctx context.Context, id string, wait time.Duration,
	lock string) (tx *sqlx.Tx, release func(), err error) {
	if !isSnapshotName(id) {
		return nil, nil, fmt.Errorf("join snapshot: %q is not a snapshot name", id)
	}
	waitCtx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	conn, err := db.Connx(waitCtx)
	if err != nil {
		if ctx.Err() == nil && waitCtx.Err() != nil {
			return nil, nil, errPoolBusy
		}
		return nil, nil, fmt.Errorf("join snapshot: %w", err)
	}

	tx, err = conn.BeginTxx(ctx, &sql.TxOptions{
		ReadOnly: true, Isolation: sql.LevelRepeatableRead,
	})
	if err != nil {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("join snapshot: %w", err)
	}
	release = func() {
		_ = tx.Rollback()
		_ = conn.Close()
	}
	if _, err := tx.ExecContext(ctx, "SET TRANSACTION SNAPSHOT '"+id+"'"); err != nil {
		release()
		return nil, nil, fmt.Errorf("join snapshot %s: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, lock); err != nil {
		release()
		if isLockNotAvailable(err) {
			return nil, nil, errLockBusy
		}
		return nil, nil, fmt.Errorf("join snapshot %s: lock the tables read: %w", id, err)
	}
	return tx, release, nil
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
// commit that knit acknowledged survives a power cut (WithWriteTxSyncLater
// alone defers the sync, to SyncCommitted), a busy timeout so
// concurrent writers queue instead of failing, foreign keys on, and
// immediate write transactions so two writers never deadlock on upgrade.
//
// Each connection also runs without SQLite's own mutex (_mutex=no):
// database/sql hands a connection to one goroutine at a time, so the lock
// SQLite takes on every call guarded nothing. Without it, 100-message
// batches stored 1 to 4 % more events a second in three interleaved pairs
// (docs/benchmarks.md, twenty-first session).
func SQLiteDSN(path string) string {
	params := "_journal_mode=WAL&_busy_timeout=10000&_foreign_keys=on" +
		"&_synchronous=FULL&_txlock=immediate&_mutex=no"
	if strings.Contains(path, "?") {
		return "file:" + path + "&" + params
	}
	return "file:" + path + "?" + params
}

// writeLockKey is the PostgreSQL advisory lock that WithWriteTx takes: one
// number for the whole database, chosen once ("knit" in ASCII).
const writeLockKey = 0x6b6e6974

// WithWriteTx is WithTx for writes that must not interleave with other
// writers anywhere: identity resolution, unlink and erase read the graph
// and change it. On SQLite the database has one writer at a time already;
// on PostgreSQL the transaction first takes an advisory lock, so several
// processes over one database take turns as one process's writes do.
//
// On PostgreSQL the transaction also plans each statement for the
// arguments and table sizes at hand (plan_cache_mode force_custom_plan):
// pgx keeps the writer's statements prepared, and a generic plan settled
// on while the tables were small (autovacuum off never replans it) reads a
// whole table where a growing one needs an index. It compiles no
// statement to machine code (jit off): without statistics the planner
// overrates the writer's statements, and compiling them took half of the
// server's time while a million profiles were seeded.
func (db *DB) WithWriteTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	return db.WithTx(ctx, func(tx *sqlx.Tx) error {
		if db.dialect == Postgres {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1),
				set_config('plan_cache_mode', 'force_custom_plan', true),
				set_config('jit', 'off', true)`,
				writeLockKey); err != nil {
				return fmt.Errorf("take the write lock: %w", err)
			}
		}
		return fn(tx)
	})
}

// WithTx runs fn inside one transaction and commits when fn returns nil.
// Any error, or a panic, rolls the transaction back.
func (db *DB) WithTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	return commitAfter(tx, fn)
}

// commitAfter runs fn in tx and commits when fn returns nil. Any error, or
// a panic, rolls tx back.
func commitAfter(tx *sqlx.Tx, fn func(tx *sqlx.Tx) error) error {
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

// OpenPostgres opens the PostgreSQL database at url (postgres://...) with
// the pgx driver. Snapshot reads run as repeatable-read transactions on
// the same pool.
//
// Its sessions compile no query to machine code (jit off) where no one
// chose a jit setting: see jitOffByDefault.
func OpenPostgres(ctx context.Context, url string) (*DB, error) {
	config, err := pgx.ParseConfig(lowerScheme(url))
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	pool := stdlib.OpenDB(*config, stdlib.OptionAfterConnect(jitOffByDefault))
	pool.SetMaxOpenConns(20)
	pool.SetMaxIdleConns(10)
	db := New(pool, "pgx", Postgres)
	if err := db.PingContext(ctx); err != nil {
		_ = pool.Close()
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	return db, nil
}

// lowerScheme writes the scheme of a URL DialectFromDSN calls PostgreSQL
// in lower case (POSTGRES://, as a user may type it), which is the only
// case pgx reads as a URL rather than as a list of key=value settings.
func lowerScheme(url string) string {
	scheme, rest, found := strings.Cut(url, "://")
	if !found || DialectFromDSN(url) != Postgres {
		return url
	}
	return strings.ToLower(scheme) + "://" + rest
}

// jitOffSQL turns jit off for the session when it still has PostgreSQL's
// built-in default: a value from the URL (jit=on, or options=-c jit=on),
// PGOPTIONS, ALTER ROLE or DATABASE ... SET, or the server's configuration
// file stays as chosen.
const jitOffSQL = `SELECT set_config(name, 'off', false)
	FROM pg_settings WHERE name = 'jit' AND source = 'default'`

// jitOffByDefault runs jitOffSQL on each new connection. knit's reads are
// index probes and its audience runs measured faster without JIT, but a
// table without statistics (autovacuum off, or a bulk load it has not
// caught up with) makes the planner overrate a probe: at a million
// profiles the Profile API's 0.25 ms lookup of an event page's
// identifiers took 99 ms, nearly all compiling. A SET after connecting
// rather than a startup parameter, which connection poolers such as
// PgBouncer refuse by default.
func jitOffByDefault(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, jitOffSQL); err != nil {
		return fmt.Errorf("turn jit off: %w", err)
	}
	return nil
}

// audienceLockClass is the first key of the advisory locks WithNamedLock
// takes; two-key advisory locks never collide with WithWriteTx's one key.
const audienceLockClass = 0x6b6e

// TryNamedLock runs fn holding the lock called name when no one holds it,
// and reports whether it did. On SQLite it always runs fn.
func (db *DB) TryNamedLock(ctx context.Context, name string, fn func() error) (bool, error) {
	if db.dialect != Postgres {
		return true, fn()
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return false, fmt.Errorf("lock %s: %w", name, err)
	}
	defer conn.Close()

	var taken bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1, hashtext($2))",
		audienceLockClass, name).Scan(&taken); err != nil || !taken {
		return false, err
	}
	defer func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx),
			"SELECT pg_advisory_unlock($1, hashtext($2))", audienceLockClass, name)
	}()
	return true, fn()
}

// WithNamedLock runs fn while holding the lock called name, so that work
// with one name never overlaps anywhere: on PostgreSQL across processes,
// through a session advisory lock on a connection of its own, waited for
// until ctx ends. On SQLite it runs fn at once: one process serves a file,
// and callers keep their own in-process locks.
func (db *DB) WithNamedLock(ctx context.Context, name string, fn func() error) error {
	if db.dialect != Postgres {
		return fn()
	}
	// A free lock is taken even when ctx has ended, as an in-process lock
	// would be; only waiting for a held one ends with ctx.
	quick := context.WithoutCancel(ctx)
	conn, err := db.Conn(quick)
	if err != nil {
		return fmt.Errorf("lock %s: %w", name, err)
	}
	defer conn.Close()

	var taken bool
	if err := conn.QueryRowContext(quick, "SELECT pg_try_advisory_lock($1, hashtext($2))",
		audienceLockClass, name).Scan(&taken); err != nil {
		return fmt.Errorf("lock %s: %w", name, err)
	}
	if !taken {
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1, hashtext($2))",
			audienceLockClass, name); err != nil {
			return fmt.Errorf("lock %s: %w", name, err)
		}
	}
	defer func() {
		// A lock left on a broken connection ends with the connection.
		_, _ = conn.ExecContext(context.WithoutCancel(ctx),
			"SELECT pg_advisory_unlock($1, hashtext($2))", audienceLockClass, name)
	}()
	return fn()
}
