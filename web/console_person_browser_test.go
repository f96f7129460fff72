package web_test

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// checkJanesProfile checks the profile page the tab shows is Jane's, across
// both apps.
func checkJanesProfile(t *testing.T, ctx context.Context) {
	t.Helper()
	if h1 := mustText(t, ctx, "main h1"); !strings.HasSuffix(h1, " · Jane Doe") {
		t.Errorf("profile heading = %q, want it to name Jane Doe", h1)
	}
	if summary := mustText(t, ctx, "main h1 + p"); summary !=
		"69 events across 2 app(s): SegKicks, SegRuns" {
		t.Errorf("profile summary = %q", summary)
	}

	ids := map[string][]string{}
	apps := map[string]bool{}
	for _, row := range mustRows(t, ctx, "main section:nth-of-type(1)") {
		ids[row[0]] = append(ids[row[0]], row[1])
		apps[row[3]] = true
	}
	want := map[string][]string{
		"user_id": {"abc123def"}, "email": {"janedoe@example.com"},
		"anonymous_id": {"anon_123", "anon_456", "anon_789"},
		"ios.id":       {"ios_abc123"}, "android.id": {"and_1a2b3c4d"},
	}
	for kind, values := range want {
		if !slices.Equal(ids[kind], values) {
			t.Errorf("identifiers %s = %q, want %q", kind, ids[kind], values)
		}
	}
	if len(ids) != len(want) {
		t.Errorf("identifiers = %q, want exactly %q", ids, want)
	}
	if !apps["SegKicks"] || !apps["SegRuns"] {
		t.Errorf("identifier apps = %v, want SegKicks and SegRuns", apps)
	}

	traits := map[string]string{}
	for _, row := range mustRows(t, ctx, "main section:nth-of-type(2)") {
		traits[row[0]] = row[1]
	}
	for key, value := range map[string]string{
		"email": "janedoe@example.com", "first_name": "Jane", "last_name": "Doe",
	} {
		if traits[key] != value {
			t.Errorf("trait %s shows %q, want %q", key, traits[key], value)
		}
	}

	if note := mustText(t, ctx, "main section:nth-of-type(3) p"); note != "The latest 50 of 69." {
		t.Errorf("latest events note = %q, want The latest 50 of 69.", note)
	}
	seen := map[string]bool{}
	for _, row := range mustRows(t, ctx, "table.events") {
		seen[row[1]+" in "+row[2]] = true
	}
	for _, want := range []string{"Workout Completed in SegRuns", "Order Completed in SegKicks"} {
		if !seen[want] {
			t.Errorf("latest events lack %s; they show %v", want, seen)
		}
	}

	history := mustText(t, ctx, "main section:nth-of-type(4)")
	for _, want := range []string{"created for message jane-001",
		"Added user_id abc123def from message jane-006"} {
		if !strings.Contains(history, want) {
			t.Errorf("identity history lacks %q:\n%s", want, history)
		}
	}
}
