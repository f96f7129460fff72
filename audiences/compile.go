package audiences

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/knit-cdp/knit/resolver"
)

// query is a compiled audience: SQL that returns one row per member
// (profile_id, then one column per attribute), its arguments, and how to
// read each attribute column.
type query struct {
	sql     string
	args    []any
	columns []column
}

// column is one attribute column of a compiled query.
type column struct {
	name string
	kind columnKind
	// round is how many decimals a number keeps.
	round int
}

type columnKind int

const (
	kindTime   columnKind = iota // milliseconds since the epoch
	kindInt                      // a count
	kindNumber                   // a float, rounded
	kindText                     // text
	kindKeys                     // a JSON array of keys, read as sorted text
	kindJSON                     // a JSON value, such as a trait
)

// compiler turns a definition into one SQL query: each leaf condition
// becomes a common table expression keyed by profile_id, and the tree of
// conditions becomes a predicate over them.
type compiler struct {
	d       dialect
	now     int64
	ctes    []expr
	joins   []string
	columns []column
	// outputs are the attribute values, each shown only where every guard
	// holds: its leaf and the and/or nodes above it, up to the root.
	outputs []guarded
	depth   int
	// pendingAnchor holds the anchor paths the leaf being compiled reads.
	pendingAnchor []Path
	// part, when it has more than one share, limits the query to one
	// share of the profiles.
	part share
}

// share is one of several disjoint parts of the profiles, by id: those
// whose id leaves remainder index when divided by of. The zero share, and
// any share of one, is every profile.
type share struct {
	index, of int
}

// tablesRead are the tables an audience's query, and the reading of its
// members' identifiers, read: computing an audience in shares locks them
// first (sqldb.SharedSnapshot). TestQueriesReadOnlyTheTablesTheyLock
// checks the compiled queries.
func tablesRead() []string {
	return []string{"events", "profiles", "identities", "traits", "audience_members"}
}

// inShare holds when the profile id in column belongs to c's share; it is
// empty (no condition) when the query covers every profile.
func (c *compiler) inShare(column string) expr {
	if c.part.of <= 1 {
		return expr{}
	}
	return q(column+" %% %s = %s", val(c.part.of), val(c.part.index))
}

// compile writes def as SQL for dialect d, evaluated at now.
func compile(def Definition, now time.Time, d dialect) (query, error) {
	return compileShare(def, now, d, share{})
}

// compileShare writes def as SQL that returns only the members in part.
// Every leaf is keyed by profile, so the shares' members together are the
// whole query's; each leaf's table is limited to the share as well, so
// that each share's query does its share of the work.
func compileShare(def Definition, now time.Time, d dialect, part share) (query, error) {
	if def.Condition == nil {
		return query{}, fmt.Errorf("audience %s has no condition", def.Name)
	}
	c := &compiler{d: d, now: now.UnixMilli(), part: part}
	predicate, err := c.condition(*def.Condition)
	if err != nil {
		return query{}, fmt.Errorf("audience %s: %w", def.Name, err)
	}

	conditions := []expr{raw("p.merged_into IS NULL AND p.retired_ms IS NULL"),
		c.inShare("p.id"), predicate}
	// An email is one of the identifiers that make a person known, so a
	// required email is the only check needed.
	switch {
	case def.NeedsEmail():
		conditions = append(conditions, hasIdentifier(resolver.TypeEmail))
	case !def.IncludeAnonymous:
		conditions = append(conditions, hasIdentifier(resolver.TypeUserID, resolver.TypeEmail))
	}

	selected := []expr{raw("p.id AS profile_id")}
	for _, out := range c.outputs {
		selected = append(selected, q("CASE WHEN %s THEN %s END", and(out.guards...), out.value))
	}
	body := q("SELECT %s FROM profiles p "+strings.Join(c.joins, " ")+
		" WHERE %s ORDER BY p.id", join(selected, ", "), and(conditions...))
	if len(c.ctes) > 0 {
		body = q("WITH %s %s", join(c.ctes, ", "), body)
	}
	return query{sql: body.text, args: body.args, columns: c.columns}, nil
}

