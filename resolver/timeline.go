package resolver

import (
	"context"
	"fmt"
	"time"
)

// TimelineEvent is one event of a person's timeline, with its position for
// paging.
type TimelineEvent struct {
	EventRecord
	ID int64 `db:"id"`
}

// Position is where this event stands in a timeline.
func (e TimelineEvent) Position() EventPosition {
	return EventPosition{TimestampMS: e.TimestampMS, ID: e.ID}
}

// TimelinePage is one page of a person's events, newest first.
type TimelinePage struct {
	Events []TimelineEvent
	// Older is where the next, older page starts; nil on the last page.
	Older *EventPosition
}

// Timeline returns up to limit of the profile's events, newest first (by
// time, then by arrival), starting after before, or with the newest event
// when before is nil. It reads no raw messages, so a page costs as much as
// limit index lookups whatever the profile's size.
func (p *Profiles) Timeline(ctx context.Context, profile int64, before *EventPosition,
	limit int) (TimelinePage, error) {
	if limit < 1 {
		return TimelinePage{}, Errorf(EInvalid, "a timeline page needs a limit above 0")
	}
	query := `SELECT id, message_id, type, event, user_id, anonymous_id, ts_ms, app,
		device_type, device_id, properties, source FROM events WHERE profile_id = ?`
	args := []any{profile}
	if before != nil {
		query += ` AND (ts_ms < ? OR (ts_ms = ? AND id < ?))`
		args = append(args, before.TimestampMS, before.TimestampMS, before.ID)
	}
	query += ` ORDER BY ts_ms DESC, id DESC LIMIT ?`
	args = append(args, limit+1)

	var page TimelinePage
	if err := p.db.SelectContext(ctx, &page.Events, p.db.Rebind(query), args...); err != nil {
		return page, fmt.Errorf("read timeline of profile %d: %w", profile, err)
	}
	if len(page.Events) > limit {
		page.Events = page.Events[:limit]
		older := page.Events[limit-1].Position()
		page.Older = &older
	}
	return page, nil
}

// Presence is what one app on one device sent for a profile: how many
// events, and when the first and the latest happened.
type Presence struct {
	App        string `db:"app"`
	DeviceType string `db:"device_type"`
	DeviceID   string `db:"device_id"`
	Events     int    `db:"events"`
	FirstMS    int64  `db:"first_ms"`
	LastMS     int64  `db:"last_ms"`
}

// First is when the first of these events happened, in UTC.
func (p Presence) First() time.Time { return time.UnixMilli(p.FirstMS).UTC() }

// Last is when the latest of these events happened, in UTC.
func (p Presence) Last() time.Time { return time.UnixMilli(p.LastMS).UTC() }

// Presences returns, for each app and device the profile's events came
// from, how many there are and when the first and the latest happened,
// ordered by the first. Events without an app or device count under "".
func (p *Profiles) Presences(ctx context.Context, profile int64) ([]Presence, error) {
	var presences []Presence
	err := p.db.SelectContext(ctx, &presences, p.db.Rebind(`SELECT app, device_type,
		device_id, COUNT(*) AS events, MIN(ts_ms) AS first_ms, MAX(ts_ms) AS last_ms
		FROM events WHERE profile_id = ?
		GROUP BY app, device_type, device_id
		ORDER BY first_ms, app, device_type, device_id`), profile)
	if err != nil {
		return nil, fmt.Errorf("read apps and devices of profile %d: %w", profile, err)
	}
	return presences, nil
}
