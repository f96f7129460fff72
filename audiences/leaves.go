package audiences

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// performed counts the selected events in the window per profile. A
// not_performed leaf holds for profiles with none.
func (c *compiler) performed(name string, p *Performed,
	negated bool) (expr, map[string]output, error) {
	s, err := newScope(c.d, "e")
	if err != nil {
		return expr{}, nil, err
	}
	c.addCTE(name, q("SELECT e.profile_id, COUNT(*) AS n, MIN(e.ts_ms) AS first_at, "+
		"MAX(e.ts_ms) AS last_at FROM %s WHERE %s GROUP BY e.profile_id",
		s.from(), and(s.selects(p.Selector), c.window("e.ts_ms", p.Window),
			c.inShare("e.profile_id"))))

	n := raw("COALESCE(" + name + ".n, 0)")
	var holds expr
	switch {
	case negated:
		holds = raw(name + ".profile_id IS NULL")
	case p.Exactly != nil:
		holds = q("%s = %s", n, val(*p.Exactly))
	case p.AtMost != nil:
		holds = q("%s <= %s", n, val(*p.AtMost))
	case p.AtLeast != nil:
		holds = q("%s >= %s", n, val(*p.AtLeast))
	default:
		holds = q("%s >= 1", n)
	}
	return holds, map[string]output{
		"count":    {value: n, kind: kindInt},
		"first_at": {value: raw(name + ".first_at"), kind: kindTime},
		"last_at":  {value: raw(name + ".last_at"), kind: kindTime},
	}, nil
}

// thenNot finds, per profile and key, the latest First event; keeps those
// in the window that no follow-up event with the same key settled; and
// holds for profiles with at least one such key.
func (c *compiler) thenNot(name string, seq *Sequence) (expr, map[string]output, error) {
	first, err := newScope(c.d, "e", seq.First.Key)
	if err != nil {
		return expr{}, nil, fmt.Errorf("then_not.first: %w", err)
	}
	key := raw("''")
	if seq.First.Key != "" {
		key = c.d.text(first.ref(seq.First.Key))
	}
	c.addCTE(name+"_first", q("SELECT e.profile_id, %s AS k, MAX(e.ts_ms) AS at "+
		"FROM %s WHERE %s GROUP BY e.profile_id, k",
		key, first.from(), and(first.selects(seq.First.Selector), c.window("e.ts_ms", Window{}),
			c.inShare("e.profile_id"))))

	kept := []expr{raw("a.k IS NOT NULL")}
	if seq.Between != nil {
		kept = append(kept, c.between("a.at", seq.Between))
	}
	if seq.Within > 0 {
		kept = append(kept, q("a.at <= %s", val(c.now-time.Duration(seq.Within).Milliseconds())))
	}
	for i, next := range seq.NotFollowedBy {
		settled, err := c.settledBy(fmt.Sprintf("b%d", i), next, seq)
		if err != nil {
			return expr{}, nil, fmt.Errorf("then_not.not_followed_by[%d]: %w", i, err)
		}
		kept = append(kept, q("NOT EXISTS (%s)", settled))
	}
	c.addCTE(name, q("SELECT a.profile_id, %s AS keys, COUNT(*) AS n, "+
		"MIN(a.at) AS first_at, MAX(a.at) AS last_at FROM "+name+"_first a "+
		"WHERE %s GROUP BY a.profile_id", c.d.jsonArray(raw("a.k")), and(kept...)))

	return raw(name + ".profile_id IS NOT NULL"), map[string]output{
		"keys":     {value: raw(name + ".keys"), kind: kindKeys},
		"count":    {value: raw(name + ".n"), kind: kindInt},
		"first_at": {value: raw(name + ".first_at"), kind: kindTime},
		"last_at":  {value: raw(name + ".last_at"), kind: kindTime},
	}, nil
}

// settledBy selects the follow-up events that settle the First event a:
// same profile and key, at or after it (and within, when set). The First
// event itself never settles itself, even when the follow-up selector
// would pick it too.
func (c *compiler) settledBy(alias string, next KeyedSelector, seq *Sequence) (expr, error) {
	s, err := newScope(c.d, alias, next.Key)
	if err != nil {
		return expr{}, err
	}
	itself := and(scope{d: c.d, alias: alias}.selects(seq.First.Selector),
		c.hasKey(alias, seq.First.Key, raw("a.k")))
	parts := []expr{
		raw(alias + ".profile_id = a.profile_id AND " + alias + ".ts_ms >= a.at"),
		q("("+alias+".ts_ms > a.at OR NOT %s)", c.d.falseIfNull(itself)),
		q(alias+".ts_ms <= %s", val(c.now)),
		s.selects(next.Selector),
	}
	if seq.Within > 0 {
		parts = append(parts, q(alias+".ts_ms <= a.at + %s",
			val(time.Duration(seq.Within).Milliseconds())))
	}
	if next.Key != "" {
		parts = append(parts, q("%s = a.k", c.d.text(s.ref(next.Key))))
	}
	return q("SELECT 1 FROM %s WHERE %s", s.from(), and(parts...)), nil
}

