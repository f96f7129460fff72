package resolver_test

import (
	"context"
	"strings"
	"testing"

	"github.com/knit-cdp/knit/resolver"
)

func TestHistoryExplainsEveryDecision(t *testing.T) {
	db, store := mustResolverStore(t)
	mustIngestEach(t, store,
		`{"type":"track","messageId":"m1","anonymousId":"a1","event":"E"}`,
		`{"type":"track","messageId":"m2","userId":"u1","event":"E"}`,
		`{"type":"identify","messageId":"m3","userId":"u1","anonymousId":"a1",
		  "traits":{"email":" Jane@Example.com "}}`,
		`{"type":"identify","messageId":"m4","userId":"u2","anonymousId":"a1"}`,
		`{"type":"track","messageId":"m5","userId":"u1","anonymousId":"undefined","event":"E"}`)

	profiles := resolver.NewProfiles(db)
	jane, err := profiles.Find(context.Background(), resolver.Identifier{Type: "user_id", Value: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	history, err := profiles.History(context.Background(), jane)
	if err != nil {
		t.Fatal(err)
	}

	var lines []string
	for _, d := range history {
		lines = append(lines, d.Explain())
	}
	text := strings.Join(lines, "\n")
	for _, want := range []string{
		"Profile 1 created for message m1, which carried anonymous_id:a1.",
		"Profile 2 created for message m2, which carried user_id:u1.",
		"Merged with profile 2 because message m3 tied them: " +
			"anonymous_id:a1 was on profile 1 and user_id:u1 on profile 2.",
		"Added email jane@example.com from message m3",
		"Ignored anonymous_id undefined in message m5: a blocked value",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("history lacks %q:\n%s", want, text)
		}
	}

	u2, err := profiles.Find(context.Background(), resolver.Identifier{Type: "user_id", Value: "u2"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := profiles.History(context.Background(), u2)
	if err != nil {
		t.Fatal(err)
	}
	var otherText []string
	for _, d := range other {
		otherText = append(otherText, d.Explain())
	}
	want := "Did not add anonymous_id a1 from message m4: at most 1 user_id on a profile"
	if !strings.Contains(strings.Join(otherText, "\n"), want) {
		t.Errorf("u2's history lacks %q:\n%s", want, strings.Join(otherText, "\n"))
	}
}
