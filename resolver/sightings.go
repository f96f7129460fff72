package resolver

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver/sqldb"
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
// identifier whatever the number of events. The resolver caps a profile's
// identifiers (1,000 by default), so their times fit one query.
func (p *Profiles) Sightings(ctx context.Context, profile int64) ([]Sighting, error) {
	var sightings []Sighting
	var last map[Identifier]sightingEvent
	err := p.db.Snapshot(ctx, func(tx *sqlx.Tx) error {
		err := tx.SelectContext(ctx, &sightings, tx.Rebind(`SELECT type, value,
			first_seen_ms, last_seen_ms, first_message_id, source, app, device
			FROM identities WHERE profile_id = ? ORDER BY type, value`), profile)
		if err != nil {
			return fmt.Errorf("list identifiers of profile %d: %w", profile, err)
		}
		last, err = lastSightings(ctx, tx, p.db.Dialect(), profile, sightings)
		return err
	})
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

// sightingEvent is an event of the profile at some identifier's last-seen
// time, with where it came from.
type sightingEvent struct {
	ID         int64  `db:"id"`
	MessageID  string `db:"message_id"`
	TimeMS     int64  `db:"ts_ms"`
	App        string `db:"app"`
	DeviceType string `db:"device_type"`
	DeviceID   string `db:"device_id"`
}

func (e sightingEvent) device() string {
	if e.DeviceType == "" {
		return e.DeviceID
	}
	if e.DeviceID == "" {
		return e.DeviceType
	}
	return e.DeviceType + " " + e.DeviceID
}

// lastSightings finds, for each of the sightings, the event of the profile
// at the identifier's last-seen time that carried it; of several at the
// same millisecond, the latest stored. It reads the events at those times
// by index, then their identifiers by event id: two index lookups whose
// plans never depend on table statistics.
func lastSightings(ctx context.Context, tx *sqlx.Tx, dialect sqldb.Dialect, profile int64,
	sightings []Sighting) (map[Identifier]sightingEvent, error) {
	events, err := eventsAtLastSightings(ctx, tx, profile, sightings)
	if err != nil || len(events) == 0 {
		return map[Identifier]sightingEvent{}, err
	}
	order := make(map[int64]int, len(events))
	ids := make([]int64, len(events))
	for i, e := range events {
		order[e.ID], ids[i] = i, e.ID
	}
	links, err := messageLinks(ctx, tx, dialect, ids)
	if err != nil {
		return nil, err
	}
	lastSeen := make(map[Identifier]int64, len(sightings))
	for _, s := range sightings {
		lastSeen[Identifier{Type: s.Type, Value: s.Value}] = s.LastSeenMS
	}
	best := map[Identifier]int{}
	for _, l := range links {
		id, i := Identifier{Type: l.Type, Value: l.Value}, order[l.EventID]
		at, held := lastSeen[id]
		if prev, seen := best[id]; held && at == events[i].TimeMS && (!seen || i > prev) {
			best[id] = i
		}
	}
	last := make(map[Identifier]sightingEvent, len(best))
	for id, i := range best {
		last[id] = events[i]
	}
	return last, nil
}

// eventsAtLastSightings reads the profile's events at the identifiers'
// last-seen times, in the order they were stored.
func eventsAtLastSightings(ctx context.Context, tx *sqlx.Tx, profile int64,
	sightings []Sighting) ([]sightingEvent, error) {
	if len(sightings) == 0 {
		return nil, nil
	}
	times := make([]int64, len(sightings))
	for i, s := range sightings {
		times[i] = s.LastSeenMS
	}
	slices.Sort(times)
	query, args, err := sqlx.In(`SELECT id, message_id, ts_ms, app, device_type, device_id
		FROM events WHERE profile_id = ? AND ts_ms IN (?) ORDER BY id`,
		profile, slices.Compact(times))
	if err != nil {
		return nil, fmt.Errorf("build sightings query: %w", err)
	}
	var events []sightingEvent
	if err := tx.SelectContext(ctx, &events, tx.Rebind(query), args...); err != nil {
		return nil, fmt.Errorf("read last sightings of profile %d: %w", profile, err)
	}
	return events, nil
}

// messageLink is one identifier a stored message carried.
type messageLink struct {
	EventID int64  `db:"event_id"`
	Type    string `db:"type"`
	Value   string `db:"value"`
}

// messageLinks reads the identifiers the given events' messages carried,
// ordered by event, type and value.
func messageLinks(ctx context.Context, tx *sqlx.Tx, dialect sqldb.Dialect,
	events []int64) ([]messageLink, error) {
	query, args, err := eventLinksQuery(dialect, events)
	if err != nil {
		return nil, err
	}
	var links []messageLink
	if err := tx.SelectContext(ctx, &links, tx.Rebind(query), args...); err != nil {
		return nil, fmt.Errorf("read identity links: %w", err)
	}
	return links, nil
}
