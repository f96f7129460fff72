package audiences

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
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

// tunePlanner sets, on PostgreSQL and for the rest of tx, how audience
// queries are planned. Memoize off: the planner cached each event's
// properties parsed to jsonb under their text, which no two events share
// (802,027 misses and no hit in shoe_reorder at a million profiles), and
// leaving it out took that query from about 20.2 to 18.3 s. jit off: the
// time goes into jsonb functions that compiling does not speed up, and
// both built-ins ran 0.5 to 1 s faster without it.
func (r *Runner) tunePlanner(ctx context.Context, tx *sqlx.Tx) error {
	if r.db.Dialect() != sqldb.Postgres {
		return nil
	}
	// Through pg_settings, so that a server without one of them (memoize
	// came in PostgreSQL 14) skips it instead of failing the audience.
	_, err := tx.ExecContext(ctx, `SELECT set_config(name, 'off', true)
		FROM pg_settings WHERE name IN ('enable_memoize', 'jit')`)
	if err != nil {
		return fmt.Errorf("set planner options: %w", err)
	}
	return nil
}

// evaluate runs def's compiled query in the database and reads one member
// per row; no event leaves the database.
func (r *Runner) evaluate(ctx context.Context, tx *sqlx.Tx, def Definition,
	now time.Time) ([]Member, error) {
	compiled, err := compile(def, now, dialectOf(r.db))
	if err != nil {
		return nil, err
	}
	if err := r.tunePlanner(ctx, tx); err != nil {
		return nil, fmt.Errorf("compute audience %s: %w", def.Name, err)
	}
	rows, err := tx.QueryContext(ctx, tx.Rebind(compiled.sql), compiled.args...)
	if err != nil {
		return nil, fmt.Errorf("compute audience %s: %w", def.Name, err)
	}
	defer rows.Close()

	var found []Member
	values := make([]any, len(compiled.columns)+1)
	for i := range values {
		values[i] = new(any)
	}
	for rows.Next() {
		if err := rows.Scan(values...); err != nil {
			return nil, fmt.Errorf("read member of %s: %w", def.Name, err)
		}
		m, err := readMember(compiled.columns, values)
		if err != nil {
			return nil, fmt.Errorf("read member of %s: %w", def.Name, err)
		}
		found = append(found, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("compute audience %s: %w", def.Name, err)
	}
	return found, nil
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
