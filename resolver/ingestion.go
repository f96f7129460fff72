package resolver

import (
	"context"
	"fmt"
	"time"
)

// RateMinutes is how many one-minute buckets of the clock EventRates
// counts: a day's.
const RateMinutes = 24 * 60

const minuteMS = int64(time.Minute / time.Millisecond)

// EventTypes returns the types of message stored as events, in the order
// the console shows them.
func EventTypes() []string {
	return []string{"track", "identify", "page", "screen", "group", "alias"}
}

// EventRates counts the events received in each minute of one day.
type EventRates struct {
	// Start is the start of the first minute; minute i starts i minutes
	// later, and the last one holds End.
	Start time.Time
	// End is the time the counts end at, itself included.
	End time.Time
	// PerMinute holds, for each type with events in the day, its count in
	// each of the RateMinutes minutes.
	PerMinute map[string][]int64
	// BySource holds, for each source with events in the day, its count of
	// each type.
	BySource map[string]map[string]int64
	// Total counts every event of the day.
	Total int64
}

// rateRow is one group of the per-minute count.
type rateRow struct {
	Minute int64  `db:"minute"`
	Type   string `db:"type"`
	Source string `db:"source"`
	Count  int64  `db:"n"`
}

// EventRates counts, by receive time, the events of the RateMinutes
// minutes of the clock that end with the one holding end, up to end
// itself: the last day in one-minute buckets, by type and by source.
func (p *Profiles) EventRates(ctx context.Context, end time.Time) (EventRates, error) {
	endMS := end.UnixMilli()
	last := endMS / minuteMS
	first := last - (RateMinutes - 1)
	rates := EventRates{
		Start:     time.UnixMilli(first * minuteMS).UTC(),
		End:       end.UTC(),
		PerMinute: map[string][]int64{},
		BySource:  map[string]map[string]int64{},
	}

	// Integer division of non-negative milliseconds is the minute on both
	// engines. The expression is written as in the index events_received,
	// which SQLite needs to use it, and that index holds every column read.
	var rows []rateRow
	err := p.db.SelectContext(ctx, &rows, p.db.Rebind(`SELECT
		received_ms / 60000 AS minute, type, source, COUNT(*) AS n
		FROM events
		WHERE received_ms / 60000 >= ? AND received_ms / 60000 <= ?
			AND received_ms <= ?
		GROUP BY received_ms / 60000, type, source`), first, last, endMS)
	if err != nil {
		return rates, fmt.Errorf("resolver.EventRates: %w", err)
	}
	for _, row := range rows {
		rates.add(row, first)
	}
	return rates, nil
}

func (r *EventRates) add(row rateRow, first int64) {
	minute := row.Minute - first
	if minute < 0 || minute >= int64(RateMinutes) {
		return // only before 1970, where division rounds up
	}
	counts := r.PerMinute[row.Type]
	if counts == nil {
		counts = make([]int64, RateMinutes)
		r.PerMinute[row.Type] = counts
	}
	counts[minute] += row.Count

	bySource := r.BySource[row.Source]
	if bySource == nil {
		bySource = map[string]int64{}
		r.BySource[row.Source] = bySource
	}
	bySource[row.Type] += row.Count
	r.Total += row.Count
}

// RecentRejections returns up to limit refusals of the RejectionRetention
// before now, newest first.
func (p *Profiles) RecentRejections(ctx context.Context, now time.Time,
	limit int) ([]Rejection, error) {
	var rejections []Rejection
	err := p.db.SelectContext(ctx, &rejections, p.db.Rebind(`SELECT
		id, received_ms, source, endpoint, reason, message_id, excerpt
		FROM rejected_messages WHERE received_ms >= ?
		ORDER BY id DESC LIMIT ?`), now.Add(-RejectionRetention).UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("resolver.RecentRejections: %w", err)
	}
	return rejections, nil
}
