package resolver

import (
	"sort"
	"time"
)

// TypeRule is the rule in force for one identifier type, as people read
// it: how many values a profile may hold and over what window, how much
// the type is trusted, where custom values come from, and what is blocked.
type TypeRule struct {
	Type  string
	Limit int
	// Window is how far back the limit counts; 0 counts every value ever.
	Window time.Duration
	// Rank is the type's place in the priority order, from 1.
	Rank       int
	Keys       []string
	Normaliser string
	Blocked    []string
}

// TypeRules lists the rule of every known type, most trusted first.
func (r Rules) TypeRules() []TypeRule {
	var kinds []string
	for kind := range r.knownTypes() {
		kinds = append(kinds, kind)
	}
	sort.Slice(kinds, func(i, j int) bool { return r.less(kinds[i], kinds[j]) })

	custom := map[string]CustomType{}
	for _, c := range r.Custom {
		custom[c.Type] = c
	}
	out := make([]TypeRule, len(kinds))
	for i, kind := range kinds {
		rule := TypeRule{Type: kind, Limit: r.Limit(kind), Window: r.Windows[kind],
			Rank: i + 1, Keys: custom[kind].Keys, Normaliser: custom[kind].Normaliser}
		rule.Blocked = append(rule.Blocked, r.BlockedByType[kind]...)
		for _, p := range r.BlockedPatternsByType[kind] {
			rule.Blocked = append(rule.Blocked, "/"+p.String()+"/")
		}
		out[i] = rule
	}
	return out
}

// GlobalBlocks lists the values and /patterns/ blocked for every type, on
// top of the built-in junk list.
func (r Rules) GlobalBlocks() []string {
	blocked := append([]string{}, r.BlockedValues...)
	for _, p := range r.BlockedPatterns {
		blocked = append(blocked, "/"+p.String()+"/")
	}
	return blocked
}
