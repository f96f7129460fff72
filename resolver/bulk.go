package resolver

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"strings"

	"github.com/knit-cdp/knit/resolver/sqldb"
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
	bulkEvents = bulkTable{name: "events", columns: []string{"id", "message_id", "source",
		"type", "event", "user_id", "anonymous_id", "profile_id", "ts_ms", "received_ms",
		"app", "device_type", "device_id", "properties", "raw"}}
	bulkLinks = bulkTable{name: "identity_links",
		columns: []string{"event_id", "type", "value", "message_id"},
		suffix:  "ON CONFLICT DO NOTHING"}
	bulkDecisions = bulkTable{name: "identity_decisions", columns: []string{"profile_id",
		"kind", "message_id", "identifier", "other_profile_id", "rule", "detail",
		"event_ms", "at_ms"}}
	bulkIdentities = bulkTable{name: "identities", columns: []string{"type", "value",
		"profile_id", "first_seen_ms", "last_seen_ms", "first_message_id", "source", "app",
		"device"}}
	// A field takes the new value only if its event time is at least as
	// late as the stored one, so out-of-order messages never roll it back.
	bulkTraits = bulkTable{name: "traits",
		columns: []string{"profile_id", "key", "value", "ts_ms", "message_id"},
		suffix: `ON CONFLICT (profile_id, key) DO UPDATE SET
			value = excluded.value, ts_ms = excluded.ts_ms, message_id = excluded.message_id
			WHERE excluded.ts_ms >= traits.ts_ms`}
)

// Where rows of bulkIdentities and bulkTraits hold what later writes of the
// same batch may change.
const (
	identityLastSeenColumn = 4
	traitTimeColumn        = 3
)

// traitKey names one stored trait field.
type traitKey struct {
	profile int64
	path    string
}

// eventProfileColumn is where an event row holds its profile id.
const eventProfileColumn = 7

// maxBulkArgs keeps one multi-row INSERT under SQLite's limit on
// parameters (32,766); PostgreSQL takes each column as one array instead.
const maxBulkArgs = 30000

// bulkRows holds the rows waiting to be written, per table, in the order
// they came.
type bulkRows struct {
	order  []*bulkTable
	rows   map[*bulkTable][][]any
	stored map[string]bool // message ids of the batch's events, kept across flushes

	identities map[Identifier][]any // waiting identity rows
	traits     map[traitKey][]any   // waiting trait rows, the latest per field
	seenLater  map[Identifier]int64 // stored identities seen later than they say
}

func newBulkRows() *bulkRows {
	b := &bulkRows{stored: map[string]bool{}}
	b.clear()
	return b
}

// forget drops the waiting rows of tables, once written.
func (b *bulkRows) forget(tables []*bulkTable) {
	b.order = slices.DeleteFunc(b.order, func(t *bulkTable) bool {
		return slices.Contains(tables, t)
	})
	for _, table := range tables {
		delete(b.rows, table)
		switch table {
		case &bulkIdentities:
			b.identities = map[Identifier][]any{}
		case &bulkTraits:
			b.traits = map[traitKey][]any{}
		}
	}
}

// clear forgets the waiting rows, once written.
func (b *bulkRows) clear() {
	b.order = nil
	b.rows = map[*bulkTable][][]any{}
	b.identities = map[Identifier][]any{}
	b.traits = map[traitKey][]any{}
	b.seenLater = map[Identifier]int64{}
}

// addIdentity holds a new identity row until the batch is written.
func (w *writer) addIdentity(ctx context.Context, row ...any) error {
	if err := w.write(ctx, &bulkIdentities, row...); err != nil {
		return err
	}
	if w.bulk != nil {
		id := Identifier{Type: row[0].(string), Value: row[1].(string)}
		table := w.bulk.rows[&bulkIdentities]
		w.bulk.identities[id] = table[len(table)-1]
	}
	return nil
}

// laterSighting records, for the end of the batch, that id was seen at
// atMS; it reports false when there is no batch to hold it.
func (w *writer) laterSighting(id Identifier, atMS int64) bool {
	if w.bulk == nil {
		return false
	}
	if row, waiting := w.bulk.identities[id]; waiting {
		row[identityLastSeenColumn] = max(row[identityLastSeenColumn].(int64), atMS)
		return true
	}
	w.bulk.seenLater[id] = max(w.bulk.seenLater[id], atMS)
	return true
}

