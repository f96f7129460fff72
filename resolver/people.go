package resolver

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver/sqldb"
)

// NameTraits are the trait keys a person's name is read from.
func NameTraits() []string {
	return []string{"name", "first_name", "last_name", "firstName", "lastName"}
}

// PersonSummary is what a list of people shows of each: the identifiers,
// the name traits and when the person was last seen.
type PersonSummary struct {
	Profile     int64
	Identifiers []Identifier // ordered by type and value
	NameTraits  []Trait      // the NameTraits the profile has, by key
	// LastSeen is the latest time any of the identifiers was seen.
	LastSeen time.Time
}

// Summaries returns a summary of each of the given profiles that holds an
// identifier, in the order given; at most 100 profiles. Name traits that
// were removed (set to null) are left out.
func (p *Profiles) Summaries(ctx context.Context, profiles []int64) ([]PersonSummary, error) {
	if len(profiles) == 0 {
		return nil, nil
	}
	if len(profiles) > 100 {
		return nil, Errorf(ETooLarge, "at most 100 profiles can be summarised at once")
	}
	byProfile, err := p.summaryIdentifiers(ctx, profiles)
	if err != nil {
		return nil, err
	}
	if err := p.summaryNames(ctx, profiles, byProfile); err != nil {
		return nil, err
	}
	var out []PersonSummary
	for _, id := range profiles {
		if s, ok := byProfile[id]; ok {
			out = append(out, *s)
		}
	}
	return out, nil
}

func (p *Profiles) summaryIdentifiers(ctx context.Context,
	profiles []int64) (map[int64]*PersonSummary, error) {
	query, args, err := sqlx.In(`SELECT profile_id, type, value, last_seen_ms
		FROM identities WHERE profile_id IN (?) ORDER BY profile_id, type, value`, profiles)
	if err != nil {
		return nil, fmt.Errorf("build summary query: %w", err)
	}
	var rows []struct {
		Profile    int64  `db:"profile_id"`
		Type       string `db:"type"`
		Value      string `db:"value"`
		LastSeenMS int64  `db:"last_seen_ms"`
	}
	if err := p.db.SelectContext(ctx, &rows, p.db.Rebind(query), args...); err != nil {
		return nil, fmt.Errorf("read identifiers of %d profiles: %w", len(profiles), err)
	}
	byProfile := map[int64]*PersonSummary{}
	for _, row := range rows {
		s := byProfile[row.Profile]
		if s == nil {
			s = &PersonSummary{Profile: row.Profile}
			byProfile[row.Profile] = s
		}
		s.Identifiers = append(s.Identifiers, Identifier{Type: row.Type, Value: row.Value})
		if seen := time.UnixMilli(row.LastSeenMS).UTC(); seen.After(s.LastSeen) {
			s.LastSeen = seen
		}
	}
	return byProfile, nil
}

func (p *Profiles) summaryNames(ctx context.Context, profiles []int64,
	byProfile map[int64]*PersonSummary) error {
	query, args, err := sqlx.In(`SELECT profile_id, key, value, ts_ms, message_id
		FROM traits WHERE profile_id IN (?) AND key IN (?) ORDER BY profile_id, key`,
		profiles, NameTraits())
	if err != nil {
		return fmt.Errorf("build name query: %w", err)
	}
	var rows []struct {
		Profile int64 `db:"profile_id"`
		Trait
	}
	if err := p.db.SelectContext(ctx, &rows, p.db.Rebind(query), args...); err != nil {
		return fmt.Errorf("read names of %d profiles: %w", len(profiles), err)
	}
	for _, row := range rows {
		if s := byProfile[row.Profile]; s != nil && row.Text != "null" {
			row.Value = json.RawMessage(row.Text)
			row.UpdatedAt = time.UnixMilli(row.UpdatedMS).UTC()
			s.NameTraits = append(s.NameTraits, row.Trait)
		}
	}
	return nil
}

// CurrentProfile returns the profile that holds profile's identity now:
// profile itself, or the profile it was merged into. A profile id that was
// never made is an *Error with code ENotFound.
func (p *Profiles) CurrentProfile(ctx context.Context, profile int64) (int64, error) {
	var current int64
	err := p.db.GetContext(ctx, &current, p.db.Rebind(
		`SELECT COALESCE(merged_into, id) FROM profiles WHERE id = ?`), profile)
	if sqldb.IsNoRows(err) {
		return 0, Errorf(ENotFound, "no profile %d", profile)
	}
	if err != nil {
		return 0, fmt.Errorf("read profile %d: %w", profile, err)
	}
	return current, nil
}

// PersonHistory returns what History returns, the identity decisions of a
// profile and of every profile merged into it in the order of the
// messages' times, reading each side by its index: its cost follows the
// profile's decisions, never the table's size, on every engine.
func (p *Profiles) PersonHistory(ctx context.Context, profile int64) ([]DecisionRecord, error) {
	const columns = `id, profile_id, kind, message_id, identifier, other_profile_id,
		rule, detail, event_ms, at_ms`
	var records []DecisionRecord
	err := p.db.SelectContext(ctx, &records, p.db.Rebind(`SELECT `+columns+`
		FROM identity_decisions WHERE profile_id = ?
		UNION ALL
		SELECT `+columns+` FROM identity_decisions WHERE profile_id IN
		  (SELECT id FROM profiles WHERE merged_into = ? AND id <> ?)
		ORDER BY event_ms, id`), profile, profile, profile)
	if err != nil {
		return nil, fmt.Errorf("read history of profile %d: %w", profile, err)
	}
	return records, nil
}
