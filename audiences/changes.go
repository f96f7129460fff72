package audiences

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
)

// Change kinds in the membership history.
const (
	Entered = "entered"
	Exited  = "exited"
)

// Change is one entry or exit, with a snapshot of the member as they were
// then (for an exit, as they were in the result they left).
type Change struct {
	Cursor string `json:"cursor"`
	Change string `json:"change"`
	RunID  int64  `json:"run_id"`
	At     string `json:"at"`
	Member
}

// recordChanges writes a run's entries and exits, in the transaction that
// saves the run's result.
func (r *Runner) recordChanges(ctx context.Context, tx *sqlx.Tx, audience string,
	run Run, entered, exited []memberRow) error {
	insert := newBatchInsert(tx, "audience_changes", []string{"audience", "run_id",
		"change", "profile_id", "user_id", "email", "identifiers", "attributes", "at_ms"}, "")

	for _, batch := range []struct {
		kind    string
		members []memberRow
	}{{Exited, exited}, {Entered, entered}} {
		for _, m := range batch.members {
			err := insert.add(ctx, audience, run.ID, batch.kind, m.ProfileID,
				m.UserID, m.Email, m.Identifiers, m.Attributes, run.EvaluatedAt.UnixMilli())
			if err != nil {
				return fmt.Errorf("record changes: %w", err)
			}
		}
	}
	if err := insert.flush(ctx); err != nil {
		return fmt.Errorf("record changes: %w", err)
	}
	return nil
}

// ChangePage is one page of an audience's membership history.
type ChangePage struct {
	Changes []Change
	// Next is the cursor to poll with next time: after the last change of
	// this page, or since itself when there is nothing new.
	Next    string
	HasMore bool
}

// changeRow is an audience_changes row.
type changeRow struct {
	ID     int64  `db:"id"`
	Change string `db:"change"`
	AtMS   int64  `db:"at_ms"`
	memberRow
}

// Changes returns up to limit entries and exits of the audience after the
// cursor since ("" or "0" for the beginning), oldest first. Cursors grow
// with every run and stay valid for good: no id is handed out twice, even
// after an erasure deleted the newest changes. A cursor past every id this
// database ever handed out is refused (EInvalid): it comes from another
// database, or from before a restore of an older backup, and polling with
// it would skip changes without a word.
func (r *Runner) Changes(ctx context.Context, name, since string, limit int) (ChangePage, error) {
	if _, err := r.Definition(name); err != nil {
		return ChangePage{}, err
	}
	after, err := parseChangeCursor(since)
	if err != nil {
		return ChangePage{}, err
	}
	if err := r.refuseUnissuedCursor(ctx, after); err != nil {
		return ChangePage{}, err
	}

	var rows []changeRow
	err = r.db.SelectContext(ctx, &rows, r.db.Rebind(`SELECT id, run_id, change, at_ms,
		profile_id, user_id, email, identifiers, attributes FROM audience_changes
		WHERE audience = ? AND id > ? ORDER BY id LIMIT ?`), name, after, limit+1)
	if err != nil {
		return ChangePage{}, fmt.Errorf("read changes of %s: %w", name, err)
	}

	page := ChangePage{Next: strconv.FormatInt(after, 10), HasMore: len(rows) > limit}
	for _, row := range rows[:min(len(rows), limit)] {
		m, err := row.member()
		if err != nil {
			return ChangePage{}, err
		}
		cursor := strconv.FormatInt(row.ID, 10)
		page.Changes = append(page.Changes, Change{Cursor: cursor, Change: row.Change,
			RunID: row.RunID, At: FormatTime(time.UnixMilli(row.AtMS)), Member: m})
		page.Next = cursor
	}
	return page, nil
}

// parseChangeCursor reads since as a cursor: "" for the beginning, else a
// change's id.
func parseChangeCursor(since string) (int64, error) {
	if since == "" {
		return 0, nil
	}
	after, err := strconv.ParseInt(since, 10, 64)
	if err != nil || after < 0 {
		return 0, resolver.Errorf(resolver.EInvalid,
			"since %q is not a cursor from this feed", since)
	}
	return after, nil
}

// highestChangeIDQuery selects the highest change id the database ever
// handed out, 0 before the first: the PostgreSQL identity column's
// sequence, or SQLite's AUTOINCREMENT counter.
func highestChangeIDQuery(dialect sqldb.Dialect) string {
	if dialect == sqldb.Postgres {
		return `SELECT COALESCE(pg_sequence_last_value(
			pg_get_serial_sequence('audience_changes', 'id')), 0)`
	}
	return `SELECT COALESCE((SELECT seq FROM sqlite_sequence
		WHERE name = 'audience_changes'), 0)`
}

// refuseUnissuedCursor returns an EInvalid error when after is past every
// change id handed out, naming where the feed ends.
func (r *Runner) refuseUnissuedCursor(ctx context.Context, after int64) error {
	if after == 0 {
		return nil
	}
	var highest int64
	err := r.db.GetContext(ctx, &highest, highestChangeIDQuery(r.db.Dialect()))
	if err != nil {
		return fmt.Errorf("read the last change id: %w", err)
	}
	if after <= highest {
		return nil
	}
	return resolver.Errorf(resolver.EInvalid, "since %d is past this feed's last "+
		"change (%d): the cursor is from another database, or from before this one "+
		"was restored from a backup; poll with since=%d to go on from here, or "+
		"without since to read the feed again", after, highest, highest)
}