// setTrait holds a trait field for the end of the batch, keeping only the
// write that would win of those waiting for the same field.
func (w *writer) setTrait(ctx context.Context, row ...any) error {
	if w.bulk == nil {
		return w.write(ctx, &bulkTraits, row...)
	}
	key := traitKey{profile: row[0].(int64), path: row[1].(string)}
	if waiting, ok := w.bulk.traits[key]; ok {
		if row[traitTimeColumn].(int64) >= waiting[traitTimeColumn].(int64) {
			copy(waiting, row)
		}
		return nil
	}
	if err := w.write(ctx, &bulkTraits, row...); err != nil {
		return err
	}
	table := w.bulk.rows[&bulkTraits]
	w.bulk.traits[key] = table[len(table)-1]
	return nil
}

// write adds a row to table: to the batch when the writer collects one, or
// straight to the database otherwise.
func (w *writer) write(ctx context.Context, table *bulkTable, args ...any) error {
	if w.bulk == nil {
		return w.exec(ctx, insertSQL(table, 1), args...)
	}
	_, seen := w.bulk.rows[table]
	switch {
	case seen:
	case table == &bulkProfiles: // first: the other tables refer to it
		w.bulk.order = slices.Insert(w.bulk.order, 0, table)
	default:
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

// flush writes every waiting row, table by table: on SQLite in INSERTs of
// as many rows as the parameter limit allows, on PostgreSQL in one
// statement for all tables.
func (w *writer) flush(ctx context.Context) error {
	if w.bulk == nil {
		return nil
	}
	if w.dialect == sqldb.Postgres {
		return w.flushPostgres(ctx)
	}
	for _, table := range w.bulk.order {
		rows := w.bulk.rows[table]
		if err := w.insertValues(ctx, table, rows); err != nil {
			return fmt.Errorf("write %d rows of %s: %w", len(rows), table.name, err)
		}
	}
	if err := w.flushSightings(ctx); err != nil {
		return err
	}
	w.bulk.clear()
	return nil
}

// flushPostgres is flush on PostgreSQL: the batch's rows in one statement
// (flushStatement), where each table took a round trip of its own, then
// its merges in another (foldsSQL), which must see those rows.
func (w *writer) flushPostgres(ctx context.Context) error {
	query, args, err := w.flushStatement()
	if err != nil {
		return err
	}
	if query != "" {
		if err := w.exec(ctx, query, args...); err != nil {
			return fmt.Errorf("write the batch's rows (%s): %w", w.bulk.summary(), err)
		}
		w.profileIDs.written, w.eventIDs.written = w.profileIDs.last, w.eventIDs.last
		w.bulk.clear()
	}
	return w.writeFolds(ctx)
}

// flushStatement is the one PostgreSQL statement that writes every waiting
// row: each table's INSERT and the last-seen UPDATE in a WITH clause of
// their own, and the moves of the id sequences as its SELECT. None of the
// writes reads rows another writes (they see one snapshot), and no foreign
// key joins them (migration 17). It returns "" when there is nothing to do.
func (w *writer) flushStatement() (string, []any, error) {
	clauses, args, err := insertClauses(w.bulk, canonicalOrder(w.bulk.order))
	if err != nil {
		return "", nil, err
	}
	if query, sightingArgs := w.sightingsArraysSQL(); query != "" {
		clauses = append(clauses, "sightings AS ("+query+")")
		args = append(args, sightingArgs...)
	}
	final, sequenceArgs := w.sequencesSQL()
	if len(clauses) == 0 && len(sequenceArgs) == 0 {
		return "", nil, nil
	}
	args = append(args, sequenceArgs...)
	if len(clauses) == 0 {
		return final, args, nil
	}
	return "WITH " + strings.Join(clauses, ",\n") + "\n" + final, args, nil
}

// insertClauses are the WITH clauses that insert the waiting rows of
// tables on PostgreSQL, and their arguments.
func insertClauses(b *bulkRows, tables []*bulkTable) ([]string, []any, error) {
	var clauses []string
	var args []any
	for _, table := range tables {
		query, tableArgs, err := insertArraysSQL(table, b.rows[table])
		if err != nil {
			return nil, nil, fmt.Errorf("write %d rows of %s: %w", len(b.rows[table]),
				table.name, err)
		}
		clauses = append(clauses, table.name+" AS ("+query+")")
		args = append(args, tableArgs...)
	}
	return clauses, args, nil
}

// flushTables writes the waiting rows of tables alone and leaves the rest
// waiting: a merge moves stored profiles, identities and traits, while the
// batch's events (which it repoints where they wait), links and decisions
// can wait for the end of the batch. Writing everything before each merge
// made a batch's rows cost a statement a merge: 2.7 a batch late in a
// 60 s load, a third of the writer's time on PostgreSQL.
func (w *writer) flushTables(ctx context.Context, tables ...*bulkTable) error {
	if w.bulk == nil {
		return nil
	}
	var chosen []*bulkTable
	for _, table := range w.bulk.order {
		if slices.Contains(tables, table) {
			chosen = append(chosen, table)
		}
	}
	if len(chosen) == 0 {
		return nil
	}

	if err := w.writeTables(ctx, chosen); err != nil {
		return err
	}
	w.bulk.forget(chosen)
	return nil
}

// writeTables writes the waiting rows of tables, in their order: on
// PostgreSQL in one statement, on SQLite in multi-row INSERTs.
func (w *writer) writeTables(ctx context.Context, tables []*bulkTable) error {
	if w.dialect == sqldb.Postgres {
		clauses, args, err := insertClauses(w.bulk, canonicalOrder(tables))
		if err != nil {
			return err
		}
		query := "WITH " + strings.Join(clauses, ",\n") + "\nSELECT 1"
		if err := w.exec(ctx, query, args...); err != nil {
			return fmt.Errorf("write the batch's rows (%s): %w", w.bulk.summary(), err)
		}
		return nil
	}
	for _, table := range tables {
		rows := w.bulk.rows[table]
		if err := w.insertValues(ctx, table, rows); err != nil {
			return fmt.Errorf("write %d rows of %s: %w", len(rows), table.name, err)
		}
	}
	return nil
}

// flushTableOrder is the order of the tables in a flush statement: one
// order whatever the batch wrote first, so that few distinct statements
// reach pgx's cache of prepared ones.
var flushTableOrder = []*bulkTable{&bulkProfiles, &bulkIdentities, &bulkEvents, &bulkLinks,
	&bulkDecisions, &bulkTraits}

// canonicalOrder returns tables in flushTableOrder, any other last.
func canonicalOrder(tables []*bulkTable) []*bulkTable {
	position := func(t *bulkTable) int {
		if i := slices.Index(flushTableOrder, t); i >= 0 {
			return i
		}
		return len(flushTableOrder)
	}
	sorted := slices.Clone(tables)
	slices.SortStableFunc(sorted, func(a, b *bulkTable) int {
		return position(a) - position(b)
	})
	return sorted
}

// summary names the tables waiting rows and how many each, for errors.
func (b *bulkRows) summary() string {
	parts := make([]string, 0, len(b.order)+1)
	for _, table := range b.order {
		parts = append(parts, fmt.Sprintf("%d %s", len(b.rows[table]), table.name))
	}
	if len(b.seenLater) > 0 {
		parts = append(parts, fmt.Sprintf("%d sightings", len(b.seenLater)))
	}
	return strings.Join(parts, ", ")
}

// insertValues writes rows in multi-row INSERTs of as many rows as the
// parameter limit allows.
func (w *writer) insertValues(ctx context.Context, table *bulkTable, rows [][]any) error {
	for start, size := range statementSizes(len(rows), table.rowsPerStatement()) {
		chunk := rows[start : start+size]
		args := make([]any, 0, len(chunk)*len(table.columns))
		for _, row := range chunk {
			args = append(args, row...)
		}
		if err := w.exec(ctx, insertSQL(table, len(chunk)), args...); err != nil {
			return err
		}
	}
	return nil
}

// insertArraysSQL is the INSERT of rows into table on PostgreSQL, each
// column sent as one array: a statement of a few parameters, whatever the
// number of rows, parses and binds in a fraction of the time of a VALUES
// list.
func insertArraysSQL(table *bulkTable, rows [][]any) (string, []any, error) {
	arrays := make([]string, len(table.columns))
	args := make([]any, len(table.columns))
	for i := range table.columns {
		var err error
		if args[i], arrays[i], err = columnArray(rows, i); err != nil {
			return "", nil, fmt.Errorf("column %s: %w", table.columns[i], err)
		}
	}
	query := "INSERT INTO " + table.name + " (" + strings.Join(table.columns, ", ") +
		") SELECT * FROM unnest(" + strings.Join(arrays, ", ") + ") " + table.suffix
	return query, args, nil
}

// columnArray gathers one column of rows into an array argument and the
// placeholder that casts it: TEXT[] for a column of strings, BIGINT[] for
// one of int64s and nils (NULLs).
func columnArray(rows [][]any, column int) (any, string, error) {
	texts := make([]string, 0, len(rows))
	numbers := make([]*int64, 0, len(rows))
	for _, row := range rows {
		switch value := row[column].(type) {
		case string:
			texts = append(texts, value)
		case int64:
			numbers = append(numbers, &value)
		case nil:
			numbers = append(numbers, nil)
		default:
			return nil, "", fmt.Errorf("no array of %T", value)
		}
	}
	switch {
	case len(texts) == len(rows):
		return texts, "CAST(? AS TEXT[])", nil
	case len(numbers) == len(rows):
		return numbers, "CAST(? AS BIGINT[])", nil
	}
	return nil, "", fmt.Errorf("strings mixed with numbers")
}

// sightingsChunk bounds the identifiers one last-seen UPDATE names.
const sightingsChunk = 1000

// flushSightings moves the last sighting of stored identities up, in
// UPDATEs joined to a VALUES list (one statement for many identifiers).
func (w *writer) flushSightings(ctx context.Context) error {
	ids := make([]Identifier, 0, len(w.bulk.seenLater))
	for id := range w.bulk.seenLater {
		ids = append(ids, id)
	}
	for start, size := range statementSizes(len(ids), sightingsChunk) {
		chunk := ids[start : start+size]
		args := make([]any, 0, 3*len(chunk))
		for _, id := range chunk {
			args = append(args, id.Type, id.Value, w.bulk.seenLater[id])
		}
		err := w.exec(ctx, sightingsSQL(len(chunk)), args...)
		if err != nil {
			return fmt.Errorf("mark %d identifiers seen: %w", len(chunk), err)
		}
	}
	return nil
}

// sightingsArraysSQL is the last-seen UPDATE on PostgreSQL: the
// identifiers' types, values and times as three arrays. It returns "" when
// no stored identity was seen later.
func (w *writer) sightingsArraysSQL() (string, []any) {
	if len(w.bulk.seenLater) == 0 {
		return "", nil
	}
	n := len(w.bulk.seenLater)
	types, values, times := make([]string, 0, n), make([]string, 0, n), make([]int64, 0, n)
	for id, at := range w.bulk.seenLater {
		types, values, times = append(types, id.Type), append(values, id.Value),
			append(times, at)
	}
	return `UPDATE identities SET last_seen_ms = v.at
		FROM unnest(CAST(? AS TEXT[]), CAST(? AS TEXT[]), CAST(? AS BIGINT[]))
			AS v(type, value, at)
		WHERE identities.type = v.type AND identities.value = v.value
		AND identities.last_seen_ms < v.at`, []any{types, values, times}
}

// sightingsSQL is the UPDATE that moves the last sighting of n identifiers
// up; its arguments are each identifier's type, value and time.
func sightingsSQL(n int) string {
	row := "(?, ?, CAST(? AS BIGINT))"
	values := strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
	return `UPDATE identities SET last_seen_ms = v.column3
		FROM (VALUES ` + values + `) AS v
		WHERE identities.type = v.column1 AND identities.value = v.column2
		AND identities.last_seen_ms < v.column3`
}

// maxStatementRows bounds the rows of one multi-row statement, so that the
// largest kept statement stays small.
const maxStatementRows = 1024

// rowsPerStatement is how many rows of table one INSERT may hold: as many
// as the parameter limit allows, up to maxStatementRows.
func (t *bulkTable) rowsPerStatement() int {
	return min(maxStatementRows, max(1, maxBulkArgs/len(t.columns)))
}

// keptStatements are the statements a batch's flush runs, of every size
// statementSizes yields: the ones worth keeping prepared.
func keptStatements() []string {
	var queries []string
	for _, table := range []*bulkTable{&bulkProfiles, &bulkEvents, &bulkLinks,
		&bulkDecisions, &bulkIdentities, &bulkTraits} {
		for _, size := range sizesUpTo(table.rowsPerStatement()) {
			queries = append(queries, insertSQL(table, size))
		}
	}
	for _, size := range sizesUpTo(sightingsChunk) {
		queries = append(queries, sightingsSQL(size))
	}
	return queries
}

// insertSQL is the INSERT of n rows into table.
func insertSQL(table *bulkTable, n int) string {
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(table.columns)), ", ") + ")"
	rows := strings.TrimSuffix(strings.Repeat(one+", ", n), ", ")
	return "INSERT INTO " + table.name + " (" + strings.Join(table.columns, ", ") +
		") VALUES " + rows + " " + table.suffix
}

// statementSizes splits n rows into statements of a few fixed sizes
// (powers of four up to limit, largest first), yielding each statement's
// first row and its number of rows. A handful of sizes keeps the number of
// distinct statements small enough to stay prepared across transactions.
func statementSizes(n, limit int) iter.Seq2[int, int] {
	sizes := sizesUpTo(limit)
	return func(yield func(int, int) bool) {
		start := 0
		for _, size := range slices.Backward(sizes) {
			for ; n-start >= size; start += size {
				if !yield(start, size) {
					return
				}
			}
		}
	}
}

// sizesUpTo are the statement sizes up to limit: the powers of four, from 1.
func sizesUpTo(limit int) []int {
	var sizes []int
	for size := 1; size <= max(limit, 1); size *= 4 {
		sizes = append(sizes, size)
	}
	return sizes
}
