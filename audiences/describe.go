package audiences

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Summary says in one plain-English sentence who belongs to the audience,
// for people who do not read YAML, such as "People with an email who
// performed Order Completed at least 2 times within 90 days." It reads the
// definition only and never fails; a definition without a condition reads
// "No condition is set.".
func (d Definition) Summary() string {
	if d.Condition == nil {
		return "No condition is set."
	}
	who := "People"
	switch {
	case d.NeedsEmail():
		who = "People with an email"
	case d.IncludeAnonymous:
		who = "Anyone, anonymous visitors too,"
	}
	return who + " who " + sayCondition(d.Condition, false) + "."
}

// sayCondition reads one node as a phrase that follows "who"; nested says
// whether it stands inside a combination, where a combination of its own
// needs parentheses.
func sayCondition(c *Condition, nested bool) string {
	switch {
	case c.And != nil:
		return sayGroup(c.And, " and ", nested)
	case c.Or != nil:
		return sayGroup(c.Or, " or ", nested)
	case c.Not != nil:
		return "do not match (" + sayCondition(c.Not, false) + ")"
	case c.Performed != nil:
		return "performed " + sayPerformed(*c.Performed)
	case c.NotPerformed != nil:
		return sayNotPerformed(*c.NotPerformed)
	case c.ThenNot != nil:
		return saySequence(*c.ThenNot)
	case c.Aggregate != nil:
		return sayAggregate(*c.Aggregate)
	case c.Trait != nil:
		return sayTrait(*c.Trait)
	case c.InAudience != "":
		return "are in the " + c.InAudience + " audience"
	}
	return "match an empty condition"
}

func sayGroup(children []Condition, joiner string, nested bool) string {
	if len(children) == 1 {
		return sayCondition(&children[0], nested)
	}
	parts := make([]string, len(children))
	for i := range children {
		parts[i] = sayCondition(&children[i], true)
	}
	text := strings.Join(parts, joiner)
	if nested {
		return "(" + text + ")"
	}
	return text
}

// sayPerformed reads "Order Completed where total is at least 100 at least
// 2 times within 90 days".
func sayPerformed(p Performed) string {
	return joinWords(saySelector(p.Selector), sayCounts(p.Counts), sayWindow(p.Window))
}

func sayNotPerformed(p Performed) string {
	if p.Within == 0 && p.Between == nil {
		return "never performed " + saySelector(p.Selector)
	}
	return joinWords("did not perform", saySelector(p.Selector), sayWindow(p.Window))
}

func saySequence(s Sequence) string {
	var follow []string
	for _, next := range s.NotFollowedBy {
		follow = append(follow, saySelector(next.Selector))
	}
	text := joinWords("performed", saySelector(s.First.Selector),
		sayWindow(Window{Between: s.Between}), "and did not follow it with",
		strings.Join(follow, " or "))
	if s.First.Key != "" {
		text += " for the same " + string(s.First.Key)
	}
	if s.Within != 0 {
		text += " within " + sayDuration(time.Duration(s.Within)) + " after it"
	}
	return text
}

// sayAggregate reads "have a total distance of at least 300 across Workout
// Completed since their latest Order Completed".
func sayAggregate(a Aggregate) string {
	events := saySelector(a.Selector)
	when := sayWindow(a.Window)
	if a.SinceLatest != nil {
		when = "since their latest " + saySelector(*a.SinceLatest)
	}
	if a.Function == "count" {
		return joinWords("have", sayBounds(a.Compare), events, "events", when)
	}
	measure := sayMeasure(a.Function, string(a.Property))
	if a.Units != nil {
		measure += " (converting " + sayUnits(*a.Units) + ")"
	}
	return joinWords("have", measure, "of", sayBounds(a.Compare), "across", events, when)
}

// sayMeasure names what an aggregate computes: "a total distance".
func sayMeasure(function, property string) string {
	switch function {
	case "sum":
		return "a total " + property
	case "avg":
		return "an average " + property
	case "min":
		return "a smallest " + property
	case "max":
		return "a largest " + property
	case "distinct_count":
		return "a number of different " + property + " values"
	}
	return "a " + function + " of " + property
}

func sayUnits(u Units) string {
	units := make([]string, 0, len(u.Factors))
	for unit := range u.Factors {
		units = append(units, unit)
	}
	sort.Strings(units)
	return "values in " + strings.Join(units, ", ") + ", per " + string(u.Property)
}

func sayTrait(f Filter) string {
	if f.Exists != nil {
		if *f.Exists {
			return "have a " + f.Key + " trait"
		}
		return "have no " + f.Key + " trait"
	}
	return "have a " + f.Key + " trait that " + sayTest(f)
}

