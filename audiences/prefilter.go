package audiences

import "strings"

// numberOrBooleanChars are every character, A-Z folded, that the text of a
// JSON number or boolean can hold on either engine: digits, sign, point,
// exponent, SQLite's "Inf" and "NaN" for doubles out of range, "true" and
// "false".
const numberOrBooleanChars = "0123456789.+-einfatruls"

// rawNeedles are the texts one of which an event's properties, as stored,
// must hold for f to pass on a string written without escapes: the text
// compared (equals, one_of, contains, starts_with), A-Z folded when f
// ignores case. ok is false where no such text exists or where f could
// also pass on a number or boolean, whose text need not appear as JSON
// writes it (1e2 reads "100").
func rawNeedles(f Filter) (needles []string, ok bool) {
	var texts []string
	switch {
	case f.Equals != nil:
		texts = []string{scalarText(f.Equals)}
		_, number := numeric(f.Equals)
		ok = !number
	case f.OneOf != nil:
		ok = true
		for _, v := range f.OneOf {
			_, number := numeric(v)
			ok = ok && !number
			texts = append(texts, scalarText(v))
		}
	case f.Contains != nil:
		texts, ok = []string{*f.Contains}, true
	case f.StartsWith != nil:
		texts, ok = []string{*f.StartsWith}, true
	}

	for _, text := range texts {
		folded := foldASCII(text)
		if !strings.ContainsFunc(folded, notNumberOrBoolean) {
			return nil, false
		}
		if f.IgnoreCase {
			text = folded
		}
		needles = append(needles, text)
	}
	return needles, ok && len(needles) > 0
}

func notNumberOrBoolean(r rune) bool {
	return !strings.ContainsRune(numberOrBooleanChars, r)
}

// prefilter is a cheap condition every event passing f meets, read from
// the properties' stored text before any JSON is parsed: the text holds a
// needle (A-Z folded when f ignores case), or a backslash, behind whose
// escapes a needle may hide. ok is false where rawNeedles finds none.
func (s scope) prefilter(f Filter) (expr, bool) {
	needles, ok := rawNeedles(f)
	if !ok {
		return expr{}, false
	}

	stored := raw(s.alias + ".properties")
	haystack := stored
	if f.IgnoreCase {
		haystack = s.d.fold(stored)
	}
	tests := []expr{s.d.containsText(stored, val(`\`))}
	for _, needle := range needles {
		tests = append(tests, s.d.containsText(haystack, val(needle)))
	}
	return q("(%s)", join(tests, " OR ")), true
}
