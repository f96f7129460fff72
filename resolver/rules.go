package resolver

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
)

// Rules are the identity resolution settings: how many values of each type
// a profile may hold and within which time window, which types win when a
// limit would be broken, which values never count as identifiers, which
// custom identifier types to read, and the hard caps.
type Rules struct {
	// Limits caps the values of one type on a profile; DefaultLimit applies
	// to types not listed.
	Limits       map[string]int
	DefaultLimit int
	// Windows makes a type's limit count only values seen within that long
	// before the message; a type without a window counts every value ever.
	Windows map[string]time.Duration
	// Priority lists types from most to least trusted; unlisted types rank
	// after them, alphabetically.
	Priority []string
	// BlockedValues are extra values (case-insensitive) that are never
	// identifiers of any type, on top of the built-in junk list;
	// BlockedPatterns are regular expressions for the same.
	BlockedValues   []string
	BlockedPatterns []*regexp.Regexp
	// BlockedByType and BlockedPatternsByType block values of one type only.
	BlockedByType         map[string][]string
	BlockedPatternsByType map[string][]*regexp.Regexp
	// Custom declares identifier types read from trait and property keys.
	Custom []CustomType
	// AliasMerges lets an alias call's previousId join its userId, under
	// the same merge protection as any message (the default); false is
	// Unify's behaviour, where alias merges nothing.
	AliasMerges bool
	// MaxMerges and MaxIdentifiers are the hard caps of one profile: at a
	// cap the message still lands on the profile and the cap is recorded.
	MaxMerges      int
	MaxIdentifiers int
}

// CustomType is an identifier type read from message keys.
type CustomType struct {
	Type string
	// Keys are looked up in context.traits, identify traits and event
	// properties; list both spellings (loyalty_id, loyaltyId) when needed.
	Keys []string
	// Normaliser is "none" (trim), "lower", "email" or "phone".
	Normaliser string
}

// Windows by the names the configuration uses.
var frequencies = map[string]time.Duration{
	"ever": 0, "annually": 365 * 24 * time.Hour, "monthly": 30 * 24 * time.Hour,
	"weekly": 7 * 24 * time.Hour, "daily": 24 * time.Hour,
}

// Frequency turns a configured frequency name into a window; false for an
// unknown name.
func Frequency(name string) (time.Duration, bool) {
	window, ok := frequencies[strings.ToLower(strings.TrimSpace(name))]
	return window, ok
}

// builtinTypes are the identifier types knit reads without configuration.
var builtinTypes = []string{
	TypeUserID, TypeAnonymousID, TypeEmail, TypeGAClientID,
	"ios.id", "ios.idfa", "ios.push_token",
	"android.id", "android.idfa", "android.push_token",
}

// DefaultRules returns Segment Unify's defaults: one user_id and five of
// every other type, counted ever; user_id, then email, then the rest
// alphabetically; caps of 100 merges and 1,000 identifiers a profile. Alias
// calls merge under merge protection, which Unify does not do.
func DefaultRules() Rules {
	return Rules{
		Limits:         map[string]int{TypeUserID: 1},
		DefaultLimit:   5,
		Windows:        map[string]time.Duration{},
		Priority:       []string{TypeUserID, TypeEmail},
		BlockedByType:  map[string][]string{},
		AliasMerges:    true,
		MaxMerges:      100,
		MaxIdentifiers: 1000,
	}
}

// Validate reports every contradiction in the rules at once, each naming
// its configuration key.
func (r Rules) Validate() error {
	var problems []string
	add := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf(format, args...))
	}

	if r.DefaultLimit < 1 {
		add("identity.default_limit must be at least 1")
	}
	for kind, limit := range r.Limits {
		if limit < 1 {
			add("identity.types.%s.limit (or identity.limits.%s) must be at least 1, "+
				"got %d", kind, kind, limit)
		}
	}
	known := r.knownTypes()
	seen := map[string]bool{}
	for _, kind := range r.Priority {
		if seen[kind] {
			add("identity.priority lists %q twice", kind)
		}
		if !known[kind] {
			add("identity.priority names %q, which is neither a built-in type nor "+
				"one declared under identity.types", kind)
		}
		seen[kind] = true
	}
	for _, c := range r.Custom {
		if len(c.Keys) == 0 || slices.Contains(c.Keys, "") {
			add("identity.types.%s.keys must name at least one key, none empty", c.Type)
		}
		if slices.Contains(builtinTypes, c.Type) && c.Normaliser != "" {
			add("identity.types.%s.normaliser: a built-in type keeps its own", c.Type)
		}
		if c.Type == "" || strings.ContainsAny(c.Type, ": \t") {
			add("identity.types.%q: a type name needs letters and no colon or space", c.Type)
		}
		if _, ok := normalisers[c.Normaliser]; !ok {
			add("identity.types.%s.normaliser %q is not one of none, lower, email, phone",
				c.Type, c.Normaliser)
		}
	}
	if r.MaxMerges < 1 || r.MaxIdentifiers < 1 {
		add("identity.max_merges and identity.max_identifiers must be at least 1")
	}

	if len(problems) > 0 {
		sort.Strings(problems)
		return Errorf(EInvalid, "%s", strings.Join(problems, "; "))
	}
	return nil
}

