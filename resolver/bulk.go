package resolver

import (
	"context"
	"fmt"
	"strings"
)

// bulkTable is a table whose rows a batch writes together: the columns of
// its INSERT, and what follows the VALUES (such as ON CONFLICT DO NOTHING).
type bulkTable struct {
	name    string
	columns []string
	suffix  string
}

// The tables whose rows Ingest writes in multi-row INSERTs at the end of
// the batch rather than one statement a row. Nothing in the batch reads
// them back before then, except what flushes first (an erase).
var (
	bulkEvents = bulkTable{name: "events", columns: []string{"message_id", "source",
		"type", "event", "user_id", "anonymous_id", "profile_id", "ts_ms", "received_ms",
		"app", "device_type", "device_id", "properties", "raw"}}
	bulkLinks = bulkTable{name: "identity_links",
		columns: []string{"message_id", "type", "value"}, suffix: "ON CONFLICT DO NOTHING"}
	bulkDecisions = bulkTable{name: "identity_decisions", columns: []string{"profile_id",
		"kind", "message_id", "identifier", "other_profile_id", "rule", "detail",
		"event_ms", "at_ms"}}
)

// eventProfileColumn is where an event row holds its profile id.
const eventProfileColumn = 6

// maxBulkArgs keeps one INSERT under the engines' limits on parameters
// (SQLite 32,766; PostgreSQL 65,535).
const maxBulkArgs = 30000

// bulkRows holds the rows waiting to be written, per table, in the order
// they came.
type bulkRows struct {
	order  []*bulkTable
	rows   map[*bulkTable][][]any
	stored map[string]bool // message ids whose events wait here
}

func newBulkRows() *bulkRows {
	return &bulkRows{rows: map[*bulkTable][][]any{}, stored: map[string]bool{}}
}

// write adds a row to table: to the batch when the writer collects one, or
// straight to the database otherwise.
func (w *writer) write(ctx context.Context, table *bulkTable, args ...any) error {
	if w.bulk == nil {
		return w.exec(ctx, insertSQL(table, 1), args...)
	}
	if _, seen := w.bulk.rows[table]; !seen {
		w.bulk.order = append(w.bulk.order, table)
	}
	w.bulk.rows[table] = append(w.bulk.rows[table], args)
	return nil
}

// repointEvents gives the waiting events of profile merged to survivor, as
// the UPDATE of a merge does for stored ones.
func (w *writer) repointEvents(merged, survivor int64) {
	if w.bulk == nil {
		return
	}
	for _, row := range w.bulk.rows[&bulkEvents] {
		if id, ok := row[eventProfileColumn].(int64); ok && id == merged {
			row[eventProfileColumn] = survivor
		}
	}
}

// flush writes every waiting row, table by table, in INSERTs of as many
// rows as the parameter limit allows.
func (w *writer) flush(ctx context.Context) error {
	if w.bulk == nil {
		return nil
	}
	for _, table := range w.bulk.order {
		rows := w.bulk.rows[table]
		per := max(1, maxBulkArgs/len(table.columns))
		for start := 0; start < len(rows); start += per {
			chunk := rows[start:min(start+per, len(rows))]
			args := make([]any, 0, len(chunk)*len(table.columns))
			for _, row := range chunk {
				args = append(args, row...)
			}
			if err := w.exec(ctx, insertSQL(table, len(chunk)), args...); err != nil {
				return fmt.Errorf("write %d rows of %s: %w", len(chunk), table.name, err)
			}
		}
	}
	w.bulk = newBulkRows()
	return nil
}

// insertSQL is the INSERT of n rows into table.
func insertSQL(table *bulkTable, n int) string {
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(table.columns)), ", ") + ")"
	rows := strings.TrimSuffix(strings.Repeat(one+", ", n), ", ")
	return "INSERT INTO " + table.name + " (" + strings.Join(table.columns, ", ") +
		") VALUES " + rows + " " + table.suffix
}