// hasKey holds when the event alias has k at path (in some element, for a
// path through an array); with no path every event has the empty key.
func (c *compiler) hasKey(alias string, path Path, k expr) expr {
	if path == "" {
		return raw("1 = 1")
	}
	if path.arrayKey() == "" {
		return q("%s = %s", c.d.text(c.d.property(alias, strings.Split(string(path), "."))), k)
	}
	array, _ := path.split()
	elem := alias + "_self"
	inner := scope{d: c.d, alias: alias, elem: elem, array: array}
	return q("EXISTS (SELECT 1 FROM (SELECT 1 AS one) AS "+elem+"_src %s WHERE %s = %s)",
		c.d.eachElement(alias, elem, array), c.d.text(inner.ref(path)), k)
}

// aggregate computes the function over the selected events' values, in the
// window or since the latest anchor event, and compares it.
func (c *compiler) aggregate(name string, a *Aggregate) (expr, map[string]output, error) {
	var unitPath Path
	if a.Units != nil {
		unitPath = a.Units.Property
	}
	s, err := newScope(c.d, "e", a.Property, unitPath)
	if err != nil {
		return expr{}, nil, err
	}
	value := c.aggregateValue(s, a)
	round := 2
	if a.Round != nil {
		round = *a.Round
	}
	outputs := map[string]output{
		"value": {value: raw(name + ".v"), kind: kindNumber, round: round},
	}
	switch a.Function {
	case "count", "distinct_count":
		outputs["value"] = output{value: c.valueOrZero(name, a.Function), kind: kindInt}
	case "sum":
		outputs["value"] = output{value: c.valueOrZero(name, a.Function),
			kind: kindNumber, round: round}
	}

	if a.SinceLatest == nil {
		c.addCTE(name, q("SELECT e.profile_id, %s AS v FROM %s WHERE %s GROUP BY e.profile_id",
			value, s.from(), and(s.selects(a.Selector), c.window("e.ts_ms", a.Window),
				c.inShare("e.profile_id"))))
		return compare(c.valueOrZero(name, a.Function), a.Compare), outputs, nil
	}

	captures := c.anchor(name+"_anchor", a.SinceLatest)
	selected := []expr{raw("anchor.profile_id, anchor.at")}
	for _, cap := range captures {
		selected = append(selected, raw("anchor."+cap.column))
		outputs["anchor."+string(cap.path)] = output{value: raw(name + "." + cap.column),
			kind: kindText}
	}
	outputs["anchor_at"] = output{value: raw(name + ".at"), kind: kindTime}
	since := q("(SELECT %s FROM %s WHERE %s)", value, s.from(), and(
		raw("e.profile_id = anchor.profile_id AND e.ts_ms > anchor.at"),
		q("e.ts_ms <= %s", val(c.now)), s.selects(a.Selector)))
	// Grouped by every column, though each profile has one anchor: the
	// grouping tells SQLite's planner the table is keyed by profile, so it
	// indexes it for the join to profiles instead of scanning it once per
	// profile, and it keeps the table whole, so v is computed once per
	// anchor rather than once per place the outer query reads it.
	c.addCTE(name, q("SELECT %s, %s AS v FROM "+name+"_anchor anchor GROUP BY %s",
		join(selected, ", "), since, join(selected, ", ")))
	return and(raw(name+".profile_id IS NOT NULL"),
		compare(c.valueOrZero(name, a.Function), a.Compare)), outputs, nil
}

// aggregateValue is the SQL aggregate of the function over the scope.
func (c *compiler) aggregateValue(s scope, a *Aggregate) expr {
	if a.Function == "count" {
		return raw("COUNT(*)")
	}
	if a.Function == "distinct_count" {
		return q("COUNT(DISTINCT %s)", c.d.text(s.ref(a.Property)))
	}

	number := c.d.number(s.ref(a.Property))
	if a.Units != nil {
		number = q("(%s * %s)", number, c.unitFactor(s, a.Units))
	}
	switch a.Function {
	case "sum":
		return c.d.total(number)
	case "avg":
		return c.d.average(number)
	case "min":
		return q("MIN(%s)", number)
	}
	return q("MAX(%s)", number)
}

