package resolver

import (
	"context"
	"fmt"
	"strings"

	"github.com/knit-cdp/knit/resolver/sqldb"
)

// mergeStep is one statement of a merge: what it does, for errors, and
// the statement with its arguments.
type mergeStep struct {
	what  string
	query string
	args  []any
}

// merge folds profile merged into survivor: identifiers, events and traits
// move over (per trait the value with the latest event time wins), and the
// merged profile keeps a pointer to its survivor for history.
func (w *writer) merge(ctx context.Context, m *Message, survivor, merged int64) error {
	// The statements below move stored rows: store the waiting ones they
	// must see first. Waiting events are repointed below, where they wait.
	err := w.flushTables(ctx, &bulkProfiles, &bulkIdentities, &bulkTraits)
	if err != nil {
		return err
	}

	steps := w.mergeSteps(m, survivor, merged)
	if w.dialect == sqldb.Postgres {
		query, args := mergeStatement(steps)
		if err := w.exec(ctx, query, args...); err != nil {
			return fmt.Errorf("merge profile %d into %d: %w", merged, survivor, err)
		}
	} else {
		for _, step := range steps {
			if err := w.exec(ctx, step.query, step.args...); err != nil {
				return fmt.Errorf("merge profile %d into %d: %s: %w",
					merged, survivor, step.what, err)
			}
		}
	}

	w.repointEvents(merged, survivor)
	if w.cache != nil {
		w.cache.merged(survivor, merged)
	}
	return nil
}

// mergeSteps are the statements that fold merged into survivor, in order.
// No step reads what an earlier one wrote, so on PostgreSQL they can run
// as one statement (mergeStatement).
func (w *writer) mergeSteps(m *Message, survivor, merged int64) []mergeStep {
	return []mergeStep{
		{"move identifiers",
			`UPDATE identities SET profile_id = ? WHERE profile_id = ?`,
			[]any{survivor, merged}},
		{"move events",
			`UPDATE events SET profile_id = ? WHERE profile_id = ?`,
			[]any{survivor, merged}},
		// Equal times keep the survivor's value, so the outcome does not
		// depend on which profile's rows are visited first.
		{"merge traits",
			`INSERT INTO traits (profile_id, key, value, ts_ms, message_id)
			 SELECT ?, key, value, ts_ms, message_id FROM traits
			 WHERE profile_id = ? AND true
			 ON CONFLICT (profile_id, key) DO UPDATE SET
			   value = excluded.value, ts_ms = excluded.ts_ms,
			   message_id = excluded.message_id
			 WHERE excluded.ts_ms > traits.ts_ms`,
			[]any{survivor, merged}},
		{"drop merged traits",
			`DELETE FROM traits WHERE profile_id = ?`, []any{merged}},
		{"repoint earlier merges",
			`UPDATE profiles SET merged_into = ? WHERE merged_into = ?`,
			[]any{survivor, merged}},
		{"retire merged profile",
			`UPDATE profiles SET merged_into = ?, updated_ms = ? WHERE id = ?`,
			[]any{survivor, w.now.UnixMilli(), merged}},
		{"record merge",
			`INSERT INTO profile_merges (survivor, merged, message_id, at_ms)
			 VALUES (?, ?, ?, ?)`,
			[]any{survivor, merged, m.ID, w.now.UnixMilli()}},
	}
}

// mergeStatement joins steps into one PostgreSQL statement, each a WITH
// clause: one round trip a merge where there were seven, with 2 to 3
// merges a batch late in a minute of load. The clauses see one snapshot:
// the traits copied to the survivor are the merged profile's stored ones,
// which the DELETE removes, and the two UPDATEs of profiles touch
// different rows (a profile is never merged into itself).
func mergeStatement(steps []mergeStep) (string, []any) {
	clauses := make([]string, len(steps))
	var args []any
	for i, step := range steps {
		clauses[i] = fmt.Sprintf("step_%d AS (%s)", i+1, step.query)
		args = append(args, step.args...)
	}
	return "WITH " + strings.Join(clauses, ",\n") + "\nSELECT 1", args
}
