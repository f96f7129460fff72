package audiences

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
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

// shareWait is how long computing an audience waits for each connection
// beyond its first; without one soon, it computes in fewer queries rather
// than wait on other computations holding connections.
const shareWait = 100 * time.Millisecond

// decodeMembers turns stored-form rows into members.
func decodeMembers(rows []memberRow) ([]Member, error) {
	members := make([]Member, len(rows))
	for i, row := range rows {
		m, err := row.member()
		if err != nil {
			return nil, err
		}
		members[i] = m
	}
	return members, nil
}

// memberRows evaluates def for every profile with relevant events and
// attaches identifiers to the members, in profile order. Events and
// identifiers are read from one snapshot, so a merge committed meanwhile
// cannot drop a member. Each member is held as it will be stored, its
// identifiers and attributes encoded: a run holds every member at once,
// and the encoded text takes a fraction of the memory of decoded maps.
func (r *Runner) memberRows(ctx context.Context, def Definition,
	now time.Time) ([]memberRow, error) {
	var members []memberRow
	err := r.db.SharedSnapshot(ctx, r.queries, shareWait, tablesRead(),
		func(txs []*sqlx.Tx) error {
			found, err := r.evaluateShares(ctx, txs, def, now)
			if err != nil {
				return err
			}
			members, err = r.withIdentifiers(ctx, txs[0], def, found)
			return err
		})
	return members, err
}

// tunePlanner sets, on PostgreSQL and for the rest of tx, how audience
// queries are planned and run. Memoize off: the planner cached each event's
// properties parsed to jsonb under their text, which no two events share
// (802,027 misses and no hit in shoe_reorder at a million profiles), and
// leaving it out took that query from about 20.2 to 18.3 s. jit off: the
// time goes into jsonb functions that compiling does not speed up, and
// both built-ins ran 0.5 to 1 s faster without it. A check every second
// that knit is still connected: the query of a knit process that was
// killed otherwise runs to its end for no one, seconds at scale.
func (r *Runner) tunePlanner(ctx context.Context, tx *sqlx.Tx) error {
	if r.db.Dialect() != sqldb.Postgres {
		return nil
	}
	// Through pg_settings, so that a server without one of them (memoize
	// came in PostgreSQL 14, the connection check too) skips it instead of
	// failing the audience.
	_, err := tx.ExecContext(ctx, `SELECT set_config(name,
		CASE name WHEN 'client_connection_check_interval' THEN '1000' ELSE 'off' END, true)
		FROM pg_settings
		WHERE name IN ('enable_memoize', 'jit', 'client_connection_check_interval')`)
	if err != nil {
		return fmt.Errorf("set planner options: %w", err)
	}
	return nil
}

// evaluateShares evaluates def in the snapshot txs share. With more than
// one transaction (PostgreSQL), each computes the members among its share
// of the profiles, at once, so the server works on the audience in as many
// processes; the members come back in profile order, as from one query.
func (r *Runner) evaluateShares(ctx context.Context, txs []*sqlx.Tx, def Definition,
	now time.Time) ([]memberRow, error) {
	shares := len(txs)
	if shares == 1 {
		return r.evaluate(ctx, txs[0], def, now, share{})
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	found := make([][]memberRow, shares)
	errs := make([]error, shares)
	// TODO(audiences): a cancel that reaches PostgreSQL before the query
	// it cancels is lost (2 of 30 runs whose other share failed within
	// milliseconds, helper-39); an abort has the same exposure. pgx then
	// drains that connection for up to 15 s before closing it, so the
	// query runs on until it ends or, 15 s on, the connection check stops
	// it. Ending it at once needs the backends' pids, swept once every
	// share's connection is idle or closed.
	compute := func(i int) {
		found[i], errs[i] = r.evaluate(ctx, txs[i], def, now, share{index: i, of: shares})
		if errs[i] != nil {
			cancel() // the others' work is wasted now
		}
	}
	var wg sync.WaitGroup
	for i := 1; i < shares; i++ {
		wg.Go(func() { compute(i) })
	}
	compute(0)
	wg.Wait()

	if err := firstCause(errs); err != nil {
		return nil, err
	}
	return inProfileOrder(found), nil
}

// firstCause returns the error that stopped a shared computation: the
// first that is not the cancellation the others were stopped with.
func firstCause(errs []error) error {
	var canceled error
	for _, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, context.Canceled) && canceled == nil:
			canceled = err
		case !errors.Is(err, context.Canceled):
			return err
		}
	}
	return canceled
}

