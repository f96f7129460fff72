package resolver

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver/sqldb"
)

// EventQuery selects a profile's events for the Profile API.
type EventQuery struct {
	Start, End time.Time // End is exclusive; zero times are open
	Include    []string  // event names to keep; none keeps all
	Exclude    []string  // event names to leave out
	Ascending  bool      // oldest first; newest first otherwise
	Limit      int
	// After continues after the event at this position (time, then id).
	After *EventPosition
}

// EventPosition is where a page of events ended.
type EventPosition struct {
	TimestampMS int64
	ID          int64
}

// ProfileEvent is one stored event with its raw message and the
// identifiers it carried.
type ProfileEvent struct {
	EventRecord
	ID          int64        `db:"id"`
	Raw         string       `db:"raw"`
	Identifiers []Identifier `db:"-"`
}

// Position is where this event stands in a page.
func (e ProfileEvent) Position() EventPosition {
	return EventPosition{TimestampMS: e.TimestampMS, ID: e.ID}
}

// EventPage returns up to q.Limit events of the profile matching q, with
// the identifiers each one carried, both read from one snapshot: an event
// id that an erasure frees and a new event takes never mixes two
// messages' identifiers.
func (p *Profiles) EventPage(ctx context.Context, profile int64,
	q EventQuery) ([]ProfileEvent, error) {
	query, args, err := eventPageQuery(profile, q)
	if err != nil {
		return nil, err
	}
	var events []ProfileEvent
	err = p.db.Snapshot(ctx, func(tx *sqlx.Tx) error {
		if err := tx.SelectContext(ctx, &events, tx.Rebind(query), args...); err != nil {
			return fmt.Errorf("list events of profile %d: %w", profile, err)
		}
		return attachLinks(ctx, tx, p.db.Dialect(), events)
	})
	return events, err
}

func eventPageQuery(profile int64, q EventQuery) (string, []any, error) {
	where := []string{"profile_id = ?"}
	args := []any{profile}
	if !q.Start.IsZero() {
		where, args = append(where, "ts_ms >= ?"), append(args, q.Start.UnixMilli())
	}
	if !q.End.IsZero() {
		where, args = append(where, "ts_ms < ?"), append(args, q.End.UnixMilli())
	}
	if len(q.Include) > 0 {
		where, args = append(where, "event IN (?)"), append(args, q.Include)
	}
	if len(q.Exclude) > 0 {
		where, args = append(where, "event NOT IN (?)"), append(args, q.Exclude)
	}
	order, compare := "DESC", "<"
	if q.Ascending {
		order, compare = "ASC", ">"
	}
	if q.After != nil {
		where = append(where, "(ts_ms "+compare+" ? OR (ts_ms = ? AND id "+compare+" ?))")
		args = append(args, q.After.TimestampMS, q.After.TimestampMS, q.After.ID)
	}

	query := `SELECT id, message_id, type, event, user_id, anonymous_id, ts_ms, app,
		device_type, device_id, properties, source, raw FROM events
		WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY ts_ms ` + order + `, id ` + order + ` LIMIT ?`
	query, args, err := sqlx.In(query, append(args, q.Limit)...)
	if err != nil {
		return "", nil, fmt.Errorf("build event query: %w", err)
	}
	return query, args, nil
}

// attachLinks fills in each event's identifiers from identity_links.
func attachLinks(ctx context.Context, tx *sqlx.Tx, dialect sqldb.Dialect,
	events []ProfileEvent) error {
	if len(events) == 0 {
		return nil
	}
	ids := make([]int64, len(events))
	byEvent := map[int64]*ProfileEvent{}
	for i := range events {
		ids[i] = events[i].ID
		byEvent[events[i].ID] = &events[i]
	}
	links, err := messageLinks(ctx, tx, dialect, ids)
	if err != nil {
		return err
	}
	for _, l := range links {
		e := byEvent[l.EventID]
		e.Identifiers = append(e.Identifiers, Identifier{Type: l.Type, Value: l.Value})
	}
	return nil
}