func hasIdentifier(types ...string) expr {
	placeholders := make([]expr, len(types))
	for i, t := range types {
		placeholders[i] = val(t)
	}
	return q("EXISTS (SELECT 1 FROM identities i WHERE i.profile_id = p.id "+
		"AND i.type IN (%s))", join(placeholders, ", "))
}

// guarded is an attribute value and the conditions under which it shows.
type guarded struct {
	value  expr
	guards []expr
}

// condition returns the predicate of node over the outer profile p.
func (c *compiler) condition(node Condition) (expr, error) {
	switch {
	case node.And != nil || node.Or != nil:
		children, op := node.And, " AND "
		if node.Or != nil {
			children, op = node.Or, " OR "
		}
		first := len(c.outputs)
		c.depth++
		parts := make([]expr, len(children))
		for i, child := range children {
			p, err := c.condition(child)
			if err != nil {
				return expr{}, err
			}
			parts[i] = p
		}
		c.depth--
		holds := q("(%s)", join(parts, op))
		if c.depth > 0 {
			// Attributes below show only when this branch held; the root
			// holds for every member.
			for i := first; i < len(c.outputs); i++ {
				c.outputs[i].guards = append(c.outputs[i].guards, holds)
			}
		}
		return holds, nil
	case node.Not != nil:
		p, err := c.condition(*node.Not)
		return q("(NOT %s)", p), err
	}
	return c.leaf(node)
}

// leaf adds the node's table, joins it to p, and selects its attributes;
// the predicate it returns is never NULL.
func (c *compiler) leaf(node Condition) (expr, error) {
	name := fmt.Sprintf("c%d", len(c.joins)+1)
	c.pendingAnchor = nil
	for _, a := range node.Attributes {
		if path, ok := strings.CutPrefix(a.Source, "anchor."); ok {
			c.pendingAnchor = append(c.pendingAnchor, Path(path))
		}
	}
	var holds expr
	var outputs map[string]output
	var err error
	switch {
	case node.Performed != nil:
		holds, outputs, err = c.performed(name, node.Performed, false)
	case node.NotPerformed != nil:
		holds, outputs, err = c.performed(name, node.NotPerformed, true)
	case node.ThenNot != nil:
		holds, outputs, err = c.thenNot(name, node.ThenNot)
	case node.Aggregate != nil:
		holds, outputs, err = c.aggregate(name, node.Aggregate)
	case node.Trait != nil:
		holds, outputs = c.trait(name, node.Trait)
	case node.InAudience != "":
		holds, outputs = c.inAudience(name, node.InAudience)
	default:
		return expr{}, fmt.Errorf("a condition has no kind")
	}
	if err != nil {
		return expr{}, err
	}

	c.joins = append(c.joins, fmt.Sprintf("LEFT JOIN %s ON %s.profile_id = p.id", name, name))
	holds = c.d.falseIfNull(holds)
	for _, a := range node.Attributes {
		out, ok := outputs[a.Source]
		if !ok {
			return expr{}, fmt.Errorf("attribute %s: no source %q", a.Name, a.Source)
		}
		c.columns = append(c.columns, column{name: a.Name, kind: out.kind, round: out.round})
		c.outputs = append(c.outputs, guarded{value: out.value, guards: []expr{holds}})
	}
	return holds, nil
}

// output is what a leaf offers as an attribute source.
type output struct {
	value expr
	kind  columnKind
	round int
}

// scope is where a selector's events are read: the event alias, and the
// array element alias when the extracted values go through an array.
type scope struct {
	d     dialect
	alias string
	elem  string
	array []string
}

// newScope reads events as alias, iterating the one array that the
// extracted paths go through, if any.
func newScope(d dialect, alias string, extracted ...Path) (scope, error) {
	s := scope{d: d, alias: alias}
	seen := ""
	for _, p := range extracted {
		if p == "" {
			continue
		}
		key := p.arrayKey()
		if key == "" {
			continue
		}
		if seen != "" && key != seen {
			return s, fmt.Errorf("%q and %q go through different arrays; "+
				"values read together may go through one", seen, key)
		}
		seen = key
		s.array, _ = p.split()
		s.elem = alias + "_item"
	}
	return s, nil
}

