package audiences

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
)

// signedUp is an audience of everyone who signed up.
func signedUp(t testing.TB) Definition {
	return mustDefinition(t, `
name: signed_up
condition: {performed: {event: Signed Up}}`)
}

// mustStoreSignup writes a profile with the user_id and email given ("" for
// none) that signed up at testNow.
func mustStoreSignup(t testing.TB, db *sqldb.DB, profile int64, userID, email string) {
	t.Helper()
	mustExec(t, db, `INSERT INTO profiles (id, created_ms, updated_ms) VALUES (?, 0, 0)`,
		profile)
	for _, ident := range [][2]string{{"user_id", userID}, {"email", email}} {
		if ident[1] == "" {
			continue
		}
		mustExec(t, db, `INSERT INTO identities (type, value, profile_id, first_seen_ms,
			first_message_id, source) VALUES (?, ?, ?, 0, 'm', 'test')`,
			ident[0], ident[1], profile)
	}
	mustStoreEvents(t, db, profile, []testEvent{{Name: "Signed Up", Time: ago(time.Hour)}})
}

func TestSearchMembersFindsASubstringOfEmailOrUserID(t *testing.T) {
	onEachEngine(t, testSearchMembers)
}

func testSearchMembers(t *testing.T, db *sqldb.DB) {
	ctx := context.Background()
	for i, person := range [][2]string{
		{"ann_1", "ann_1@example.com"},
		{"annx1", "annx1@example.com"},
		{"50%off", "deals@example.com"},
		{"bob0", "Bob0.Other@Example.com"},
		{`back\slash`, "bs@example.com"},
		{"plain", ""},
	} {
		mustStoreSignup(t, db, int64(i+1), person[0], person[1])
	}
	def := signedUp(t)
	r := NewRunner(db, []Definition{def}, testNow, nil)
	if _, err := r.SearchMembers(ctx, def.Name, "", 0, 10); resolver.ErrorCode(err) !=
		resolver.ENotFound {
		t.Errorf("search before the first run: %v, want ENotFound", err)
	}
	run, err := r.Run(ctx, def.Name)
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		query         string
		offset, limit int
		want          []int64
		total         int
	}{
		{"", 0, 10, []int64{1, 2, 3, 4, 5, 6}, 6},
		{"", 4, 10, []int64{5, 6}, 6},
		{"n_1", 0, 10, []int64{1}, 1}, // _ is no wildcard
		{"0%o", 0, 10, []int64{3}, 1}, // nor is %: bob0.other does not match
		{`k\s`, 0, 10, []int64{5}, 1}, // a backslash is itself
		{"BOB0.other", 0, 10, []int64{4}, 1},
		{"example.com", 2, 2, []int64{3, 4}, 5},
		{"example.com", 4, 2, []int64{5}, 5},
		{"example.com", 10, 2, nil, 5}, // past the last page, still counted
		{"nobody", 0, 10, nil, 0},
	}
	for _, tc := range cases {
		found, err := r.SearchMembers(ctx, def.Name, tc.query, tc.offset, tc.limit)
		if err != nil {
			t.Fatalf("search %q: %v", tc.query, err)
		}
		var got []int64
		for _, m := range found.Members {
			got = append(got, m.ProfileID)
		}
		if !slices.Equal(got, tc.want) || found.Total != tc.total || found.Run.ID != run.ID {
			t.Errorf("search %q from %d: %v of %d in run %d, want %v of %d in run %d",
				tc.query, tc.offset, got, found.Total, found.Run.ID, tc.want, tc.total, run.ID)
		}
	}

	found, _ := r.SearchMembers(ctx, def.Name, "ann_1", 0, 1)
	if m := found.Members[0]; m.Email != "ann_1@example.com" || m.UserID != "ann_1" ||
		!slices.Equal(m.Identifiers["email"], []string{"ann_1@example.com"}) {
		t.Errorf("member read back as %+v", m)
	}
	for _, bad := range [][2]int{{-1, 10}, {0, 0}} {
		_, err := r.SearchMembers(ctx, def.Name, "", bad[0], bad[1])
		if resolver.ErrorCode(err) != resolver.EInvalid {
			t.Errorf("offset %d, limit %d: %v, want EInvalid", bad[0], bad[1], err)
		}
	}
	if _, err := r.SearchMembers(ctx, "nope", "", 0, 10); resolver.ErrorCode(err) !=
		resolver.ENotFound {
		t.Errorf("unknown audience: %v, want ENotFound", err)
	}
}

