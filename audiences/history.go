package audiences

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// SizeHistory returns the audience's latest limit successful runs, oldest
// first: its size over time, as a chart draws it. Failed, aborted and
// running runs change no result and are left out. An audience never
// computed has an empty history; an unknown name is an *resolver.Error with
// code ENotFound.
func (r *Runner) SizeHistory(ctx context.Context, name string, limit int) ([]Run, error) {
	if _, err := r.Definition(name); err != nil {
		return nil, err
	}
	var rows []runRow
	err := r.db.SelectContext(ctx, &rows, r.db.Rebind(`SELECT `+runColumns+`
		FROM audience_runs WHERE audience = ? AND status = 'ok'
		ORDER BY id DESC LIMIT ?`), name, limit)
	if err != nil {
		return nil, fmt.Errorf("read size history of %s: %w", name, err)
	}
	runs := make([]Run, len(rows))
	for i, row := range rows {
		runs[len(rows)-1-i] = row.run()
	}
	return runs, nil
}

// RecentChanges returns the audience's latest limit entries and exits,
// newest first: the reverse of the order Changes reads. Each carries its
// cursor. An unknown name is an *resolver.Error with code ENotFound.
func (r *Runner) RecentChanges(ctx context.Context, name string, limit int) ([]Change, error) {
	if _, err := r.Definition(name); err != nil {
		return nil, err
	}
	var rows []changeRow
	err := r.db.SelectContext(ctx, &rows, r.db.Rebind(`SELECT id, run_id, change, at_ms,
		profile_id, user_id, email, identifiers, attributes FROM audience_changes
		WHERE audience = ? ORDER BY id DESC LIMIT ?`), name, limit)
	if err != nil {
		return nil, fmt.Errorf("read recent changes of %s: %w", name, err)
	}
	changes := make([]Change, 0, len(rows))
	for _, row := range rows {
		m, err := row.member()
		if err != nil {
			return nil, err
		}
		changes = append(changes, Change{
			Cursor: strconv.FormatInt(row.ID, 10), Change: row.Change, RunID: row.RunID,
			At: FormatTime(time.UnixMilli(row.AtMS)), Member: m,
		})
	}
	return changes, nil
}
