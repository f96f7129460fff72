package audiences

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver"
)

// Member is one profile in an audience's result, with a snapshot of its
// identifiers taken when the audience was computed.
type Member struct {
	ProfileID   int64               `json:"profile_id"`
	UserID      string              `json:"user_id"`
	Email       string              `json:"email"`
	Identifiers map[string][]string `json:"identifiers"`
	Attributes  map[string]any      `json:"attributes"`
}

// timeLayout is how times appear in attributes: UTC with milliseconds.
const timeLayout = "2006-01-02T15:04:05.000Z"

// FormatTime writes t as every knit export and API writes times: UTC with
// milliseconds, such as 2026-11-27T12:00:00.000Z.
func FormatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// members evaluates def for every profile with relevant events and attaches
// identifiers to the members. Events and identifiers are read from one
// snapshot, so a merge committed meanwhile cannot drop a member.
func (r *Runner) members(ctx context.Context, def Definition, now time.Time) ([]Member, error) {
	var members []Member
	err := r.db.Snapshot(ctx, func(tx *sqlx.Tx) error {
		found, err := r.evaluate(ctx, tx, def, now)
		if err != nil {
			return err
		}
		members, err = r.withIdentifiers(ctx, tx, def, found)
		return err
	})
	return members, err
}

// evaluate streams one profile's history at a time through def's rule, so
// memory stays bounded by the largest single history.
func (r *Runner) evaluate(ctx context.Context, tx *sqlx.Tx, def Definition,
	now time.Time) ([]Member, error) {
	rule := def.rule()
	query, args, err := sqlx.In(`SELECT profile_id, event, ts_ms, properties
		FROM events
		WHERE type = 'track' AND profile_id IS NOT NULL
		  AND event IN (?) AND ts_ms <= ?
		ORDER BY profile_id, ts_ms, id`, rule.events(), now.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("build event query: %w", err)
	}
	rows, err := tx.QueryxContext(ctx, tx.Rebind(query), args...)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()

	var found []Member
	var current int64
	var history []Event
	flush := func() {
		if attrs, ok := rule.evaluate(history, now); ok {
			found = append(found, Member{ProfileID: current, Attributes: formatTimes(attrs)})
		}
	}
	for rows.Next() {
		var profile, ms int64
		var name, props string
		if err := rows.Scan(&profile, &name, &ms, &props); err != nil {
			return nil, fmt.Errorf("scan event: %w", err)
		}
		if profile != current && len(history) > 0 {
			flush()
			history = history[:0]
		}
		current = profile
		history = append(history, Event{
			Name: name, Time: time.UnixMilli(ms).UTC(), Properties: decodeProperties(props),
		})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	if len(history) > 0 {
		flush()
	}
	return found, nil
}

func decodeProperties(text string) map[string]any {
	dec := json.NewDecoder(bytes.NewReader([]byte(text)))
	dec.UseNumber()
	var props map[string]any
	if err := dec.Decode(&props); err != nil {
		return map[string]any{}
	}
	return props
}

func formatTimes(attrs map[string]any) map[string]any {
	for key, value := range attrs {
		if t, ok := value.(time.Time); ok {
			attrs[key] = t.UTC().Format(timeLayout)
		}
	}
	return attrs
}

// identityRow is one identifier of a member profile.
type identityRow struct {
	ProfileID   int64  `db:"profile_id"`
	Type        string `db:"type"`
	Value       string `db:"value"`
	FirstSeenMS int64  `db:"first_seen_ms"`
}

// withIdentifiers fills in each member's identifiers, user_id and email, and
// drops members without an email when the audience needs one.
func (r *Runner) withIdentifiers(ctx context.Context, tx *sqlx.Tx, def Definition,
	found []Member) ([]Member, error) {
	const chunk = 500
	kept := found[:0]
	for start := 0; start < len(found); start += chunk {
		batch := found[start:min(start+chunk, len(found))]
		ids, err := identifiersOf(ctx, tx, batch)
		if err != nil {
			return nil, err
		}
		for _, m := range batch {
			describe(&m, ids[m.ProfileID])
			if def.NeedsEmail() && m.Email == "" {
				continue
			}
			kept = append(kept, m)
		}
	}
	return kept, nil
}

func identifiersOf(ctx context.Context, tx *sqlx.Tx,
	batch []Member) (map[int64][]identityRow, error) {
	profiles := make([]int64, len(batch))
	for i, m := range batch {
		profiles[i] = m.ProfileID
	}
	query, args, err := sqlx.In(`SELECT profile_id, type, value, first_seen_ms
		FROM identities WHERE profile_id IN (?)`, profiles)
	if err != nil {
		return nil, fmt.Errorf("build identifier query: %w", err)
	}

	var rows []identityRow
	if err := tx.SelectContext(ctx, &rows, tx.Rebind(query), args...); err != nil {
		return nil, fmt.Errorf("read member identifiers: %w", err)
	}
	byProfile := map[int64][]identityRow{}
	for _, row := range rows {
		byProfile[row.ProfileID] = append(byProfile[row.ProfileID], row)
	}
	return byProfile, nil
}

// describe sets a member's identifiers, and as its user_id and email the
// most recently first-seen value of each type.
func describe(m *Member, rows []identityRow) {
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Type != rows[j].Type {
			return rows[i].Type < rows[j].Type
		}
		return rows[i].Value < rows[j].Value
	})

	m.Identifiers = map[string][]string{}
	newest := map[string]identityRow{}
	for _, row := range rows {
		m.Identifiers[row.Type] = append(m.Identifiers[row.Type], row.Value)
		if seen, ok := newest[row.Type]; !ok || row.FirstSeenMS > seen.FirstSeenMS {
			newest[row.Type] = row
		}
	}
	m.UserID = newest[resolver.TypeUserID].Value
	m.Email = newest[resolver.TypeEmail].Value
}