// unitFactor is the factor for the unit each event names; units are
// compared with A-Z folded, and an unknown unit keeps its value.
func (c *compiler) unitFactor(s scope, u *Units) expr {
	units := make([]string, 0, len(u.Factors))
	for unit := range u.Factors {
		units = append(units, unit)
	}
	sort.Strings(units)
	cases := make([]expr, len(units))
	for i, unit := range units {
		cases[i] = q("WHEN %s THEN %s", val(foldASCII(unit)), val(u.Factors[unit]))
	}
	return q("(CASE %s %s ELSE 1.0 END)",
		c.d.fold(q("trim(%s)", c.d.text(s.ref(u.Property)))), join(cases, " "))
}

// valueOrZero is the leaf's value where a profile without events counts
// as 0 (count and sums) and as no value (averages, minimum, maximum).
func (c *compiler) valueOrZero(name, function string) expr {
	switch function {
	case "count", "sum", "distinct_count":
		return raw("COALESCE(" + name + ".v, 0)")
	}
	return raw(name + ".v")
}

// capture is an anchor property kept as an attribute.
type capture struct {
	path   Path
	column string
}

// anchor adds a table of each profile's latest event matching sel, with
// every property any attribute reads from it. What attributes read never
// changes which event is the anchor.
func (c *compiler) anchor(name string, sel *Selector) []capture {
	s := scope{d: c.d, alias: "e"}
	selected := []expr{raw("e.profile_id, e.ts_ms AS at")}
	var captures []capture
	for i, p := range c.anchorPaths() {
		cap := capture{path: p, column: fmt.Sprintf("cap%d", i)}
		captures = append(captures, cap)
		selected = append(selected, q("%s AS "+cap.column, c.captured(s, sel, p, i)))
	}
	selected = append(selected, raw("ROW_NUMBER() OVER (PARTITION BY e.profile_id "+
		"ORDER BY e.ts_ms DESC, e.id DESC) AS rn"))
	c.addCTE(name, q("SELECT * FROM (SELECT %s FROM %s WHERE %s) ranked WHERE rn = 1",
		join(selected, ", "), s.from(), and(s.selects(*sel), c.window("e.ts_ms", Window{}),
			c.inShare("e.profile_id"))))
	return captures
}

// captured reads p from the anchor event as text. A path through an array
// reads the first element, in array order, that passes the selector's
// filters on that array (the shoe among the products of the order that
// made the purchase a shoe purchase), so every capture through one array
// reads one element.
func (c *compiler) captured(s scope, sel *Selector, p Path, n int) expr {
	if p.arrayKey() == "" {
		return c.d.text(s.ref(p))
	}
	array, _ := p.split()
	elem := fmt.Sprintf("e_cap%d", n)
	inner := scope{d: c.d, alias: s.alias, elem: elem, array: array}
	var tests []expr
	for _, f := range sel.Where {
		if f.Property.arrayKey() == p.arrayKey() {
			tests = append(tests, filterExpr(c.d, f, inner.ref(f.Property)))
		}
	}
	return q("(SELECT %s FROM (SELECT 1 AS one) AS "+elem+"_src %s WHERE %s ORDER BY "+
		c.d.elementOrder(elem)+" LIMIT 1)",
		c.d.text(inner.ref(p)), c.d.eachElement(s.alias, elem, array), and(tests...))
}

// anchorPaths are the paths the current leaf's attributes read from its
// anchor; leaf sets them before compiling.
func (c *compiler) anchorPaths() []Path { return c.pendingAnchor }

// traitSep joins the steps of a nested trait's stored key, as the resolver
// stores them.
const traitSep = "\x1f"

