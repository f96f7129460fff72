package resolver

import (
	"reflect"
	"strings"
	"testing"
)

// A batch's merges fold chains into the profile they end up in, and list
// each survivor's profiles in the order a trait's tie prefers them.
func TestFoldedMergesFollowChainsAndTieOrder(t *testing.T) {
	f := newFoldedMerges()
	f.add(2, 1, "m-1", 10) // 1 into 2
	f.add(3, 2, "m-2", 11) // 2 (holding 1) into 3
	f.add(3, 4, "m-3", 12) // 4 into 3, after the others

	for profile, want := range map[int64]int64{1: 3, 2: 3, 3: 3, 4: 3, 5: 5} {
		if got := f.rootOf(profile); got != want {
			t.Errorf("rootOf(%d) = %d, want %d", profile, got, want)
		}
	}
	if !f.involves(5, 1) || !f.involves(3) || f.involves(5, 6) {
		t.Error("involves does not name the profiles of the waiting merges")
	}

	profiles, survivors, ranks := f.foldRows()
	if want := []int64{3, 2, 1, 4}; !reflect.DeepEqual(profiles, want) {
		t.Errorf("tie order %v, want %v", profiles, want)
	}
	if want := []int64{3, 3, 3, 3}; !reflect.DeepEqual(survivors, want) {
		t.Errorf("survivors %v, want %v", survivors, want)
	}
	if want := []int64{0, 1, 2, 3}; !reflect.DeepEqual(ranks, want) {
		t.Errorf("ranks %v, want %v", ranks, want)
	}
	if len(f.records) != 3 || f.records[1] != (mergeRecord{3, 2, "m-2", 11}) {
		t.Errorf("records %v, want each merge as made", f.records)
	}
}

func TestFoldsStatementTakesItsArguments(t *testing.T) {
	f := newFoldedMerges()
	f.add(7, 9, "m-merge", 10)
	args := f.foldsArgs(99)

	if got := strings.Count(foldsSQL, "?"); got != len(args) {
		t.Fatalf("%d placeholders, %d arguments", got, len(args))
	}
	want := []any{[]int64{7, 9}, []int64{7, 7}, []int64{0, 1}, int64(99), []int64{7},
		[]int64{9}, []string{"m-merge"}, []int64{10}}
	if !reflect.DeepEqual(args, want) {
		t.Errorf("arguments %v, want %v", args, want)
	}
}