// ref addresses path in this scope: inside the iterated element when the
// path goes through the iterated array.
func (s scope) ref(p Path) jsonRef {
	array, inner := p.split()
	if s.elem != "" && strings.Join(array, ".") == strings.Join(s.array, ".") {
		return s.d.element(s.alias, s.elem, inner)
	}
	return s.d.property(s.alias, inner)
}

// from is the FROM clause of the scope: events, joined with the array's
// elements when one is iterated.
func (s scope) from() expr {
	from := s.d.events(s.alias)
	if s.elem != "" {
		from = q("%s %s", from, s.d.eachElement(s.alias, s.elem, s.array))
	}
	return from
}

// selects is the condition that an event is one of sel's: a track event
// of a live profile with that name whose properties pass every filter.
// Filters through the iterated array test its current element; filters
// through another array hold when one element passes all of them. Filters
// on text first test the stored text (prefilter), so that most events
// that cannot pass are never parsed.
func (s scope) selects(sel Selector) expr {
	a := s.alias
	parts := []expr{
		q(a+".type = 'track' AND "+a+".profile_id IS NOT NULL AND "+a+".event = %s",
			val(sel.Event)),
	}
	for _, f := range sel.Where {
		if cheap, ok := s.prefilter(f); ok {
			parts = append(parts, cheap)
		}
	}

	byArray := map[string][]Filter{}
	var arrays []string
	for _, f := range sel.Where {
		key := f.Property.arrayKey()
		if key == "" || (s.elem != "" && key == strings.Join(s.array, ".")) {
			parts = append(parts, filterExpr(s.d, f, s.ref(f.Property)))
			continue
		}
		if _, ok := byArray[key]; !ok {
			arrays = append(arrays, key)
		}
		byArray[key] = append(byArray[key], f)
	}
	for i, key := range arrays {
		parts = append(parts, s.anyElement(fmt.Sprintf("%s_any%d", a, i), byArray[key]))
	}
	return and(parts...)
}

// anyElement holds when one element of the filters' array passes them all.
func (s scope) anyElement(elem string, filters []Filter) expr {
	array, _ := filters[0].Property.split()
	inner := scope{d: s.d, alias: s.alias, elem: elem, array: array}
	tests := make([]expr, len(filters))
	for i, f := range filters {
		tests[i] = filterExpr(s.d, f, inner.ref(f.Property))
	}
	join := s.d.eachElement(s.alias, elem, array)
	// The join's ON clause becomes a WHERE over a one-row source.
	return q("EXISTS (SELECT 1 FROM (SELECT 1 AS one) AS "+elem+"_src %s WHERE %s)",
		join, and(tests...))
}

// window limits column, the time of events read through the events
// table, to the window before now.
func (c *compiler) window(column string, w Window) expr {
	switch {
	case w.Within > 0:
		from := c.now - time.Duration(w.Within).Milliseconds()
		return c.d.eventTimes(column, &from, c.now)
	case len(w.Between) == 2:
		from, to := c.betweenBounds(w.Between)
		return c.d.eventTimes(column, &from, to)
	}
	return c.d.eventTimes(column, nil, c.now)
}

// between limits column (milliseconds) to the span between two durations
// before now, given in either order.
func (c *compiler) between(column string, between []Duration) expr {
	from, to := c.betweenBounds(between)
	return q(column+" >= %s AND "+column+" <= %s", val(from), val(to))
}

// betweenBounds is the earlier and the later time of a between span.
func (c *compiler) betweenBounds(between []Duration) (from, to int64) {
	early, late := between[0], between[1]
	if early < late {
		early, late = late, early
	}
	return c.now - time.Duration(early).Milliseconds(),
		c.now - time.Duration(late).Milliseconds()
}

func (c *compiler) addCTE(name string, body expr) {
	c.ctes = append(c.ctes, q(name+" AS (%s)", body))
}

// sortKeys reads a JSON array of keys as sorted, distinct text.
func sortKeys(keys []any) []string {
	seen := map[string]bool{}
	var out []string
	for _, k := range keys {
		text := scalarText(k)
		if text == "" || seen[text] {
			continue
		}
		seen[text] = true
		out = append(out, text)
	}
	sort.Strings(out)
	return out
}
