package resolver

import (
	"context"
	"fmt"
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
// merged profile keeps a pointer to its survivor for history. On
// PostgreSQL the batch's merges are written together at its end
// (foldedMerges); on SQLite, where a statement costs no round trip, each
// is written at once.
func (w *writer) merge(ctx context.Context, m *Message, survivor, merged int64) error {
	if w.defersMerges() {
		w.folds.add(survivor, merged, m.ID, w.now.UnixMilli())
	} else if err := w.mergeNow(ctx, m, survivor, merged); err != nil {
		return err
	}

	w.repointEvents(merged, survivor)
	if w.cache != nil {
		w.cache.merged(survivor, merged)
	}
	return nil
}

// mergeNow writes one merge, step by step.
func (w *writer) mergeNow(ctx context.Context, m *Message, survivor, merged int64) error {
	// The statements below move stored rows: store the waiting ones they
	// must see first. Waiting events are repointed where they wait.
	err := w.flushTables(ctx, &bulkProfiles, &bulkIdentities, &bulkTraits)
	if err != nil {
		return err
	}
	for _, step := range w.mergeSteps(m, survivor, merged) {
		if err := w.exec(ctx, step.query, step.args...); err != nil {
			return fmt.Errorf("merge profile %d into %d: %s: %w",
				merged, survivor, step.what, err)
		}
	}
	return nil
}

// mergeSteps are the statements that fold merged into survivor, in order.
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
