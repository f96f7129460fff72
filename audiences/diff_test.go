package audiences

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/knit-cdp/knit/resolver/sqldb"
)

// storedRow is a member as save takes it, with a marker in its attributes
// that tells which run it came from.
func storedRow(profile int64, marker string) memberRow {
	return memberRow{ProfileID: profile, UserID: fmt.Sprintf("user-%d", profile),
		Email:       fmt.Sprintf("p%d@example.com", profile),
		Identifiers: fmt.Sprintf(`{"user_id":["user-%d"]}`, profile),
		Attributes:  fmt.Sprintf(`{"from":%q}`, marker)}
}

func storedRows(marker string, profiles ...int64) []memberRow {
	rows := make([]memberRow, len(profiles))
	for i, p := range profiles {
		rows[i] = storedRow(p, marker)
	}
	return rows
}

// TestSaveDiffsInterleavedResults saves results whose profiles interleave
// with the previous one's in every way the streamed diff walks: exits
// before the first member, between members and after the last, entries
// at both ends, runs of each, and an empty result on either side. Each
// exit must carry the member as the previous result stored them.
func TestSaveDiffsInterleavedResults(t *testing.T) {
	steps := []struct {
		profiles        []int64
		entered, exited []int64
	}{
		{[]int64{5, 9}, []int64{5, 9}, nil},
		{[]int64{2, 3, 5, 7, 8, 9, 12}, []int64{2, 3, 7, 8, 12}, nil},
		{[]int64{3, 4, 8, 13, 14}, []int64{4, 13, 14}, []int64{2, 5, 7, 9, 12}},
		{[]int64{1, 14}, []int64{1}, []int64{3, 4, 8, 13}},
		{nil, nil, []int64{1, 14}},
		{[]int64{6}, []int64{6}, nil},
	}
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		r := NewRunner(db, Builtins(), testNow, nil)
		for i, step := range steps {
			run := mustSaveRows(t, r, storedRows(fmt.Sprintf("run %d", i), step.profiles...))
			checkChanges(t, r, run, step.entered, step.exited, fmt.Sprintf("run %d", i-1))
		}
	})
}

// mustSaveRows starts a run of cart_abandonment and saves rows as its
// result.
func mustSaveRows(t *testing.T, r *Runner, rows []memberRow) Run {
	t.Helper()
	ctx := context.Background()
	def, err := r.Definition("cart_abandonment")
	if err != nil {
		t.Fatal(err)
	}
	run, err := r.start(ctx, def.Name)
	if err != nil {
		t.Fatal(err)
	}
	run, err = r.save(ctx, def, run, rows)
	if err != nil {
		t.Fatalf("save: %v", err)
	}
	return run
}

// checkChanges compares a run's recorded entries and exits with the
// profiles expected, and each exit's attributes with the run it left.
func checkChanges(t *testing.T, r *Runner, run Run, entered, exited []int64,
	exitedFrom string) {
	t.Helper()
	page, err := r.Changes(context.Background(), run.Audience, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]int64{}
	for _, c := range page.Changes {
		if c.RunID != run.ID {
			continue
		}
		got[c.Change] = append(got[c.Change], c.ProfileID)
		if c.Change == Exited && c.Attributes["from"] != exitedFrom {
			t.Errorf("run %d: %d exited as %v, want as stored by %s",
				run.ID, c.ProfileID, c.Attributes["from"], exitedFrom)
		}
	}
	if !reflect.DeepEqual(got[Entered], entered) || !reflect.DeepEqual(got[Exited], exited) {
		t.Errorf("run %d: entered %v exited %v, want %v and %v",
			run.ID, got[Entered], got[Exited], entered, exited)
	}
	if run.Entered != len(entered) || run.Exited != len(exited) {
		t.Errorf("run %d counts %d entered and %d exited, want %d and %d",
			run.ID, run.Entered, run.Exited, len(entered), len(exited))
	}
}

// TestSaveSortsTheMembersItIsGiven saves a result out of profile order over
// one in order: members who stayed must neither exit nor enter again.
func TestSaveSortsTheMembersItIsGiven(t *testing.T) {
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		r := NewRunner(db, Builtins(), testNow, nil)
		mustSaveRows(t, r, storedRows("run 0", 1, 2, 3, 4))
		run := mustSaveRows(t, r, storedRows("run 1", 4, 2, 5, 1))
		checkChanges(t, r, run, []int64{5}, []int64{3}, "run 0")
	})
}
