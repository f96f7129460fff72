package resolver

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"
)

// The widest number knit stores in properties and traits, written out in
// full: PostgreSQL's numeric, which jsonb uses, holds no more, and one
// event holding a wider number made every audience that reads its
// properties fail there. SQLite would read it, but a database must be
// movable between the engines.
const (
	maxWholeDigits    = 131072
	maxFractionDigits = 16383
)

// numberFits reports whether the JSON number n, written out in full, has at
// most maxWholeDigits significant digits before the point and at most
// maxFractionDigits after it (trailing zeros count, as in PostgreSQL). It
// allocates nothing: every message's numbers pass through it.
func numberFits(n json.Number) bool {
	if len(n) <= 300 && !strings.ContainsAny(string(n), "eE") {
		return true // at most 300 digits either side of the point
	}
	mantissa, exponent := strings.TrimPrefix(string(n), "-"), 0
	if i := strings.IndexAny(mantissa, "eE"); i >= 0 {
		e, err := strconv.Atoi(mantissa[i+1:])
		if err != nil {
			return false
		}
		mantissa, exponent = mantissa[:i], e
	}
	whole, fraction, _ := strings.Cut(mantissa, ".")
	digits := len(whole) + len(fraction)
	point := len(whole) + exponent
	if digits-point > maxFractionDigits {
		return false
	}

	leadingZeros := len(whole) - len(strings.TrimLeft(whole, "0"))
	if leadingZeros == len(whole) {
		leadingZeros += len(fraction) - len(strings.TrimLeft(fraction, "0"))
	}
	if leadingZeros == digits {
		return true // zero
	}
	return point-leadingZeros <= maxWholeDigits
}

// anyTooWide reports whether a number under v fails numberFits, without
// building the paths checkNumbers names.
func anyTooWide(v any) bool {
	switch v := v.(type) {
	case json.Number:
		return !numberFits(v)
	case []any:
		for _, item := range v {
			if anyTooWide(item) {
				return true
			}
		}
	case map[string]any:
		for _, item := range v {
			if anyTooWide(item) {
				return true
			}
		}
	}
	return false
}

// checkNumbers returns an EInvalid error naming the first number under v,
// in key order, that numberFits refuses; path names v in the message.
func checkNumbers(path string, v any) error {
	if !anyTooWide(v) {
		return nil
	}
	return firstTooWide(path, v)
}

// firstTooWide is checkNumbers's walk in key order, building each path.
func firstTooWide(path string, v any) error {
	switch v := v.(type) {
	case json.Number:
		if !numberFits(v) {
			return Errorf(EInvalid, "%s holds the number %s, too wide to store: knit keeps "+
				"at most %d digits before the point and %d after", path, excerpt(string(v)),
				maxWholeDigits, maxFractionDigits)
		}
	case []any:
		for i, item := range v {
			if err := firstTooWide(path+"["+strconv.Itoa(i)+"]", item); err != nil {
				return err
			}
		}
	case map[string]any:
		keys := make([]string, 0, len(v))
		for key := range v {
			keys = append(keys, key)
		}
		sort.Strings(keys)
		for _, key := range keys {
			if err := firstTooWide(path+"."+key, v[key]); err != nil {
				return err
			}
		}
	}
	return nil
}

// excerpt is s, or its first 40 bytes and an ellipsis when longer.
func excerpt(s string) string {
	if len(s) <= 40 {
		return s
	}
	return s[:40] + "…"
}
