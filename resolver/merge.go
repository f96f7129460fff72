package resolver

import (
	"context"
	"fmt"
)

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
	steps := []struct {
		what  string
		query string
		args  []any
	}{
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

	for _, step := range steps {
		if err := w.exec(ctx, step.query, step.args...); err != nil {
			return fmt.Errorf("merge profile %d into %d: %s: %w",
				merged, survivor, step.what, err)
		}
	}
	w.repointEvents(merged, survivor)
	if w.cache != nil {
		w.cache.merged(survivor, merged)
	}
	return nil
}
