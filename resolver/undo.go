package resolver

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// Decision kinds of undo and erase.
const (
	DecisionUnlinked = "unlinked" // an identifier was blocked after the fact
	DecisionRebuilt  = "rebuilt"  // a profile re-made from stored messages
)

// anyBlocksQuery counts 1 when any identifier is unlinked, else 0.
const anyBlocksQuery = `SELECT COUNT(*) FROM (SELECT 1 FROM identity_blocks LIMIT 1) AS b`

// withoutUnlinked leaves out identifiers that an unlink blocked for good.
func (w *writer) withoutUnlinked(ctx context.Context,
	ids []Identifier) ([]Identifier, []blockedIdentifier, error) {
	if len(ids) == 0 {
		return ids, nil, nil
	}
	if w.anyBlocks == nil {
		var n int
		if err := w.tx.GetContext(ctx, &n, anyBlocksQuery); err != nil {
			return nil, nil, fmt.Errorf("count unlinked identifiers: %w", err)
		}
		any := n > 0
		w.anyBlocks = &any
	}
	if !*w.anyBlocks {
		return ids, nil, nil // the common case costs one count per transaction
	}

	var hits []Identifier
	for start := 0; start < len(ids); start += lookupChunk {
		chunk := ids[start:min(start+lookupChunk, len(ids))]
		where, args := matchIdentifiers(chunk)
		var found []Identifier
		err := w.tx.SelectContext(ctx, &found, w.tx.Rebind(`SELECT type, value
			FROM identity_blocks WHERE `+where), args...)
		if err != nil {
			return nil, nil, fmt.Errorf("read unlinked identifiers: %w", err)
		}
		hits = append(hits, found...)
	}

	blocked := map[Identifier]bool{}
	for _, h := range hits {
		blocked[h] = true
	}
	var kept []Identifier
	var dropped []blockedIdentifier
	for _, id := range ids {
		if blocked[id] {
			dropped = append(dropped, blockedIdentifier{id, "unlinked by an operator"})
		} else {
			kept = append(kept, id)
		}
	}
	return kept, dropped, nil
}

// UnlinkResult says what an unlink did.
type UnlinkResult struct {
	Profile  int64   // the profile that held the identifier, now retired
	Profiles []int64 // the profiles its messages resolve to now
	Events   int     // messages re-resolved
}

// Unlink blocks id for good (it never again joins anything) and rebuilds
// the profile that held it, and every profile merged into that one, from
// their stored messages in arrival order: events are re-attributed, traits
// recomputed, and the split recorded, with an audit log entry naming the
// actor ctx carries (WithActor). It returns an *Error with code ENotFound
// when no profile holds id.
func (s *Store) Unlink(ctx context.Context, id Identifier, reason string) (UnlinkResult, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	id.Value = s.rules.normalise(id.Type, id.Value)

	var result UnlinkResult
	err := s.withWriteTx(ctx, func(tx *sqlx.Tx) error {
		w := &writer{tx: tx, rules: s.rules, now: s.now(), dialect: s.db.Dialect()}
		var err error
		if result, err = w.unlink(ctx, id, reason); err != nil {
			return err
		}
		return RecordAudit(ctx, tx, w.now, AuditUnlink, id.String(), map[string]any{
			"reason": reason, "retired_profile_id": result.Profile,
			"profile_ids": result.Profiles, "events_reresolved": result.Events})
	})
	if err != nil {
		return result, fmt.Errorf("resolver.Unlink %s: %w", id, err)
	}
	return result, nil
}