// Metadata describes a profile's life: when it began and was last updated,
// and its first and last messages with their sources.
type Metadata struct {
	CreatedAt      time.Time
	UpdatedAt      time.Time
	FirstMessageID string
	FirstSourceID  string
	LastMessageID  string
	LastSourceID   string
}

// Metadata returns the profile's metadata; its first and last messages are
// the first and last that knit received for it.
func (p *Profiles) Metadata(ctx context.Context, profile int64) (Metadata, error) {
	var meta Metadata
	var created int64
	err := p.db.GetContext(ctx, &created, p.db.Rebind(
		`SELECT created_ms FROM profiles WHERE id = ?`), profile)
	if err != nil {
		return meta, fmt.Errorf("read profile %d: %w", profile, err)
	}
	meta.CreatedAt = time.UnixMilli(created).UTC()

	for _, end := range []struct {
		order           string
		message, source *string
		received        *time.Time
	}{
		{"ASC", &meta.FirstMessageID, &meta.FirstSourceID, nil},
		{"DESC", &meta.LastMessageID, &meta.LastSourceID, &meta.UpdatedAt},
	} {
		var row struct {
			MessageID  string `db:"message_id"`
			Source     string `db:"source"`
			ReceivedMS int64  `db:"received_ms"`
		}
		err := p.db.GetContext(ctx, &row, p.db.Rebind(`SELECT message_id, source,
			received_ms FROM events WHERE profile_id = ? ORDER BY id `+end.order+` LIMIT 1`),
			profile)
		if sqldb.IsNoRows(err) {
			break // a profile whose events all moved away
		}
		if err != nil {
			return meta, fmt.Errorf("read events of profile %d: %w", profile, err)
		}
		*end.message, *end.source = row.MessageID, row.Source
		if end.received != nil {
			*end.received = time.UnixMilli(row.ReceivedMS).UTC()
		}
	}
	return meta, nil
}

// Groups returns the group (account) ids the profile joined with group
// calls, sorted.
func (p *Profiles) Groups(ctx context.Context, profile int64) ([]string, error) {
	var raws []string
	err := p.db.SelectContext(ctx, &raws, p.db.Rebind(
		`SELECT raw FROM events WHERE profile_id = ? AND type = 'group' ORDER BY id`), profile)
	if err != nil {
		return nil, fmt.Errorf("read group calls of profile %d: %w", profile, err)
	}
	seen := map[string]bool{}
	var groups []string
	for _, raw := range raws {
		fields, err := decodeObject([]byte(raw))
		if err != nil {
			continue
		}
		id := strings.TrimSpace(looseString(fields["groupId"]))
		if id != "" && !seen[id] {
			seen[id] = true
			groups = append(groups, id)
		}
	}
	sort.Strings(groups)
	return groups, nil
}

// eventLinksQuery reads the identity links of the events ids, each once
// however often its id is listed, ordered by event, type and value. On
// PostgreSQL each id is a probe of the primary key whatever the statistics
// say: without them (autovacuum off, a bulk load not yet analyzed) the
// planner took a page of 51 ids to match a quarter of 29.5 million links
// and read the whole table, 1.7 s a page.
func eventLinksQuery(dialect sqldb.Dialect, ids []int64) (string, []any, error) {
	if dialect == sqldb.Postgres {
		return `SELECT l.event_id, l.type, l.value
			FROM (SELECT DISTINCT id FROM unnest(CAST(? AS BIGINT[])) AS ids(id)) AS e
			CROSS JOIN LATERAL (SELECT event_id, type, value FROM identity_links
				WHERE event_id = e.id OFFSET 0) AS l
			ORDER BY l.event_id, l.type, l.value`, []any{ids}, nil
	}
	query, args, err := sqlx.In(`SELECT event_id, type, value FROM identity_links
		WHERE event_id IN (?) ORDER BY event_id, type, value`, ids)
	if err != nil {
		return "", nil, fmt.Errorf("build link query: %w", err)
	}
	return query, args, nil
}
