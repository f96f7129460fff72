package resolver

import (
	"strings"
	"testing"
	"time"
)

// On PostgreSQL a merge is one statement holding every step in order, with
// the steps' arguments in the order of their placeholders.
func TestMergeStatementHoldsEveryStepInOrder(t *testing.T) {
	w := &writer{now: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	steps := w.mergeSteps(&Message{ID: "m-merge"}, 7, 9)

	query, args := mergeStatement(steps)

	if got := strings.Count(query, "?"); got != len(args) {
		t.Fatalf("%d placeholders, %d arguments:\n%s", got, len(args), query)
	}
	next := 0
	for i, step := range steps {
		at := strings.Index(query, step.query)
		if at < next {
			t.Errorf("step %d (%s) missing or out of order", i+1, step.what)
		}
		next = at
	}
	want := []any{int64(7), int64(9), int64(7), int64(9), int64(7), int64(9), int64(9),
		int64(7), int64(9), int64(7), w.now.UnixMilli(), int64(9), int64(7), int64(9),
		"m-merge", w.now.UnixMilli()}
	for i := range want {
		if i >= len(args) || args[i] != want[i] {
			t.Fatalf("arguments %v, want %v", args, want)
		}
	}
}
