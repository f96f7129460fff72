package audiences

import (
	"context"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"
)

// rowsPerInsert is how many rows one INSERT of a batchInsert holds: few
// enough that nine columns stay far under SQLite's 32,766 parameters, many
// enough that a million-member result takes two thousand round trips
// instead of a million.
const rowsPerInsert = 500

// batchInsert writes rows into one table in multi-row INSERTs, within tx.
// Rows wait in memory until rowsPerInsert of them are ready or flush is
// called; nothing is written until then.
type batchInsert struct {
	tx      *sqlx.Tx
	table   string
	columns []string
	suffix  string // what follows the VALUES, such as ON CONFLICT DO NOTHING
	args    []any
	rows    int
}

func newBatchInsert(tx *sqlx.Tx, table string, columns []string, suffix string) *batchInsert {
	return &batchInsert{tx: tx, table: table, columns: columns, suffix: suffix}
}

// add queues one row, whose values follow the columns' order, and writes
// the queued rows once there are rowsPerInsert of them.
func (b *batchInsert) add(ctx context.Context, values ...any) error {
	if len(values) != len(b.columns) {
		return fmt.Errorf("insert into %s: %d values for %d columns",
			b.table, len(values), len(b.columns))
	}
	b.args = append(b.args, values...)
	b.rows++
	if b.rows < rowsPerInsert {
		return nil
	}
	return b.flush(ctx)
}

// flush writes the queued rows, if any.
func (b *batchInsert) flush(ctx context.Context) error {
	if b.rows == 0 {
		return nil
	}
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(b.columns)), ", ") + ")"
	query := "INSERT INTO " + b.table + " (" + strings.Join(b.columns, ", ") + ") VALUES " +
		strings.TrimSuffix(strings.Repeat(row+", ", b.rows), ", ") + " " + b.suffix
	if _, err := b.tx.ExecContext(ctx, b.tx.Rebind(query), b.args...); err != nil {
		return fmt.Errorf("insert %d rows into %s: %w", b.rows, b.table, err)
	}
	b.args, b.rows = b.args[:0], 0
	return nil
}