// knownTypes are the built-in types, the custom ones and any type given a
// limit, window or block of its own.
func (r Rules) knownTypes() map[string]bool {
	known := map[string]bool{}
	for _, kind := range builtinTypes {
		known[kind] = true
	}
	for _, c := range r.Custom {
		known[c.Type] = true
	}
	for kind := range r.Limits {
		known[kind] = true
	}
	for kind := range r.Windows {
		known[kind] = true
	}
	return known
}

// Limit returns how many values of kind a profile may hold.
func (r Rules) Limit(kind string) int {
	if limit, ok := r.Limits[kind]; ok {
		return limit
	}
	return r.DefaultLimit
}

// less orders identifier types from most to least trusted.
func (r Rules) less(a, b string) bool {
	ra, rb := r.rank(a), r.rank(b)
	if ra != rb {
		return ra < rb
	}
	return a < b
}

func (r Rules) rank(kind string) int {
	for i, listed := range r.Priority {
		if listed == kind {
			return i
		}
	}
	return len(r.Priority)
}

// junkValues are never identifiers: placeholders that broken clients send.
var junkValues = map[string]bool{
	"null": true, "undefined": true, "none": true, "nan": true,
	"anonymous": true, "[object object]": true, "-1": true,
	"true": true, "false": true,
}

var zerosAndDashes = regexp.MustCompile(`^[0-]*$`)

// Blocked reports whether value must never be used as an identifier of any
// type: blank, junk, only zeros and dashes, control characters (NUL
// included), U+FFFD, or blocked by the configuration.
func (r Rules) Blocked(value string) bool {
	return r.blockedReason("", value) != ""
}

// blockedReason says why value is not an identifier of type kind, or ""
// when it is one.
func (r Rules) blockedReason(kind, value string) string {
	trimmed := strings.TrimSpace(value)
	switch {
	case strings.TrimFunc(value, invisible) == "":
		return "blank"
	case strings.ContainsFunc(value, unicode.IsControl):
		return "control characters"
	case strings.ContainsRune(value, unicode.ReplacementChar):
		// Parsing puts U+FFFD in place of a NUL or a lone surrogate: the
		// value was damaged, and two damaged values would look the same.
		return "a replacement character (U+FFFD)"
	case junkValues[strings.ToLower(trimmed)] || zerosAndDashes.MatchString(trimmed):
		return "a junk placeholder"
	case matchesValue(trimmed, r.BlockedValues) || matchesPattern(trimmed, r.BlockedPatterns):
		return "blocked by identity.blocked"
	case matchesValue(trimmed, r.normaliseAll(kind, r.BlockedByType[kind])) ||
		matchesPattern(trimmed, r.BlockedPatternsByType[kind]):
		return "blocked by identity.types." + kind + ".blocked"
	}
	return ""
}

// invisible is true for white space and format characters (zero-width
// spaces, byte-order marks), which make no identifier on their own.
func invisible(c rune) bool { return unicode.IsSpace(c) || unicode.Is(unicode.Cf, c) }

// normaliseAll brings configured values to the form values of kind are
// stored in, so a block written "+1 555 010 0000" matches +15550100000.
func (r Rules) normaliseAll(kind string, values []string) []string {
	out := make([]string, 0, len(values))
	for _, v := range values {
		if n := r.normalise(kind, v); n != "" {
			out = append(out, n)
		}
	}
	return out
}

func matchesValue(value string, list []string) bool {
	for _, blocked := range list {
		if strings.EqualFold(strings.TrimSpace(blocked), value) {
			return true
		}
	}
	return false
}

func matchesPattern(value string, patterns []*regexp.Regexp) bool {
	for _, p := range patterns {
		if p.MatchString(value) {
			return true
		}
	}
	return false
}
