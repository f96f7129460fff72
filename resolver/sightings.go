package resolver

import (
	"context"
	"fmt"
	"time"
)

// Sighting is one identifier of a profile with where and when it was first
// seen and when it was last seen, and where, when knit still holds the
// event that carried it last.
type Sighting struct {
	IdentityRecord
	LastSeenMS int64     `db:"last_seen_ms"`
	LastSeen   time.Time `db:"-"`
	// LastApp and LastDevice (a device type and id, as Device) are of the
	// latest event that carried the identifier; both "" when it is gone.
	LastApp    string `db:"-"`
	LastDevice string `db:"-"`
}

// Sightings lists a profile's identifiers ordered by type and value, each
// with its first and last sightings. It reads the last sighting's event by
// the identifier's last-seen time, so it costs a few index lookups an
// identifier whatever the number of events.
func (p *Profiles) Sightings(ctx context.Context, profile int64) ([]Sighting, error) {
	var sightings []Sighting
	err := p.db.SelectContext(ctx, &sightings, p.db.Rebind(`SELECT type, value,
		first_seen_ms, last_seen_ms, first_message_id, source, app, device
		FROM identities WHERE profile_id = ? ORDER BY type, value`), profile)
	if err != nil {
		return nil, fmt.Errorf("list identifiers of profile %d: %w", profile, err)
	}
	last, err := p.lastSightings(ctx, profile)
	if err != nil {
		return nil, err
	}
	for i := range sightings {
		s := &sightings[i]
		s.FirstSeen = time.UnixMilli(s.FirstSeenMS).UTC()
		s.LastSeen = time.UnixMilli(s.LastSeenMS).UTC()
		if where, ok := last[Identifier{Type: s.Type, Value: s.Value}]; ok {
			s.LastApp, s.LastDevice = where.App, where.device()
		}
	}
	return sightings, nil
}

// sightingRow is the event that last carried an identifier.
type sightingRow struct {
	Type       string `db:"type"`
	Value      string `db:"value"`
	App        string `db:"app"`
	DeviceType string `db:"device_type"`
	DeviceID   string `db:"device_id"`
}

func (r sightingRow) device() string {
	if r.DeviceType == "" {
		return r.DeviceID
	}
	if r.DeviceID == "" {
		return r.DeviceType
	}
	return r.DeviceType + " " + r.DeviceID
}

// lastSightings finds, for each identifier of the profile, the event of
// the profile at the identifier's last-seen time that carried it; of
// several at the same millisecond, the latest stored.
func (p *Profiles) lastSightings(ctx context.Context,
	profile int64) (map[Identifier]sightingRow, error) {
	var rows []sightingRow
	err := p.db.SelectContext(ctx, &rows, p.db.Rebind(`SELECT i.type, i.value,
		e.app, e.device_type, e.device_id
		FROM identities i
		JOIN events e ON e.profile_id = i.profile_id AND e.ts_ms = i.last_seen_ms
		JOIN identity_links l ON l.message_id = e.message_id
		     AND l.type = i.type AND l.value = i.value
		WHERE i.profile_id = ?
		ORDER BY e.id`), profile)
	if err != nil {
		return nil, fmt.Errorf("read last sightings of profile %d: %w", profile, err)
	}
	last := make(map[Identifier]sightingRow, len(rows))
	for _, row := range rows {
		last[Identifier{Type: row.Type, Value: row.Value}] = row
	}
	return last, nil
}
