package resolver

import (
	"regexp"
	"testing"
	"time"
)

func TestTypeRulesListEveryTypeMostTrustedFirst(t *testing.T) {
	rules := DefaultRules()
	rules.Priority = []string{"user_id", "email"}
	rules.Limits["email"] = 3
	rules.Windows = map[string]time.Duration{"anonymous_id": 7 * 24 * time.Hour}
	rules.Custom = []CustomType{{Type: "loyalty_id", Keys: []string{"loyalty"},
		Normaliser: "lower"}}
	rules.BlockedByType = map[string][]string{"email": {"test@acme.test"}}
	rules.BlockedPatterns = []*regexp.Regexp{regexp.MustCompile("^test-")}

	got := rules.TypeRules()
	if got[0].Type != "user_id" || got[1].Type != "email" || got[1].Rank != 2 {
		t.Fatalf("first types %+v, want user_id then email", got[:2])
	}
	byType := map[string]TypeRule{}
	for _, r := range got {
		byType[r.Type] = r
	}
	if r := byType["email"]; r.Limit != 3 || len(r.Blocked) != 1 {
		t.Errorf("email rule %+v", r)
	}
	if r := byType["anonymous_id"]; r.Window != 7*24*time.Hour {
		t.Errorf("anonymous_id rule %+v, want a weekly window", r)
	}
	if r := byType["loyalty_id"]; r.Normaliser != "lower" || len(r.Keys) != 1 {
		t.Errorf("loyalty_id rule %+v", r)
	}
	if blocks := rules.GlobalBlocks(); len(blocks) != 1 || blocks[0] != "/^test-/" {
		t.Errorf("global blocks %v", blocks)
	}
}
