package resolver

import (
	"context"
	"fmt"
	"sync"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver/sqldb"
)

// statementCache keeps the batch's write statements (the multi-row
// INSERTs of each size and the last-seen UPDATEs) prepared across
// transactions. They are prepared once, before any write transaction, and
// database/sql hands each transaction its connection's copy. On SQLite,
// parsing them in every transaction was 6.7 % of the server's CPU under
// batch load, and is 0.9 % with them kept. Every other query goes to the
// driver as it stands (see writer.direct).
type statementCache struct {
	db     *sqlx.DB
	mu     sync.Mutex
	stmts  map[string]*sqlx.Stmt
	warmed bool
}

func newStatementCache(db *sqlx.DB) *statementCache {
	return &statementCache{db: db, stmts: map[string]*sqlx.Stmt{}}
}

// warm prepares the kept statements the first time it succeeds. It must be
// called outside a write transaction: preparing takes a connection of the
// pool, which a transaction holding the only one would wait for forever.
// A statement that fails to prepare is left to each transaction.
func (c *statementCache) warm(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.warmed {
		return
	}

	c.warmed = true
	for _, query := range keptStatements() {
		if _, ok := c.stmts[query]; ok {
			continue
		}
		s, err := c.db.PreparexContext(ctx, c.db.Rebind(query))
		if err != nil {
			c.warmed = false // tried again by the next batch
			continue
		}
		c.stmts[query] = s
	}
}

// forTx returns query prepared for tx: the kept statement bound to tx, or
// a statement of tx alone.
func (c *statementCache) forTx(ctx context.Context, tx *sqlx.Tx,
	query string) (*sqlx.Stmt, error) {
	c.mu.Lock()
	kept := c.stmts[query]
	c.mu.Unlock()

	if kept == nil {
		return tx.PreparexContext(ctx, tx.Rebind(query))
	}
	return tx.StmtxContext(ctx, kept), nil
}

// keeps reports whether query is one of the statements kept; a nil cache
// keeps none.
func (c *statementCache) keeps(query string) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stmts[query] != nil
}

// size is the number of statements kept.
func (c *statementCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.stmts)
}

// stmt returns the transaction's copy of a kept statement, binding it the
// first time: a batch of messages runs the same few statements many times.
// Only kept statements come here (see direct).
func (w *writer) stmt(ctx context.Context, query string) (*sqlx.Stmt, error) {
	if s, ok := w.stmts[query]; ok {
		return s, nil
	}
	s, err := w.shared.forTx(ctx, w.tx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	if w.stmts == nil {
		w.stmts = map[string]*sqlx.Stmt{}
	}
	w.stmts[query] = s
	return s, nil
}

// direct reports whether query goes to the driver as it stands rather
// than through a statement the writer prepared. On PostgreSQL every query
// does: pgx keeps its own cache of prepared statements per connection, and
// preparing again in every transaction cost a round trip a statement. On
// SQLite every query but the kept statements does: go-sqlite3 keeps the
// writer connection's statements prepared across transactions itself
// (sqldb's stmtCacheSize), where preparing them in each transaction took
// 7 % of the server's CPU under webhook load.
func (w *writer) direct(query string) bool {
	return w.dialect == sqldb.Postgres || !w.shared.keeps(query)
}

// exec runs a statement of the transaction.
func (w *writer) exec(ctx context.Context, query string, args ...any) error {
	if w.direct(query) {
		_, err := w.tx.ExecContext(ctx, w.tx.Rebind(query), args...)
		return err
	}
	s, err := w.stmt(ctx, query)
	if err != nil {
		return err
	}
	_, err = s.ExecContext(ctx, args...)
	return err
}

// get reads one row of the transaction into dest.
func (w *writer) get(ctx context.Context, dest any, query string, args ...any) error {
	if w.direct(query) {
		return w.tx.GetContext(ctx, dest, w.tx.Rebind(query), args...)
	}
	s, err := w.stmt(ctx, query)
	if err != nil {
		return err
	}
	return s.GetContext(ctx, dest, args...)
}

// query runs a query of the transaction.
func (w *writer) query(ctx context.Context, query string, args ...any) (*sqlx.Rows, error) {
	if w.direct(query) {
		return w.tx.QueryxContext(ctx, w.tx.Rebind(query), args...)
	}
	s, err := w.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.QueryxContext(ctx, args...)
}
