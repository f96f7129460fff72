package audiences

import (
	"fmt"
	"strings"
)

// expr is a fragment of SQL with the arguments of its placeholders, in the
// order they appear in the text.
type expr struct {
	text string
	args []any
}

// val is one value passed as a placeholder.
func val(v any) expr { return expr{text: "?", args: []any{v}} }

// raw is SQL text without arguments; it must never hold user input.
func raw(text string) expr { return expr{text: text} }

// q fills each %s in format with the next part, keeping the arguments in
// textual order. format must hold no other verbs.
func q(format string, parts ...expr) expr {
	texts := make([]any, len(parts))
	var args []any
	for i, p := range parts {
		texts[i] = p.text
		args = append(args, p.args...)
	}
	return expr{text: fmt.Sprintf(format, texts...), args: args}
}

// join concatenates parts with sep between them.
func join(parts []expr, sep string) expr {
	texts := make([]string, len(parts))
	var args []any
	for i, p := range parts {
		texts[i] = p.text
		args = append(args, p.args...)
	}
	return expr{text: strings.Join(texts, sep), args: args}
}

// and joins conditions with AND; no conditions is true.
func and(parts ...expr) expr {
	var kept []expr
	for _, p := range parts {
		if p.text != "" {
			kept = append(kept, p)
		}
	}
	if len(kept) == 0 {
		return raw("1 = 1")
	}
	return q("(%s)", join(kept, " AND "))
}

// jsonRef addresses one JSON value: a document column and a path into it.
// SQLite reads path, a JSON path expression; PostgreSQL reads steps, the
// member names from the document down.
type jsonRef struct {
	doc   string
	path  expr
	steps []string
}

// dialect is every SQL difference between the engines that audience
// queries meet: reading JSON and a few functions. Nothing else in the
// compiler knows which engine it writes for.
type dialect interface {
	// events is the FROM item that reads the events table as alias, with
	// whatever property needs to read their properties.
	events(alias string) expr
	// property addresses steps inside the properties of event alias.
	property(alias string, steps []string) jsonRef
	// element addresses steps inside the current element of the array
	// iterated as elem over the properties of event alias.
	element(alias, elem string, steps []string) jsonRef
	// trait addresses the JSON value of the traits row alias.
	trait(alias string) jsonRef
	// eachElement is a join that iterates, as elem, the elements of the
	// array at steps in the properties of event alias (none if no array).
	eachElement(alias, elem string, steps []string) expr
	// elementOrder is an expression ordering elements as the array does.
	elementOrder(elem string) string
	// eventTimes is the condition from <= column <= to on the event time
	// column of an events alias (no lower bound when from is nil), written
	// so that the engine finds the events of one name through its index.
	eventTimes(column string, from *int64, to int64) expr

	// text is the value as text when it is a string, number or boolean.
	text(r jsonRef) expr
	// number is the value when it is a JSON number.
	number(r jsonRef) expr
	// present holds when the value exists and is not null.
	present(r jsonRef) expr

	fold(e expr) expr
	startsWith(text, prefix expr) expr
	containsText(text, needle expr) expr
	// total sums, giving 0 for no rows.
	total(e expr) expr
	// average is the mean, NULL for no rows, without overflowing where the
	// mean itself is a finite number.
	average(e expr) expr
	// jsonArray aggregates text values into a JSON array (as text).
	jsonArray(e expr) expr
	// falseIfNull turns a NULL truth value into false.
	falseIfNull(e expr) expr
}

// sqliteDialect reads JSON with SQLite's JSON1 functions, addressing array
// elements by their full path in the document.
type sqliteDialect struct{}

func sqlitePath(steps []string) string {
	var b strings.Builder
	for _, s := range steps {
		b.WriteString(`."` + s + `"`)
	}
	return b.String()
}

func (sqliteDialect) events(alias string) expr { return raw("events " + alias) }

// eventWeekMs is the width of the weeks of SQLite's events index by name
// and week (migrations/sqlite/00019_event_index_by_week.sql); its
// expression must be written exactly as there for the index to be used.
const eventWeekMs = 604800000

// eventTimes bounds the weeks too. Truncating division never decreases
// as time grows, so the weeks of from and to hold every event in between,
// and the index reads at most a week beyond each end of the window. The
// bounds are written one week out and strict: for the whole numbers knit
// stores that reads the same weeks, and a time stored as a fraction (by
// hand: the column is not STRICT) is still found.
func (sqliteDialect) eventTimes(column string, from *int64, to int64) expr {
	week := func(at string) string { return fmt.Sprintf("%s / %d", at, eventWeekMs) }
	upTo := q(column+" <= %s AND "+week(column)+" < "+week("%s")+" + 1", val(to), val(to))
	if from == nil {
		return upTo
	}
	return q(column+" >= %s AND "+week(column)+" > "+week("%s")+" - 1 AND %s",
		val(*from), val(*from), upTo)
}

