package resolver

import (
	"context"
	"fmt"
	"maps"
	"slices"
)

// foldedMerges are the merges of a batch on PostgreSQL, kept in memory and
// written together at its end by one statement (foldsStatement), where
// each merge took a partial write and a statement of its own: 4 merges a
// batch late in a minute of load, 6 of a batch's 10 ms of resolving.
//
// What the batch reads meanwhile comes from the identity cache, which
// learns the whole identifier lists and merge counts of both profiles
// before a merge; a read of the database that could see a profile of a
// waiting merge writes the merges first (settleFoldsFor).
type foldedMerges struct {
	// root maps each folded profile to the live profile it ends up in.
	root map[int64]int64
	// order lists, for each live profile that absorbed others, itself and
	// then the profiles folded into it, in the order a trait's tie
	// prefers them: the one merged first wins a tie over later ones, and
	// a survivor's own value beats both, as merges one at a time do.
	order map[int64][]int64
	// records are the profile_merges rows, in the order of the merges.
	records []mergeRecord
}

// mergeRecord is one merge as made: a profile_merges row.
type mergeRecord struct {
	survivor, merged int64
	messageID        string
	atMS             int64
}

func newFoldedMerges() *foldedMerges {
	f := &foldedMerges{}
	f.clear()
	return f
}

func (f *foldedMerges) clear() {
	f.root = map[int64]int64{}
	f.order = map[int64][]int64{}
	f.records = nil
}

// add folds merged, with whatever was folded into it, into survivor.
func (f *foldedMerges) add(survivor, merged int64, messageID string, atMS int64) {
	theirs := f.order[merged]
	if theirs == nil {
		theirs = []int64{merged}
	}
	mine := f.order[survivor]
	if mine == nil {
		mine = []int64{survivor}
	}
	f.order[survivor] = append(mine, theirs...)
	delete(f.order, merged)
	for _, profile := range theirs {
		f.root[profile] = survivor
	}
	f.records = append(f.records, mergeRecord{survivor, merged, messageID, atMS})
}

// involves says whether any of profiles takes part in a waiting merge.
func (f *foldedMerges) involves(profiles ...int64) bool {
	for _, p := range profiles {
		if _, folded := f.root[p]; folded {
			return true
		}
		if _, absorbed := f.order[p]; absorbed {
			return true
		}
	}
	return false
}

// rootOf is the live profile that profile ends up in.
func (f *foldedMerges) rootOf(profile int64) int64 {
	if root, folded := f.root[profile]; folded {
		return root
	}
	return profile
}

// foldRows are the profiles of the waiting merges as three columns: each
// profile, the live profile it ends up in, and its rank in that profile's
// tie order (0 for the live profile itself).
func (f *foldedMerges) foldRows() (profiles, survivors, ranks []int64) {
	for _, survivor := range slices.Sorted(maps.Keys(f.order)) {
		for rank, profile := range f.order[survivor] {
			profiles = append(profiles, profile)
			survivors = append(survivors, survivor)
			ranks = append(ranks, int64(rank))
		}
	}
	return profiles, survivors, ranks
}

