package resolver

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver/sqldb"
)

// IdentityRecord is one identifier on a profile with where it was first
// seen.
type IdentityRecord struct {
	Type           string    `db:"type"`
	Value          string    `db:"value"`
	FirstSeen      time.Time `db:"-"`
	FirstSeenMS    int64     `db:"first_seen_ms"`
	FirstMessageID string    `db:"first_message_id"`
	Source         string    `db:"source"`
	App            string    `db:"app"`
	Device         string    `db:"device"`
}

// Trait is one profile trait with the event time that set it.
type Trait struct {
	Key       string          `db:"key"`
	Value     json.RawMessage `db:"-"`
	Text      string          `db:"value"`
	UpdatedMS int64           `db:"ts_ms"`
	MessageID string          `db:"message_id"`
	Source    string          `db:"source"` // the source of that message
	UpdatedAt time.Time       `db:"-"`
}

// EventRecord is one stored event as the console and APIs show it.
type EventRecord struct {
	MessageID   string `db:"message_id"`
	Type        string `db:"type"`
	Event       string `db:"event"`
	UserID      string `db:"user_id"`
	AnonymousID string `db:"anonymous_id"`
	TimestampMS int64  `db:"ts_ms"`
	App         string `db:"app"`
	DeviceType  string `db:"device_type"`
	DeviceID    string `db:"device_id"`
	Properties  string `db:"properties"`
	Source      string `db:"source"`
}

// Timestamp returns the event's time in UTC.
func (e EventRecord) Timestamp() time.Time { return time.UnixMilli(e.TimestampMS).UTC() }

// Profiles answers read-only questions about profiles.
type Profiles struct {
	db    *sqldb.DB
	rules Rules
}

// NewProfiles returns a reader over db that normalises looked-up values
// with Segment's default rules.
func NewProfiles(db *sqldb.DB) *Profiles { return &Profiles{db: db, rules: DefaultRules()} }

// WithRules returns a reader that normalises looked-up values as rules do,
// custom types included (a phone number typed any way finds its profile).
func (p *Profiles) WithRules(rules Rules) *Profiles {
	return &Profiles{db: p.db, rules: rules}
}

// Find returns the id of the profile holding id, or an *Error with code
// ENotFound when none does. The value is normalised for its type first.
func (p *Profiles) Find(ctx context.Context, id Identifier) (int64, error) {
	id.Value = p.rules.normalise(id.Type, id.Value)
	var profile int64
	err := p.db.GetContext(ctx, &profile, p.db.Rebind(
		`SELECT profile_id FROM identities WHERE type = ? AND value = ?`),
		id.Type, id.Value)
	if sqldb.IsNoRows(err) {
		return 0, Errorf(ENotFound, "no profile holds %s", id)
	}
	if err != nil {
		return 0, fmt.Errorf("find profile by %s: %w", id, err)
	}
	return profile, nil
}

// identifierTypesQuery lists the types of identifier stored, walking the
// identities' key (type, value) from one type to the next: a probe per
// type, where SELECT DISTINCT would read every identity.
const identifierTypesQuery = `WITH RECURSIVE kinds (type) AS (
		SELECT MIN(type) FROM identities
		UNION ALL
		SELECT (SELECT MIN(i.type) FROM identities i WHERE i.type > kinds.type)
		FROM kinds WHERE kinds.type IS NOT NULL)
	SELECT type FROM kinds WHERE type IS NOT NULL`

// searchQuery finds the profiles holding any of the values (the second
// IN) under any of the types (the first): with both lists the key (type,
// value) is probed for each pair. There is no index on the value alone,
// which every new identifier would have to be written into.
const searchQuery = `SELECT DISTINCT profile_id FROM identities
	WHERE type IN (?) AND value IN (?) ORDER BY profile_id LIMIT 50`

// Search finds profiles holding value under any identifier type, for a
// search box where people paste what they have. "type:value" also matches
// that exact identifier.
func (p *Profiles) Search(ctx context.Context, value string) ([]int64, error) {
	var kinds []string
	err := p.db.SelectContext(ctx, &kinds, identifierTypesQuery)
	if err != nil {
		return nil, fmt.Errorf("list identifier types: %w", err)
	}
	if len(kinds) == 0 {
		return nil, nil
	}

	query, args, err := sqlx.In(searchQuery, kinds, p.searchValues(value))
	if err != nil {
		return nil, fmt.Errorf("build search: %w", err)
	}
	var profiles []int64
	if err := p.db.SelectContext(ctx, &profiles, p.db.Rebind(query), args...); err != nil {
		return nil, fmt.Errorf("search profiles: %w", err)
	}
	return profiles, nil
}

// searchValues is what a pasted value may be stored as: itself, normalised
// as an email or as each custom type, and, given as "type:value", the
// value normalised for its type.
func (p *Profiles) searchValues(value string) []string {
	value = strings.TrimSpace(value)
	candidates := []string{value, normalise(TypeEmail, value)}
	for _, custom := range p.rules.Custom {
		if n := p.rules.normalise(custom.Type, value); n != "" {
			candidates = append(candidates, n)
		}
	}
	if kind, rest, ok := strings.Cut(value, ":"); ok {
		candidates = append(candidates, p.rules.normalise(strings.ToLower(kind), rest))
	}
	return candidates
}

// Identifiers lists a profile's identifiers ordered by type and value.
func (p *Profiles) Identifiers(ctx context.Context, profile int64) ([]IdentityRecord, error) {
	var records []IdentityRecord
	err := p.db.SelectContext(ctx, &records, p.db.Rebind(
		`SELECT type, value, first_seen_ms, first_message_id, source, app, device
		 FROM identities WHERE profile_id = ? ORDER BY type, value`), profile)
	if err != nil {
		return nil, fmt.Errorf("list identifiers of profile %d: %w", profile, err)
	}
	for i := range records {
		records[i].FirstSeen = time.UnixMilli(records[i].FirstSeenMS).UTC()
	}
	return records, nil
}

// Events lists a profile's latest events, newest first, at most limit.
func (p *Profiles) Events(ctx context.Context, profile int64, limit int) ([]EventRecord, error) {
	var events []EventRecord
	err := p.db.SelectContext(ctx, &events, p.db.Rebind(
		`SELECT message_id, type, event, user_id, anonymous_id, ts_ms, app,
		        device_type, device_id, properties, source
		 FROM events WHERE profile_id = ?
		 ORDER BY ts_ms DESC, id DESC LIMIT ?`), profile, limit)
	if err != nil {
		return nil, fmt.Errorf("list events of profile %d: %w", profile, err)
	}
	return events, nil
}

// EventCount returns how many events are attributed to a profile.
func (p *Profiles) EventCount(ctx context.Context, profile int64) (int, error) {
	var count int
	err := p.db.GetContext(ctx, &count, p.db.Rebind(
		`SELECT COUNT(*) FROM events WHERE profile_id = ?`), profile)
	if err != nil {
		return 0, fmt.Errorf("count events of profile %d: %w", profile, err)
	}
	return count, nil
}