func (sqliteDialect) property(alias string, steps []string) jsonRef {
	return jsonRef{doc: alias + ".properties", path: val("$" + sqlitePath(steps))}
}

func (sqliteDialect) element(alias, elem string, steps []string) jsonRef {
	path := raw(elem + ".fullkey")
	if len(steps) > 0 {
		path = q("("+elem+".fullkey || %s)", val(sqlitePath(steps)))
	}
	return jsonRef{doc: alias + ".properties", path: path}
}

func (sqliteDialect) trait(alias string) jsonRef {
	return jsonRef{doc: alias + ".value", path: raw("'$'")}
}

func (d sqliteDialect) eachElement(alias, elem string, steps []string) expr {
	array := d.property(alias, steps)
	return q("JOIN json_each(%s, %s) AS "+elem+" ON json_type(%s, %s) = 'array'",
		raw(array.doc), array.path, raw(array.doc), array.path)
}

func (sqliteDialect) elementOrder(elem string) string { return elem + ".key" }

func (sqliteDialect) jsonType(r jsonRef) expr {
	return q("json_type(%s, %s)", raw(r.doc), r.path)
}

// text writes whole numbers without a decimal part, so 1e2, 100.0 and 100
// all read "100" on both engines.
func (d sqliteDialect) text(r jsonRef) expr {
	x := q("json_extract(%s, %s)", raw(r.doc), r.path)
	return q("(CASE %s WHEN 'text' THEN %s WHEN 'integer' THEN CAST(%s AS TEXT) "+
		"WHEN 'real' THEN (CASE WHEN %s = CAST(%s AS INTEGER) AND abs(%s) < 9.2e18 "+
		"THEN CAST(CAST(%s AS INTEGER) AS TEXT) ELSE CAST(%s AS TEXT) END) "+
		"WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' END)",
		d.jsonType(r), x, x, x, x, x, x, x)
}

func (d sqliteDialect) number(r jsonRef) expr {
	return q("(CASE WHEN %s IN ('integer', 'real') THEN json_extract(%s, %s) END)",
		d.jsonType(r), raw(r.doc), r.path)
}

func (d sqliteDialect) present(r jsonRef) expr {
	return q("(COALESCE(%s, 'null') <> 'null')", d.jsonType(r))
}

// fold lowers A-Z only: SQLite's lower() without ICU does exactly that.
func (sqliteDialect) fold(e expr) expr { return q("lower(%s)", e) }

func (sqliteDialect) startsWith(text, prefix expr) expr {
	return q("(substr(%s, 1, length(%s)) = %s)", text, prefix, prefix)
}

func (sqliteDialect) containsText(text, needle expr) expr {
	return q("(instr(%s, %s) > 0)", text, needle)
}

func (sqliteDialect) total(e expr) expr { return q("TOTAL(%s)", e) }

// average sums values scaled down by a power of two, which is exact, so two
// values near the largest double average without the sum overflowing.
func (sqliteDialect) average(e expr) expr {
	return q("(TOTAL(%s / 1024.0) / NULLIF(COUNT(%s), 0) * 1024.0)", e, e)
}

func (sqliteDialect) jsonArray(e expr) expr { return q("json_group_array(%s)", e) }

func (sqliteDialect) falseIfNull(e expr) expr { return q("COALESCE(%s, 0)", e) }

// postgresDialect reads JSON with PostgreSQL's jsonb operators. Properties
// are stored as text and read as jsonb; numbers are read as numeric, which
// holds any JSON number without overflow.
// jsonb refuses the escape \u0000; the resolver stores properties and
// traits without NUL for that reason.
type postgresDialect struct{}

// events reads each event's properties as jsonb once, beside the row: a
// condition reads them many times, and each ::jsonb of the text parsed it
// anew. OFFSET 0 keeps the planner from folding the cast back into every
// use.
func (postgresDialect) events(alias string) expr {
	return raw("events " + alias + " CROSS JOIN LATERAL (SELECT " + alias +
		".properties::jsonb AS props OFFSET 0) AS " + alias + "_json")
}

func (postgresDialect) property(alias string, steps []string) jsonRef {
	return jsonRef{doc: alias + "_json.props", steps: steps}
}