// trait holds when the profile's trait passes the filter, reading traits
// as the profile shows them: a field replaced or removed by a newer write
// above or below it no longer counts. exists holds for a nested object
// too, and exists: false holds when the trait is absent.
func (c *compiler) trait(name string, f *Filter) (expr, map[string]output) {
	key := strings.ReplaceAll(f.Key, ".", traitSep)
	test := *f
	absent := f.Exists != nil && !*f.Exists
	if absent {
		yes := true
		test.Exists = &yes
	}

	rows := q("t.key = %s", val(key))
	if test.Exists != nil {
		// An object is stored as its fields, under the key.
		prefix := key + traitSep
		rows = q("(%s OR substr(t.key, 1, %s) = %s)", rows,
			val(utf8.RuneCountInString(prefix)), val(prefix))
	}
	c.addCTE(name, q("SELECT t.profile_id, MAX(CASE WHEN t.key = %s THEN t.value END) AS v "+
		"FROM traits t WHERE %s AND %s AND %s GROUP BY t.profile_id",
		val(key), rows, c.traitVisible(), and(filterExpr(c.d, test, c.d.trait("t")),
			c.inShare("t.profile_id"))))

	holds := raw(name + ".profile_id IS NOT NULL")
	if absent {
		holds = raw(name + ".profile_id IS NULL")
	}
	return holds, map[string]output{"value": {value: raw(name + ".v"), kind: kindJSON}}
}

// traitVisible holds for a traits row t that no newer write replaced: no
// row above it (an ancestor) or below it (a field under it) is newer.
func (c *compiler) traitVisible() expr {
	return q("NOT EXISTS (SELECT 1 FROM traits o WHERE o.profile_id = t.profile_id "+
		"AND o.ts_ms > t.ts_ms AND (substr(o.key, 1, length(t.key) + 1) = t.key || %s "+
		"OR substr(t.key, 1, length(o.key) + 1) = o.key || %s))",
		val(traitSep), val(traitSep))
}

// inAudience holds for members of the other audience's latest result.
func (c *compiler) inAudience(name, audience string) (expr, map[string]output) {
	c.addCTE(name, q("SELECT profile_id FROM audience_members WHERE %s",
		and(q("audience = %s", val(audience)), c.inShare("profile_id"))))
	return raw(name + ".profile_id IS NOT NULL"), nil
}

// compare holds when value passes every bound set.
func compare(value expr, b Compare) expr {
	var parts []expr
	bound := func(op string, limit *float64) {
		if limit != nil {
			parts = append(parts, q("%s "+op+" %s", value, val(*limit)))
		}
	}
	bound(">", b.GreaterThan)
	bound(">=", b.AtLeast)
	bound("<", b.LessThan)
	bound("<=", b.AtMost)
	return and(parts...)
}

// filterExpr is the SQL test of one filter on the value r addresses.
func filterExpr(d dialect, f Filter, r jsonRef) expr {
	text := d.text(r)
	fold := func(e expr) expr {
		if f.IgnoreCase {
			return d.fold(e)
		}
		return e
	}
	equals := func(v any) expr {
		if n, ok := numeric(v); ok {
			return q("%s = %s", d.number(r), val(n))
		}
		return q("%s = %s", fold(text), fold(val(scalarText(v))))
	}
	// oneOf compares with IN lists, which stay shallow however long.
	oneOf := func(values []any) expr {
		var numbers, texts []expr
		for _, v := range values {
			if n, ok := numeric(v); ok {
				numbers = append(numbers, val(n))
			} else {
				texts = append(texts, fold(val(scalarText(v))))
			}
		}
		var tests []expr
		if len(numbers) > 0 {
			tests = append(tests, q("%s IN (%s)", d.number(r), join(numbers, ", ")))
		}
		if len(texts) > 0 {
			tests = append(tests, q("%s IN (%s)", fold(text), join(texts, ", ")))
		}
		return q("(%s)", join(tests, " OR "))
	}

	switch {
	case f.Equals != nil:
		return equals(f.Equals)
	case f.NotEquals != nil:
		return q("(%s AND NOT %s)", d.present(r), d.falseIfNull(equals(f.NotEquals)))
	case f.OneOf != nil:
		return oneOf(f.OneOf)
	case f.Contains != nil:
		return d.containsText(fold(text), fold(val(*f.Contains)))
	case f.StartsWith != nil:
		return d.startsWith(fold(text), fold(val(*f.StartsWith)))
	case f.Exists != nil:
		if *f.Exists {
			return d.present(r)
		}
		return q("(NOT %s)", d.present(r))
	}
	return compare(d.number(r), f.Compare)
}

// numeric reads a YAML number: whole numbers stay exact integers, so a
// large id compares digit for digit.
func numeric(v any) (any, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int64:
		return n, true
	case uint64:
		if n > math.MaxInt64 {
			return float64(n), true
		}
		return int64(n), true
	case float64:
		return n, true
	}
	return nil, false
}

// foldASCII lowers A-Z only, as the SQL side folds text.
func foldASCII(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return r
	}, s)
}
