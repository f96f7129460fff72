package resolver

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver/sqldb"
)

// stmt returns the transaction's prepared statement for query, preparing it
// the first time: a batch of messages runs the same few statements many
// times, and preparing them anew each time was most of the cost.
func (w *writer) stmt(ctx context.Context, query string) (*sqlx.Stmt, error) {
	if s, ok := w.stmts[query]; ok {
		return s, nil
	}
	s, err := w.tx.PreparexContext(ctx, w.tx.Rebind(query))
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	if w.stmts == nil {
		w.stmts = map[string]*sqlx.Stmt{}
	}
	w.stmts[query] = s
	return s, nil
}

// direct reports whether statements go to the driver unprepared: pgx
// keeps its own cache of prepared statements per connection, and preparing
// again in every transaction cost a round trip a statement.
func (w *writer) direct() bool { return w.dialect == sqldb.Postgres }

// exec runs a statement of the transaction.
func (w *writer) exec(ctx context.Context, query string, args ...any) error {
	if w.direct() {
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
	if w.direct() {
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
	if w.direct() {
		return w.tx.QueryxContext(ctx, w.tx.Rebind(query), args...)
	}
	s, err := w.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.QueryxContext(ctx, args...)
}