// saySelector reads "Order Completed where total is at least 100 and
// currency equals "USD"".
func saySelector(s Selector) string {
	if len(s.Where) == 0 {
		return s.Event
	}
	tests := make([]string, len(s.Where))
	for i, f := range s.Where {
		tests[i] = string(f.Property) + " " + sayTest(f)
	}
	return s.Event + " where " + strings.Join(tests, " and ")
}

// sayTest reads a filter's test as a verb phrase: "equals "Shoes"
// (ignoring case)", "is one of 1, 2", "is set".
func sayTest(f Filter) string {
	var text string
	switch {
	case f.Equals != nil:
		text = "equals " + sayValue(f.Equals)
	case f.NotEquals != nil:
		text = "does not equal " + sayValue(f.NotEquals)
	case f.OneOf != nil:
		text = "is one of " + sayValues(f.OneOf)
	case f.Contains != nil:
		text = "contains " + strconv.Quote(*f.Contains)
	case f.StartsWith != nil:
		text = "starts with " + strconv.Quote(*f.StartsWith)
	case f.Exists != nil && *f.Exists:
		text = "is set"
	case f.Exists != nil:
		text = "is not set"
	default:
		text = "is " + sayBounds(f.Compare)
	}
	if f.IgnoreCase {
		text += " (ignoring case)"
	}
	return text
}

// sayValues lists values, the first few of a long list and how many more.
func sayValues(values []any) string {
	const shown = 5
	parts := make([]string, 0, shown)
	for _, v := range values[:min(len(values), shown)] {
		parts = append(parts, sayValue(v))
	}
	if len(values) > shown {
		parts = append(parts, fmt.Sprintf("%d more", len(values)-shown))
	}
	return strings.Join(parts, ", ")
}

func sayValue(v any) string {
	if text, ok := v.(string); ok {
		return strconv.Quote(text)
	}
	return fmt.Sprint(v)
}

// sayBounds reads bounds as "at least 10 and less than 20".
func sayBounds(c Compare) string {
	var bounds []string
	for _, b := range []struct {
		words string
		value *float64
	}{
		{"more than", c.GreaterThan}, {"at least", c.AtLeast},
		{"less than", c.LessThan}, {"at most", c.AtMost},
	} {
		if b.value != nil {
			bounds = append(bounds, b.words+" "+sayNumber(*b.value))
		}
	}
	if len(bounds) == 0 {
		return "any number"
	}
	return strings.Join(bounds, " and ")
}

func sayNumber(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// sayCounts reads "at least 2 times"; no count is "at least once", which
// goes without saying.
func sayCounts(c Counts) string {
	switch {
	case c.AtLeast != nil && *c.AtLeast != 1:
		return "at least " + sayTimes(*c.AtLeast)
	case c.Exactly != nil:
		return "exactly " + sayTimes(*c.Exactly)
	case c.AtMost != nil:
		return "at most " + sayTimes(*c.AtMost)
	}
	return ""
}

func sayTimes(n int64) string {
	if n == 1 {
		return "once"
	}
	return strconv.FormatInt(n, 10) + " times"
}

// sayWindow reads "within 90 days" or "between 7 days and 1 hour ago"; all
// time goes without saying.
func sayWindow(w Window) string {
	switch {
	case w.Within != 0:
		return "within " + sayDuration(time.Duration(w.Within))
	case len(w.Between) == 2:
		early, late := w.Between[0], w.Between[1]
		if early < late {
			early, late = late, early
		}
		return "between " + sayDuration(time.Duration(early)) + " and " +
			sayDuration(time.Duration(late)) + " ago"
	}
	return ""
}

// sayDuration reads a duration in its largest whole units: "90 days",
// "1 hour 30 minutes", "45 seconds".
func sayDuration(d time.Duration) string {
	if d <= 0 {
		return "0 seconds"
	}
	var parts []string
	for _, unit := range []struct {
		name string
		size time.Duration
	}{
		{"day", 24 * time.Hour}, {"hour", time.Hour},
		{"minute", time.Minute}, {"second", time.Second},
	} {
		if n := d / unit.size; n > 0 {
			parts = append(parts, pluralUnit(int64(n), unit.name))
			d -= n * unit.size
		}
	}
	if len(parts) == 0 {
		return d.String()
	}
	return strings.Join(parts, " ")
}

func pluralUnit(n int64, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.FormatInt(n, 10) + " " + unit + "s"
}

func joinWords(words ...string) string {
	kept := words[:0:0]
	for _, w := range words {
		if w != "" {
			kept = append(kept, w)
		}
	}
	return strings.Join(kept, " ")
}