// inProfileOrder joins the shares' members into one list sorted by
// profile id.
func inProfileOrder(shares [][]memberRow) []memberRow {
	total := 0
	for _, s := range shares {
		total += len(s)
	}
	all := make([]memberRow, 0, total)
	for _, s := range shares {
		all = append(all, s...)
	}
	sortByProfile(all)
	return all
}

// sortByProfile puts rows in profile order, as the diff with the previous
// result reads them; rows already in order, as a computation returns
// them, are only checked.
func sortByProfile(rows []memberRow) {
	byProfile := func(a, b memberRow) int { return cmp.Compare(a.ProfileID, b.ProfileID) }
	if !slices.IsSortedFunc(rows, byProfile) {
		slices.SortFunc(rows, byProfile)
	}
}

// evaluate runs the query of def's members in part in the database and
// reads one member per row, its attributes encoded; no event leaves the
// database.
func (r *Runner) evaluate(ctx context.Context, tx *sqlx.Tx, def Definition,
	now time.Time, part share) ([]memberRow, error) {
	compiled, err := compileShare(def, now, dialectOf(r.db), part)
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

	var found []memberRow
	values := make([]any, len(compiled.columns)+1)
	for i := range values {
		values[i] = new(any)
	}
	for rows.Next() {
		if err := rows.Scan(values...); err != nil {
			return nil, fmt.Errorf("read member of %s: %w", def.Name, err)
		}
		row, err := readMemberRow(compiled.columns, values)
		if err != nil {
			return nil, fmt.Errorf("read member of %s: %w", def.Name, err)
		}
		found = append(found, row)
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
// drops members without an email when the audience needs one, keeping the
// others in the order found holds them.
func (r *Runner) withIdentifiers(ctx context.Context, tx *sqlx.Tx, def Definition,
	found []memberRow) ([]memberRow, error) {
	const chunk = 500
	kept := found[:0]
	for start := 0; start < len(found); start += chunk {
		batch := found[start:min(start+chunk, len(found))]
		ids, err := identifiersOf(ctx, tx, batch)
		if err != nil {
			return nil, err
		}
		for _, m := range batch {
			if err := describe(&m, ids[m.ProfileID]); err != nil {
				return nil, err
			}
			if def.NeedsEmail() && m.Email == "" {
				continue
			}
			kept = append(kept, m)
		}
	}
	return kept, nil
}

// identifiersQuery reads the identifiers of the profiles in a list.
const identifiersQuery = `SELECT profile_id, type, value, first_seen_ms
	FROM identities WHERE profile_id IN (?)`

func identifiersOf(ctx context.Context, tx *sqlx.Tx,
	batch []memberRow) (map[int64][]identityRow, error) {
	profiles := make([]int64, len(batch))
	for i, m := range batch {
		profiles[i] = m.ProfileID
	}
	query, args, err := sqlx.In(identifiersQuery, profiles)
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

// describe sets a member's identifiers, encoded, and as its user_id and
// email the most recently first-seen value of each type.
func describe(m *memberRow, rows []identityRow) error {
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Type != rows[j].Type {
			return rows[i].Type < rows[j].Type
		}
		return rows[i].Value < rows[j].Value
	})

	identifiers := map[string][]string{}
	newest := map[string]identityRow{}
	for _, row := range rows {
		identifiers[row.Type] = append(identifiers[row.Type], row.Value)
		if seen, ok := newest[row.Type]; !ok || row.FirstSeenMS > seen.FirstSeenMS {
			newest[row.Type] = row
		}
	}
	m.UserID = newest[resolver.TypeUserID].Value
	m.Email = newest[resolver.TypeEmail].Value

	encoded, err := json.Marshal(identifiers)
	if err != nil {
		return fmt.Errorf("encode identifiers of %d: %w", m.ProfileID, err)
	}
	m.Identifiers = string(encoded)
	return nil
}
