package sqldb

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mattn/go-sqlite3"
)

// Unavailable reports whether err says the database cannot do the work now
// but may later, without anything changing in knit or in the request: the
// server is down, restarting, out of connections, disk or memory, read-only,
// or a lock was held past the busy timeout. The HTTP edge answers such
// errors 503 with Retry-After, so senders retry instead of losing data.
// Errors of the request itself (constraints, syntax, no rows) and the
// caller's own cancellation are not unavailability.
func Unavailable(err error) bool {
	if err == nil || errors.Is(err, sql.ErrNoRows) {
		return false
	}
	var sqliteErr sqlite3.Error
	if errors.As(err, &sqliteErr) {
		return sqliteUnavailable(sqliteErr.Code)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return postgresUnavailable(pgErr.Code)
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true // knit cannot reach the server, or it refuses sessions
	}
	return connectionLost(err)
}

// sqliteUnavailable: the file is locked by another writer past the busy
// timeout, full, read-only, cannot be opened, or the disk failed.
func sqliteUnavailable(code sqlite3.ErrNo) bool {
	switch code {
	case sqlite3.ErrBusy, sqlite3.ErrLocked, sqlite3.ErrFull, sqlite3.ErrReadonly,
		sqlite3.ErrCantOpen, sqlite3.ErrIoErr:
		return true
	}
	return false
}

// postgresUnavailable reads a SQLSTATE: connection exceptions (class 08),
// insufficient resources (class 53: disk full, out of memory, too many
// connections), operator intervention (57P01 admin shutdown, 57P02 crash
// shutdown, 57P03 cannot connect now, 57014 statement timeout), system
// errors (class 58: I/O), a read-only transaction (25006), and
// serialization failures and deadlocks (40001, 40P01).
func postgresUnavailable(state string) bool {
	switch state {
	case "25006", "40001", "40P01", "57014", "57P01", "57P02", "57P03":
		return true
	}
	for _, class := range []string{"08", "53", "58"} {
		if strings.HasPrefix(state, class) {
			return true
		}
	}
	return false
}

// connectionLost reports a connection that broke under a query: refused,
// reset, closed or cut short.
func connectionLost(err error) bool {
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) {
		return true
	}
	var netErr *net.OpError
	return errors.As(err, &netErr)
}

// isLockNotAvailable holds for PostgreSQL's refusal of a NOWAIT lock
// that was not free at once (SQLSTATE 55P03).
func isLockNotAvailable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03"
}