func (w *writer) unlink(ctx context.Context, id Identifier, reason string) (UnlinkResult, error) {
	profile, err := w.ownerOf(ctx, id)
	if err != nil {
		return UnlinkResult{}, err
	}
	_, err = w.tx.ExecContext(ctx, w.tx.Rebind(`INSERT INTO identity_blocks
		(type, value, reason, at_ms) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`),
		id.Type, id.Value, reason, w.now.UnixMilli())
	if err != nil {
		return UnlinkResult{}, fmt.Errorf("block %s: %w", id, err)
	}
	blocks := true
	w.anyBlocks = &blocks

	family, err := w.family(ctx, profile)
	if err != nil {
		return UnlinkResult{}, err
	}
	kept, err := w.keptApartBy(ctx, family)
	if err != nil {
		return UnlinkResult{}, err
	}
	result := UnlinkResult{Profile: profile}
	result.Profiles, result.Events, err = w.rebuild(ctx, append(family, kept...), id, reason)
	if err != nil {
		return result, err
	}
	if result.Profiles, err = w.liveProfiles(ctx, result.Profiles); err != nil {
		return result, err
	}

	w.record(decision{kind: DecisionUnlinked, profile: profile, identifier: id,
		rule: "unlinked by an operator", detail: reason})
	return result, w.writeStandalone(ctx, profile)
}

// keptApartBy finds the profiles (with their families) that a limit kept
// apart from family: those holding a message that carried one of family's
// identifiers but had an identifier dropped by a limit. Their messages are
// resolved again too, since the fused profile may be what kept them apart.
func (w *writer) keptApartBy(ctx context.Context, family []int64) ([]int64, error) {
	query, args, err := sqlx.In(`SELECT DISTINCT e.profile_id
		FROM identity_decisions d
		JOIN events e ON e.message_id = d.message_id
		JOIN identity_links l ON l.event_id = e.id
		JOIN identities i ON i.type = l.type AND i.value = l.value
		WHERE d.kind = ? AND i.profile_id IN (?) AND e.profile_id IS NOT NULL
		  AND e.profile_id NOT IN (?)`, DecisionLimit, family, family)
	if err != nil {
		return nil, fmt.Errorf("build query: %w", err)
	}
	var apart []int64
	if err := w.tx.SelectContext(ctx, &apart, w.tx.Rebind(query), args...); err != nil {
		return nil, fmt.Errorf("find profiles kept apart: %w", err)
	}
	var out []int64
	for _, p := range apart {
		members, err := w.family(ctx, p)
		if err != nil {
			return nil, err
		}
		out = append(out, members...)
	}
	return out, nil
}

// liveProfiles maps profiles to the live profiles they were merged into,
// without repeats, in order.
func (w *writer) liveProfiles(ctx context.Context, profiles []int64) ([]int64, error) {
	seen := map[int64]bool{}
	var live []int64
	for _, p := range profiles {
		var survivor int64
		err := w.tx.GetContext(ctx, &survivor, w.tx.Rebind(
			`SELECT COALESCE(merged_into, id) FROM profiles WHERE id = ?`), p)
		if err != nil {
			return nil, fmt.Errorf("follow profile %d: %w", p, err)
		}
		if !seen[survivor] {
			seen[survivor] = true
			live = append(live, survivor)
		}
	}
	return live, nil
}

// ownerOf returns the profile holding id, or ENotFound.
func (w *writer) ownerOf(ctx context.Context, id Identifier) (int64, error) {
	owners, err := w.owners(ctx, []Identifier{id})
	if err != nil {
		return 0, err
	}
	profile, held := owners[id]
	if !held {
		return 0, Errorf(ENotFound, "no profile holds %s", id)
	}
	return profile, nil
}

// family returns profile and every profile merged into it.
func (w *writer) family(ctx context.Context, profile int64) ([]int64, error) {
	family := []int64{profile}
	var merged []int64
	err := w.tx.SelectContext(ctx, &merged, w.tx.Rebind(
		`SELECT id FROM profiles WHERE merged_into = ? ORDER BY id`), profile)
	if err != nil {
		return nil, fmt.Errorf("list profiles merged into %d: %w", profile, err)
	}
	return append(family, merged...), nil
}

// storedEvent is what a rebuild needs of one stored message.
type storedEvent struct {
	ID          int64  `db:"id"`
	MessageID   string `db:"message_id"`
	Source      string `db:"source"`
	TimestampMS int64  `db:"ts_ms"`
	ReceivedMS  int64  `db:"received_ms"`
	Raw         string `db:"raw"`
}

