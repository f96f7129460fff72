package resolver

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jmoiron/sqlx"
)

// resolve finds or makes the profile a message belongs to, as Segment Unify
// does: no profile holds any of its identifiers -> a new profile; one does ->
// attach; several do -> merge them. When the result would hold more values
// of a type than the rules allow, the message's lowest-priority identifier
// type is dropped and matching starts again, so a shared device never fuses
// two identified people. It returns 0 when no identifier is left.
func (w *writer) resolve(ctx context.Context, m *Message, ids []Identifier) (int64, error) {
	for len(ids) > 0 {
		owners, err := w.owners(ctx, ids)
		if err != nil {
			return 0, err
		}
		profiles := distinctProfiles(owners)
		if len(profiles) == 0 {
			return w.createProfile(ctx, m, w.capped(ids))
		}

		held, err := w.identifiersOf(ctx, profiles)
		if err != nil {
			return 0, err
		}
		kind, limit, broken := w.breaksLimit(held, ids)
		if !broken {
			return w.join(ctx, m, profiles, ids, owners)
		}
		var dropped []Identifier
		ids, dropped = dropLowestType(ids)
		for _, id := range dropped {
			w.record(decision{kind: DecisionLimit, identifier: id,
				rule: fmt.Sprintf("limit: at most %d %s on a profile", limit, kind),
				detail: "the message's least trusted identifier type was left out " +
					"and matching ran again"})
		}
	}
	return 0, nil
}

// lookupChunk bounds how many identifiers one lookup query names: SQLite
// refuses expressions nested deeper than 1,000, and a message may carry
// hundreds of external ids.
const lookupChunk = 100

// owners maps each identifier already held by a profile to that profile.
func (w *writer) owners(ctx context.Context, ids []Identifier) (map[Identifier]int64, error) {
	owners := map[Identifier]int64{}
	for start := 0; start < len(ids); start += lookupChunk {
		chunk := ids[start:min(start+lookupChunk, len(ids))]
		if err := w.lookupOwners(ctx, chunk, owners); err != nil {
			return nil, err
		}
	}
	return owners, nil
}

func (w *writer) lookupOwners(ctx context.Context, ids []Identifier,
	owners map[Identifier]int64) error {
	clauses := make([]string, len(ids))
	args := make([]any, 0, 2*len(ids))
	for i, id := range ids {
		clauses[i] = "(type = ? AND value = ?)"
		args = append(args, id.Type, id.Value)
	}

	rows, err := w.tx.QueryxContext(ctx, w.tx.Rebind(
		`SELECT type, value, profile_id FROM identities WHERE `+
			strings.Join(clauses, " OR ")), args...)
	if err != nil {
		return fmt.Errorf("look up identifiers: %w", err)
	}
	defer rows.Close()

	for rows.Next() {
		var id Identifier
		var profile int64
		if err := rows.Scan(&id.Type, &id.Value, &profile); err != nil {
			return fmt.Errorf("scan identifier: %w", err)
		}
		owners[id] = profile
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read identifiers: %w", err)
	}
	return nil
}

func distinctProfiles(owners map[Identifier]int64) []int64 {
	seen := map[int64]bool{}
	var profiles []int64
	for _, profile := range owners {
		if !seen[profile] {
			seen[profile] = true
			profiles = append(profiles, profile)
		}
	}
	sort.Slice(profiles, func(i, j int) bool { return profiles[i] < profiles[j] })
	return profiles
}

// heldIdentifier is an identifier and the profile holding it.
type heldIdentifier struct {
	Identifier
	profile int64
}

