package resolver

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// AudienceMembership is a profile's place in one audience's current
// result: the run that computed it and the attributes it gave the person.
type AudienceMembership struct {
	Audience    string    `db:"audience"`
	RunID       int64     `db:"run_id"`
	EvaluatedMS int64     `db:"evaluated_ms"`
	EvaluatedAt time.Time `db:"-"`
	// Attributes is the member's attributes as a JSON object.
	Attributes string `db:"attributes"`
}

// AudienceMemberships returns the profile's memberships in the current
// results of the named audiences, ordered by audience name. Each audience
// costs one primary-key lookup, so the profile's place is found whatever
// the audiences' sizes.
func (p *Profiles) AudienceMemberships(ctx context.Context, profile int64,
	audiences []string) ([]AudienceMembership, error) {
	if len(audiences) == 0 {
		return nil, nil
	}
	query, args, err := sqlx.In(`SELECT m.audience, m.run_id, r.evaluated_ms, m.attributes
		FROM audience_members m JOIN audience_runs r ON r.id = m.run_id
		WHERE m.audience IN (?) AND m.profile_id = ? ORDER BY m.audience`,
		audiences, profile)
	if err != nil {
		return nil, fmt.Errorf("build membership query: %w", err)
	}
	var out []AudienceMembership
	if err := p.db.SelectContext(ctx, &out, p.db.Rebind(query), args...); err != nil {
		return nil, fmt.Errorf("read audiences of profile %d: %w", profile, err)
	}
	for i := range out {
		out[i].EvaluatedAt = time.UnixMilli(out[i].EvaluatedMS).UTC()
	}
	return out, nil
}

// maxProductLookups bounds how many product ids ProductNames looks up, and
// productEventsRead how many events it reads for them.
const (
	maxProductLookups = 20
	productEventsRead = 200
)

// ProductNames finds names for product ids in the profile's own events, as
// Segment's e-commerce spec carries them: a "name" beside a "product_id" in
// the properties or in an item of their "products" list. Ids without a name
// are left out; of several names, the latest event's wins. It looks up the
// first 20 ids given, in the latest 200 events that mention any of them,
// and stops reading once every id has a name.
func (p *Profiles) ProductNames(ctx context.Context, profile int64,
	ids []string) (map[string]string, error) {
	ids = ids[:min(len(ids), maxProductLookups)]
	names := map[string]string{}
	if len(ids) == 0 {
		return names, nil
	}
	likes := make([]string, len(ids))
	args := []any{profile}
	wanted := map[string]bool{}
	for i, id := range ids {
		likes[i] = `properties LIKE ? ESCAPE '\'`
		args = append(args, "%"+escapeLike(id)+"%")
		wanted[id] = true
	}
	rows, err := p.db.QueryxContext(ctx, p.db.Rebind(`SELECT properties FROM events
		WHERE profile_id = ? AND (`+strings.Join(likes, " OR ")+`)
		ORDER BY ts_ms DESC, id DESC LIMIT ?`), append(args, productEventsRead)...)
	if err != nil {
		return nil, fmt.Errorf("read product names of profile %d: %w", profile, err)
	}
	defer rows.Close()
	for len(names) < len(wanted) && rows.Next() {
		var properties string
		if err := rows.Scan(&properties); err != nil {
			return nil, fmt.Errorf("read product names of profile %d: %w", profile, err)
		}
		collectProductNames(properties, wanted, names)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read product names of profile %d: %w", profile, err)
	}
	return names, nil
}

// collectProductNames adds the wanted product ids named in one event's
// properties to names, keeping names already found (from later events).
func collectProductNames(properties string, wanted map[string]bool, names map[string]string) {
	var props map[string]any
	dec := json.NewDecoder(strings.NewReader(properties))
	dec.UseNumber() // numeric ids read as written
	if dec.Decode(&props) != nil {
		return
	}
	items := []any{props}
	if list, ok := props["products"].([]any); ok {
		items = append(items, list...)
	}
	for _, item := range items {
		product, _ := item.(map[string]any)
		id, name := looseString(product["product_id"]), looseString(product["name"])
		if _, named := names[id]; wanted[id] && !named && strings.TrimSpace(name) != "" {
			names[id] = name
		}
	}
}

// escapeLike escapes LIKE's wildcards and its escape character.
func escapeLike(text string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(text)
}