func (postgresDialect) element(_, elem string, steps []string) jsonRef {
	return jsonRef{doc: elem + ".value", steps: steps}
}

func (postgresDialect) trait(alias string) jsonRef {
	return jsonRef{doc: alias + ".value::jsonb"}
}

func (d postgresDialect) eachElement(alias, elem string, steps []string) expr {
	at := d.get(d.property(alias, steps))
	return q("CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(%s) = 'array' "+
		"THEN %s ELSE '[]'::jsonb END) WITH ORDINALITY AS "+elem+"(value, ord)", at, at)
}

func (postgresDialect) elementOrder(elem string) string { return elem + ".ord" }

// eventTimes is the plain range: each monthly partition indexes events by
// (event, ts_ms).
func (postgresDialect) eventTimes(column string, from *int64, to int64) expr {
	upTo := q(column+" <= %s", val(to))
	if from == nil {
		return upTo
	}
	return q(column+" >= %s AND %s", val(*from), upTo)
}

func (d postgresDialect) jsonType(r jsonRef) expr {
	return q("jsonb_typeof(%s)", d.get(r))
}

// get is the jsonb value at r, read member by member with ->: cheaper per
// row than #> with a path array, and like SQLite's quoted path steps, a
// step over an array (even "0") finds nothing.
func (postgresDialect) get(r jsonRef) expr {
	value := raw(r.doc)
	for _, step := range r.steps {
		value = q("(%s -> %s::text)", value, val(step))
	}
	return value
}

// getText is the value at r as text (a string without its quotes), as
// ->> and #>> read it.
func (d postgresDialect) getText(r jsonRef) expr {
	if len(r.steps) == 0 {
		return q("(%s #>> '{}')", raw(r.doc))
	}
	last := len(r.steps) - 1
	parent := jsonRef{doc: r.doc, steps: r.steps[:last]}
	return q("(%s ->> %s::text)", d.get(parent), val(r.steps[last]))
}

// text writes numbers as SQLite does: whole numbers without a decimal
// part, others in the shortest form of a double. A number nearer zero than
// half the smallest double is 0 there, as SQLite's parser rounds it (a
// cast to float8 refuses it, which failed the whole audience).
func (d postgresDialect) text(r jsonRef) expr {
	n := q("%s::numeric", d.getText(r))
	return q("(CASE %s WHEN 'string' THEN %s WHEN 'boolean' THEN %s "+
		"WHEN 'number' THEN (CASE WHEN %s = trunc(%s) AND abs(%s) < 9.2e18 "+
		"THEN trunc(%s)::bigint::text WHEN abs(%s) <= "+halfSmallestDouble+" THEN '0' "+
		"WHEN abs(%s) < 1e300 THEN %s::float8::text ELSE %s::text END) END)",
		d.jsonType(r), d.getText(r), d.getText(r), n, n, n, n, n, n, n, n)
}

// halfSmallestDouble is half the smallest positive double (2^-1075): a
// decimal no larger rounds to zero when read as a double.
const halfSmallestDouble = "2.4703282292062327208828439643411068618252990130716e-324"

// number casts the jsonb number itself: the same numeric as reading its
// text back, without writing and parsing the text (a run of the aggregate
// over 4 million events took 14 % less).
func (d postgresDialect) number(r jsonRef) expr {
	return q("(CASE WHEN %s = 'number' THEN %s::numeric END)", d.jsonType(r), d.get(r))
}

func (d postgresDialect) present(r jsonRef) expr {
	return q("(COALESCE(%s, 'null') <> 'null')", d.jsonType(r))
}

// fold lowers A-Z only, as SQLite's lower() does, so that both engines
// agree whatever the database's locale: lower() under the "C" collation
// touches nothing else. translate() with the alphabet did the same about
// ten times slower (30 µs for 160 characters).
func (postgresDialect) fold(e expr) expr {
	return q(`lower((%s) COLLATE "C")`, e)
}

func (postgresDialect) startsWith(text, prefix expr) expr {
	return q("(substr(%s, 1, length(%s)) = %s)", text, prefix, prefix)
}

func (postgresDialect) containsText(text, needle expr) expr {
	return q("(strpos(%s, %s) > 0)", text, needle)
}

func (postgresDialect) total(e expr) expr { return q("COALESCE(SUM(%s), 0)", e) }

// average needs no care: numeric does not overflow.
func (postgresDialect) average(e expr) expr { return q("AVG(%s)", e) }

func (postgresDialect) jsonArray(e expr) expr { return q("json_agg(%s)::text", e) }

func (postgresDialect) falseIfNull(e expr) expr { return q("COALESCE(%s, false)", e) }