func TestEscapeLike(t *testing.T) {
	for text, want := range map[string]string{
		"plain": "plain", "50%": `50\%`, "a_b": `a\_b`, `c:\x`: `c:\\x`, `%_\`: `\%\_\\`,
	} {
		if got := escapeLike(text); got != want {
			t.Errorf("escapeLike(%q) = %q, want %q", text, got, want)
		}
	}
}

func TestSizeHistoryAndRecentChanges(t *testing.T) {
	onEachEngine(t, testSizeHistoryAndRecentChanges)
}

func testSizeHistoryAndRecentChanges(t *testing.T, db *sqldb.DB) {
	ctx := context.Background()
	at := testNow()
	clock := func() time.Time { return at }
	def := signedUp(t)
	r := NewRunner(db, []Definition{def}, clock, nil)
	if runs, err := r.SizeHistory(ctx, def.Name, 10); err != nil || len(runs) != 0 {
		t.Errorf("history before any run: %v, %v; want none", runs, err)
	}

	mustStoreSignup(t, db, 1, "u1", "one@example.com")
	mustStoreSignup(t, db, 2, "u2", "two@example.com")
	mustRunAt(t, r, def.Name)
	at = at.Add(time.Hour)
	mustStoreSignup(t, db, 3, "u3", "three@example.com")
	mustRunAt(t, r, def.Name)
	// A failed run changes no result and draws no point.
	mustExec(t, db, `INSERT INTO audience_runs (audience, started_ms, evaluated_ms, status,
		error) VALUES (?, ?, ?, 'failed', 'disk full')`, def.Name, at.UnixMilli(),
		at.UnixMilli())
	at = at.Add(time.Hour)
	mustExec(t, db, `DELETE FROM events WHERE profile_id = 1`)
	mustRunAt(t, r, def.Name)

	runs, err := r.SizeHistory(ctx, def.Name, 2)
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, run := range runs {
		sizes = append(sizes, run.Size)
	}
	if !slices.Equal(sizes, []int{3, 2}) || !runs[0].EvaluatedAt.Before(runs[1].EvaluatedAt) {
		t.Errorf("last 2 sizes, oldest first: %v (%v)", sizes, runs)
	}

	changes, err := r.RecentChanges(ctx, def.Name, 3)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range changes {
		got = append(got, c.Change+" "+c.UserID+" "+c.At)
	}
	want := []string{
		"exited u1 2026-12-04T14:00:00.000Z",
		"entered u3 2026-12-04T13:00:00.000Z",
		"entered u2 2026-12-04T12:00:00.000Z",
	}
	if !slices.Equal(got, want) {
		t.Errorf("recent changes:\n%q\nwant\n%q", got, want)
	}
	if changes[0].Email != "one@example.com" || changes[0].Cursor == "" {
		t.Errorf("an exit keeps the member as they were: %+v", changes[0])
	}
	for _, read := range []func() error{
		func() error { _, err := r.SizeHistory(ctx, "nope", 1); return err },
		func() error { _, err := r.RecentChanges(ctx, "nope", 1); return err },
	} {
		if err := read(); resolver.ErrorCode(err) != resolver.ENotFound {
			t.Errorf("unknown audience: %v, want ENotFound", err)
		}
	}
}

func mustRunAt(t testing.TB, r *Runner, name string) {
	t.Helper()
	if run, err := r.Run(context.Background(), name); err != nil || run.Status != StatusOK {
		t.Fatalf("run %s: %v, %v", name, run.Status, err)
	}
}