// foldsSQL writes every waiting merge on PostgreSQL, each step a WITH
// clause seeing one snapshot: identifiers and stored events move to the
// live profile; of each trait field of the profiles folded together the
// value with the latest time wins, a tie going to the earlier in the tie
// order; the folded profiles point at the live one, as do the profiles
// merged into them before; and each merge is recorded. It runs under
// foldsPlanSQL.
const foldsSQL = `WITH fold AS (
	SELECT * FROM unnest(CAST(? AS BIGINT[]), CAST(? AS BIGINT[]),
		CAST(? AS BIGINT[])) AS f(profile, survivor, rank)),
folded AS (SELECT profile, survivor FROM fold WHERE rank > 0),
moved_identities AS (UPDATE identities SET profile_id = f.survivor FROM folded f
	WHERE identities.profile_id = f.profile),
moved_events AS (UPDATE events SET profile_id = f.survivor FROM folded f
	WHERE events.profile_id = f.profile),
winners AS (SELECT DISTINCT ON (f.survivor, t.key)
		f.survivor, f.rank, t.key, t.value, t.ts_ms, t.message_id
	FROM fold f JOIN traits t ON t.profile_id = f.profile
	ORDER BY f.survivor, t.key, t.ts_ms DESC, f.rank),
moved_traits AS (INSERT INTO traits (profile_id, key, value, ts_ms, message_id)
	SELECT survivor, key, value, ts_ms, message_id FROM winners WHERE rank > 0
	ON CONFLICT (profile_id, key) DO UPDATE SET
		value = excluded.value, ts_ms = excluded.ts_ms, message_id = excluded.message_id),
dropped_traits AS (DELETE FROM traits USING folded f WHERE traits.profile_id = f.profile),
repointed AS (UPDATE profiles SET merged_into = f.survivor FROM folded f
	WHERE profiles.merged_into = f.profile),
retired AS (UPDATE profiles SET merged_into = f.survivor, updated_ms = ? FROM folded f
	WHERE profiles.id = f.profile),
recorded AS (INSERT INTO profile_merges (survivor, merged, message_id, at_ms)
	SELECT * FROM unnest(CAST(? AS BIGINT[]), CAST(? AS BIGINT[]), CAST(? AS TEXT[]),
		CAST(? AS BIGINT[])))
SELECT 1`

// foldsPlanSQL makes the rest of the transaction join by nested loops over
// indexes: each step of foldsSQL then probes its table's index once for
// each folded profile. Without statistics (autovacuum is off on some
// servers; a table may be new) the planner takes a profile id to match
// 0.5 % of a table, so for a few hundred merges (a batch of an import)
// it read whole tables of millions of rows, and did so for each batch.
// foldsPlanResetSQL turns the three on again, PostgreSQL's defaults, for
// what the transaction does next (a mid-batch erase reads on).
const (
	foldsPlanSQL = `SELECT set_config('enable_seqscan', 'off', true),
		set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)`
	foldsPlanResetSQL = `SELECT set_config('enable_seqscan', 'on', true),
		set_config('enable_hashjoin', 'on', true), set_config('enable_mergejoin', 'on', true)`
)

// foldsArgs are foldsSQL's arguments for the waiting merges, at nowMS.
func (f *foldedMerges) foldsArgs(nowMS int64) []any {
	profiles, survivors, ranks := f.foldRows()
	n := len(f.records)
	recordSurvivors, merged := make([]int64, 0, n), make([]int64, 0, n)
	messages, times := make([]string, 0, n), make([]int64, 0, n)
	for _, r := range f.records {
		recordSurvivors = append(recordSurvivors, r.survivor)
		merged = append(merged, r.merged)
		messages = append(messages, r.messageID)
		times = append(times, r.atMS)
	}
	return []any{profiles, survivors, ranks, nowMS, recordSurvivors, merged, messages, times}
}

// defersMerges says whether the writer keeps merges for the end of the
// batch (PostgreSQL) instead of writing each at once.
func (w *writer) defersMerges() bool {
	return w.folds != nil && w.bulk != nil && w.cache != nil
}

// writeFolds writes the waiting merges, after the rows they must see: the
// batch's waiting profiles, identities and traits. Waiting events were
// repointed where they wait.
func (w *writer) writeFolds(ctx context.Context) error {
	if w.folds == nil || len(w.folds.records) == 0 {
		return nil
	}
	err := w.flushTables(ctx, &bulkProfiles, &bulkIdentities, &bulkTraits)
	if err != nil {
		return err
	}
	for _, step := range []struct {
		query string
		args  []any
	}{
		{foldsPlanSQL, nil},
		{foldsSQL, w.folds.foldsArgs(w.now.UnixMilli())},
		{foldsPlanResetSQL, nil},
	} {
		if err := w.exec(ctx, step.query, step.args...); err != nil {
			return fmt.Errorf("merge %d profiles: %w", len(w.folds.records), err)
		}
	}
	w.folds.clear()
	return nil
}

// settleFoldsFor writes the waiting merges when any of profiles takes part
// in one, before the database is read by profile.
func (w *writer) settleFoldsFor(ctx context.Context, profiles ...int64) error {
	if w.folds == nil || !w.folds.involves(profiles...) {
		return nil
	}
	return w.writeFolds(ctx)
}