// rebuild retires the family's profiles and re-resolves their messages in
// arrival order against the rest of the graph.
func (w *writer) rebuild(ctx context.Context, family []int64, unlinked Identifier,
	reason string) ([]int64, int, error) {
	query, args, err := sqlx.In(`SELECT id, message_id, source, ts_ms, received_ms, raw
		FROM events WHERE profile_id IN (?) ORDER BY id`, family)
	if err != nil {
		return nil, 0, fmt.Errorf("build event query: %w", err)
	}
	var events []storedEvent
	if err := w.tx.SelectContext(ctx, &events, w.tx.Rebind(query), args...); err != nil {
		return nil, 0, fmt.Errorf("read events to rebuild: %w", err)
	}
	if err := w.retire(ctx, family); err != nil {
		return nil, 0, err
	}

	seen := map[int64]bool{}
	var profiles []int64
	for _, e := range events {
		profile, err := w.replay(ctx, e)
		if err != nil {
			return nil, 0, err
		}
		if profile != 0 && !seen[profile] {
			seen[profile] = true
			profiles = append(profiles, profile)
			w.record(decision{kind: DecisionRebuilt, profile: profile, other: family[0],
				identifier: unlinked, rule: "unlinked by an operator", detail: reason})
			if err := w.writeStandalone(ctx, profile); err != nil {
				return nil, 0, err
			}
		}
	}
	return profiles, len(events), nil
}

// retire takes the family's identifiers, traits and events off its
// profiles and marks the profiles retired.
func (w *writer) retire(ctx context.Context, family []int64) error {
	for _, step := range []string{
		`DELETE FROM identities WHERE profile_id IN (?)`,
		`DELETE FROM traits WHERE profile_id IN (?)`,
		`UPDATE events SET profile_id = NULL WHERE profile_id IN (?)`,
		`UPDATE profiles SET retired_ms = ` + fmt.Sprint(w.now.UnixMilli()) +
			` WHERE id IN (?)`,
	} {
		query, args, err := sqlx.In(step, family)
		if err != nil {
			return fmt.Errorf("build retire step: %w", err)
		}
		if _, err := w.tx.ExecContext(ctx, w.tx.Rebind(query), args...); err != nil {
			return fmt.Errorf("retire profiles %v: %w", family, err)
		}
	}
	return nil
}

// replay re-resolves one stored message with its original time and source.
func (w *writer) replay(ctx context.Context, e storedEvent) (int64, error) {
	m, err := e.message()
	if err != nil {
		return 0, err
	}
	profile, ids, err := w.resolveMessage(ctx, m)
	if err != nil {
		return 0, err
	}
	_, err = w.tx.ExecContext(ctx, w.tx.Rebind(
		`UPDATE events SET profile_id = ? WHERE id = ?`), nullable(profile), e.ID)
	if err != nil {
		return 0, fmt.Errorf("re-attribute message %s: %w", e.MessageID, err)
	}
	return profile, w.settle(ctx, m, e.ID, profile, ids)
}

// writeStandalone writes decisions recorded outside any message.
func (w *writer) writeStandalone(ctx context.Context, profile int64) error {
	for _, d := range w.decisions {
		target := d.profile
		if target == 0 {
			target = profile
		}
		_, err := w.tx.ExecContext(ctx, w.tx.Rebind(`INSERT INTO identity_decisions
			(profile_id, kind, message_id, identifier, other_profile_id, rule,
			 detail, event_ms, at_ms) VALUES (?, ?, '', ?, ?, ?, ?, ?, ?)`),
			nullable(target), d.kind, identifierText(d.identifier), nullable(d.other),
			d.rule, d.detail, w.now.UnixMilli(), w.now.UnixMilli())
		if err != nil {
			return fmt.Errorf("record %s decision: %w", d.kind, err)
		}
	}
	w.decisions = w.decisions[:0]
	return nil
}