// identifiersOf returns every identifier held by any of profiles.
func (w *writer) identifiersOf(ctx context.Context, profiles []int64) ([]heldIdentifier, error) {
	query, args, err := sqlx.In(`SELECT type, value, profile_id FROM identities
		WHERE profile_id IN (?)`, profiles)
	if err != nil {
		return nil, fmt.Errorf("build identifier query: %w", err)
	}

	var held []heldIdentifier
	rows, err := w.tx.QueryxContext(ctx, w.tx.Rebind(query), args...)
	if err != nil {
		return nil, fmt.Errorf("load profile identifiers: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id heldIdentifier
		if err := rows.Scan(&id.Type, &id.Value, &id.profile); err != nil {
			return nil, fmt.Errorf("scan profile identifier: %w", err)
		}
		held = append(held, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read profile identifiers: %w", err)
	}
	return held, nil
}

// breaksLimit reports whether joining the incoming identifiers with the
// held ones would leave more values of some type than the rules allow on
// one profile, and which type and limit. A profile already over a limit
// (the rules became stricter since) is not worse off when nothing is added,
// so messages that only repeat its identifiers still land on it.
func (w *writer) breaksLimit(held []heldIdentifier,
	incoming []Identifier) (kind string, limit int, broken bool) {
	union := map[string]map[string]bool{}
	perProfile := map[string]map[int64]int{}
	add := func(id Identifier) {
		if union[id.Type] == nil {
			union[id.Type] = map[string]bool{}
		}
		union[id.Type][id.Value] = true
	}
	for _, id := range held {
		add(id.Identifier)
		if perProfile[id.Type] == nil {
			perProfile[id.Type] = map[int64]int{}
		}
		perProfile[id.Type][id.profile]++
	}
	for _, id := range incoming {
		add(id)
	}

	for _, kind := range sortedKeys(union) {
		largest := 0
		for _, n := range perProfile[kind] {
			largest = max(largest, n)
		}
		values := union[kind]
		if len(values) > w.rules.Limit(kind) && len(values) > largest {
			return kind, w.rules.Limit(kind), true
		}
	}
	return "", 0, false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// dropLowestType removes every identifier of the least trusted type and
// returns what is kept and what was dropped; ids are sorted from most to
// least trusted.
func dropLowestType(ids []Identifier) (kept, dropped []Identifier) {
	lowest := ids[len(ids)-1].Type
	for _, id := range ids {
		if id.Type == lowest {
			dropped = append(dropped, id)
		} else {
			kept = append(kept, id)
		}
	}
	return kept, dropped
}

// capped keeps at most the allowed number of values of each type, for a
// message that alone carries more than a new profile may hold.
func (w *writer) capped(ids []Identifier) []Identifier {
	count := map[string]int{}
	kept := ids[:0:0]
	for _, id := range ids {
		if count[id.Type] < w.rules.Limit(id.Type) {
			count[id.Type]++
			kept = append(kept, id)
		}
	}
	return kept
}

func (w *writer) createProfile(ctx context.Context, m *Message, ids []Identifier) (int64, error) {
	var profile int64
	err := w.tx.GetContext(ctx, &profile, w.tx.Rebind(
		`INSERT INTO profiles (created_ms, updated_ms) VALUES (?, ?) RETURNING id`),
		w.now.UnixMilli(), w.now.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("create profile: %w", err)
	}

	w.record(decision{kind: DecisionCreated, profile: profile,
		rule:   "no profile held any of the message's identifiers",
		detail: listIdentifiers(ids)})
	if err := w.attach(ctx, m, profile, ids, nil); err != nil {
		return 0, err
	}
	return profile, nil
}

// join merges profiles into the oldest of them and attaches the message's
// identifiers that no profile held yet.
func (w *writer) join(ctx context.Context, m *Message, profiles []int64,
	ids []Identifier, owners map[Identifier]int64) (int64, error) {
	survivor := profiles[0]
	for _, merged := range profiles[1:] {
		w.recordMerge(ids, owners, survivor, merged)
		if err := w.merge(ctx, m, survivor, merged); err != nil {
			return 0, err
		}
	}

	if err := w.attach(ctx, m, survivor, ids, owners); err != nil {
		return 0, err
	}
	return survivor, nil
}

// recordMerge explains a merge by the identifiers that bridged the two
// profiles: one the message shared with each.
func (w *writer) recordMerge(ids []Identifier, owners map[Identifier]int64,
	survivor, merged int64) {
	var onSurvivor, onMerged Identifier
	for _, id := range ids {
		switch owners[id] {
		case survivor:
			if onSurvivor.Type == "" {
				onSurvivor = id
			}
		case merged:
			if onMerged.Type == "" {
				onMerged = id
			}
		}
	}
	w.record(decision{kind: DecisionMerged, profile: survivor, other: merged,
		identifier: onMerged, rule: "one message carried identifiers of both profiles",
		detail: fmt.Sprintf("%s was on profile %d and %s on profile %d",
			onSurvivor, survivor, onMerged, merged)})
}

// attach adds the identifiers no profile held yet to profile, and marks
// the ones it already holds as seen at the message's time.
func (w *writer) attach(ctx context.Context, m *Message, profile int64,
	ids []Identifier, owners map[Identifier]int64) error {
	at := m.Timestamp.UnixMilli()
	for _, id := range ids {
		if _, held := owners[id]; held {
			_, err := w.tx.ExecContext(ctx, w.tx.Rebind(`UPDATE identities
				SET last_seen_ms = ? WHERE type = ? AND value = ? AND last_seen_ms < ?`),
				at, id.Type, id.Value, at)
			if err != nil {
				return fmt.Errorf("mark %s seen: %w", id, err)
			}
			continue
		}
		_, err := w.tx.ExecContext(ctx, w.tx.Rebind(`INSERT INTO identities
			(type, value, profile_id, first_seen_ms, last_seen_ms, first_message_id,
			 source, app, device) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			id.Type, id.Value, profile, at, at, m.ID, m.Source, m.App, deviceLabel(m))
		if err != nil {
			return fmt.Errorf("attach %s: %w", id, err)
		}
		if owners != nil {
			w.record(decision{kind: DecisionAttached, profile: profile, identifier: id,
				rule: "the message's other identifiers are on this profile"})
		}
	}
	return nil
}

func deviceLabel(m *Message) string {
	if m.DeviceType == "" && m.DeviceID == "" {
		return ""
	}
	return strings.TrimPrefix(m.DeviceType+" "+m.DeviceID, " ")
}
