package audiences

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
)

// save replaces the audience's members with members, putting them in
// profile order, and completes the run record, all in one transaction:
// readers see either the previous complete result or this one.
func (r *Runner) save(ctx context.Context, def Definition, run Run,
	members []memberRow) (Run, error) {
	sortByProfile(members)
	err := r.db.WithTx(ctx, func(tx *sqlx.Tx) error {
		entered, exited, err := diffPrevious(ctx, tx, def.Name, members)
		if err != nil {
			return err
		}
		run.Entered, run.Exited = len(entered), len(exited)
		if err := r.recordChanges(ctx, tx, def.Name, run, entered, exited); err != nil {
			return err
		}
		if err := r.enqueue(ctx, tx, def, run, entered, exited); err != nil {
			return err
		}

		if _, err := tx.ExecContext(ctx, tx.Rebind(
			`DELETE FROM audience_members WHERE audience = ?`), def.Name); err != nil {
			return fmt.Errorf("clear previous members: %w", err)
		}
		if err := insertMembers(ctx, tx, def.Name, run.ID, members); err != nil {
			return err
		}

		run.Size, run.Status = len(members), StatusOK
		run.FinishedAt = r.now().UTC()
		_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE audience_runs SET
			finished_ms = ?, size = ?, entered = ?, exited = ?, status = ?
			WHERE id = ?`), run.FinishedAt.UnixMilli(), run.Size, run.Entered,
			run.Exited, run.Status, run.ID)
		if err != nil {
			return fmt.Errorf("complete run record: %w", err)
		}
		return nil
	})
	return run, err
}

// previousMembersQuery reads an audience's stored result in profile order.
const previousMembersQuery = `SELECT profile_id, run_id, user_id, email,
	identifiers, attributes FROM audience_members
	WHERE audience = ? ORDER BY profile_id`

// diffPrevious returns who entered (in members, not in the stored result)
// and who exited (stored, not in members), each in profile order; members
// must be in profile order. The stored result is read as a stream beside
// members and only its exits are kept, so a run never holds two results.
func diffPrevious(ctx context.Context, tx *sqlx.Tx, audience string,
	members []memberRow) (entered, exited []memberRow, err error) {
	rows, err := tx.QueryContext(ctx, tx.Rebind(previousMembersQuery), audience)
	if err != nil {
		return nil, nil, fmt.Errorf("read previous members: %w", err)
	}
	defer rows.Close()

	next := 0 // members[:next] are before the previous row read
	for rows.Next() {
		var row memberRow
		if err := rows.Scan(&row.ProfileID, &row.RunID, &row.UserID, &row.Email,
			&row.Identifiers, &row.Attributes); err != nil {
			return nil, nil, fmt.Errorf("read previous members: %w", err)
		}
		for next < len(members) && members[next].ProfileID < row.ProfileID {
			entered = append(entered, members[next])
			next++
		}
		if next < len(members) && members[next].ProfileID == row.ProfileID {
			next++ // stayed
			continue
		}
		exited = append(exited, row)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read previous members: %w", err)
	}
	return append(entered, members[next:]...), exited, nil
}

func insertMembers(ctx context.Context, tx *sqlx.Tx, audience string, run int64,
	members []memberRow) error {
	insert := newBatchInsert(tx, "audience_members", []string{"audience", "profile_id",
		"run_id", "user_id", "email", "identifiers", "attributes"}, "")
	for _, m := range members {
		err := insert.add(ctx, audience, m.ProfileID, run, m.UserID,
			m.Email, m.Identifiers, m.Attributes)
		if err != nil {
			return fmt.Errorf("insert members: %w", err)
		}
	}
	if err := insert.flush(ctx); err != nil {
		return fmt.Errorf("insert members: %w", err)
	}
	return nil
}

// runRow is an audience_runs row.
type runRow struct {
	ID          int64  `db:"id"`
	Audience    string `db:"audience"`
	StartedMS   int64  `db:"started_ms"`
	FinishedMS  *int64 `db:"finished_ms"`
	EvaluatedMS int64  `db:"evaluated_ms"`
	Size        int    `db:"size"`
	Entered     int    `db:"entered"`
	Exited      int    `db:"exited"`
	Status      string `db:"status"`
	Error       string `db:"error"`
}

func (row runRow) run() Run {
	run := Run{
		ID: row.ID, Audience: row.Audience, Size: row.Size,
		Entered: row.Entered, Exited: row.Exited, Status: row.Status, Error: row.Error,
		StartedAt:   time.UnixMilli(row.StartedMS).UTC(),
		EvaluatedAt: time.UnixMilli(row.EvaluatedMS).UTC(),
	}
	if row.FinishedMS != nil {
		run.FinishedAt = time.UnixMilli(*row.FinishedMS).UTC()
	}
	return run
}

const runColumns = `id, audience, started_ms, finished_ms, evaluated_ms, size,
	entered, exited, status, error`

// LastRun returns the latest run of the audience, whatever its outcome, or
// an *resolver.Error with code ENotFound when it never ran.
func (r *Runner) LastRun(ctx context.Context, name string) (Run, error) {
	return r.oneRun(ctx, `SELECT `+runColumns+` FROM audience_runs
		WHERE audience = ? ORDER BY id DESC LIMIT 1`, name)
}

// CurrentRun returns the run whose result readers see now, or an
// *resolver.Error with code ENotFound before the first successful run.
func (r *Runner) CurrentRun(ctx context.Context, name string) (Run, error) {
	return r.oneRun(ctx, currentRunQuery, name)
}

const currentRunQuery = `SELECT ` + runColumns + ` FROM audience_runs
	WHERE audience = ? AND status = 'ok' ORDER BY id DESC LIMIT 1`

func (r *Runner) oneRun(ctx context.Context, query, name string) (Run, error) {
	return r.oneRunIn(ctx, r.db, query, name)
}

func (r *Runner) oneRunIn(ctx context.Context, q sqlx.QueryerContext, query,
	name string) (Run, error) {
	if _, err := r.Definition(name); err != nil {
		return Run{}, err
	}

	var row runRow
	err := sqlx.GetContext(ctx, q, &row, r.db.Rebind(query), name)
	if sqldb.IsNoRows(err) {
		return Run{}, resolver.Errorf(resolver.ENotFound,
			"audience %q has not been computed yet", name)
	}
	if err != nil {
		return Run{}, fmt.Errorf("read runs of %s: %w", name, err)
	}
	return row.run(), nil
}

// Runs returns the audience's latest runs, newest first.
func (r *Runner) Runs(ctx context.Context, name string, limit int) ([]Run, error) {
	var rows []runRow
	err := r.db.SelectContext(ctx, &rows, r.db.Rebind(`SELECT `+runColumns+`
		FROM audience_runs WHERE audience = ? ORDER BY id DESC LIMIT ?`), name, limit)
	if err != nil {
		return nil, fmt.Errorf("list runs of %s: %w", name, err)
	}
	runs := make([]Run, len(rows))
	for i, row := range rows {
		runs[i] = row.run()
	}
	return runs, nil
}

// Page is one page of an audience's current members.
type Page struct {
	Run     Run
	Members []Member
	Next    string // opaque cursor for the next page; "" on the last page
}

// memberRow is an audience_members row.
type memberRow struct {
	ProfileID   int64  `db:"profile_id"`
	RunID       int64  `db:"run_id"`
	UserID      string `db:"user_id"`
	Email       string `db:"email"`
	Identifiers string `db:"identifiers"`
	Attributes  string `db:"attributes"`
}

func (row memberRow) member() (Member, error) {
	m, err := row.memberWithout()
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal([]byte(row.Identifiers), &m.Identifiers); err != nil {
		return m, fmt.Errorf("decode identifiers of %d: %w", row.ProfileID, err)
	}
	return m, nil
}

// memberWithout is member without decoding the identifiers, which are
// most of the row, for readers that never show them.
func (row memberRow) memberWithout() (Member, error) {
	m := Member{ProfileID: row.ProfileID, UserID: row.UserID, Email: row.Email}
	if err := decodeJSON(row.Attributes, &m.Attributes); err != nil {
		return m, fmt.Errorf("decode attributes of %d: %w", row.ProfileID, err)
	}
	return m, nil
}

func decodeJSON(text string, dest any) error {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	return dec.Decode(dest)
}

// pageRow is one row of the page query: the current run, and one member
// of it or none (an empty result still names its run).
type pageRow struct {
	runRow
	ProfileID   *int64  `db:"profile_id"`
	UserID      *string `db:"user_id"`
	Email       *string `db:"email"`
	Identifiers *string `db:"identifiers"`
	Attributes  *string `db:"attributes"`
}

// Members returns up to limit members of the audience's current result in
// profile order, after the position cursor names ("" for the start). The
// run and its members are read by one statement, so from one snapshot; a
// cursor from an older result is refused with code EGone, so a reader never
// mixes two results.
func (r *Runner) Members(ctx context.Context, name, cursor string, limit int) (Page, error) {
	if _, err := r.Definition(name); err != nil {
		return Page{}, err
	}
	cursorRun, after, err := decodeCursor(cursor)
	if err != nil {
		return Page{}, err
	}

	var rows []pageRow
	err = r.db.SelectContext(ctx, &rows, r.db.Rebind(membersPageQuery),
		name, name, after, name, limit+1)
	if err != nil {
		return Page{}, fmt.Errorf("read members of %s: %w", name, err)
	}
	if len(rows) == 0 {
		return Page{}, resolver.Errorf(resolver.ENotFound,
			"audience %q has not been computed yet", name)
	}
	return pageFrom(rows, cursorRun, limit)
}

// membersPageQuery reads an audience's current run and, after a profile
// id, a page of its members (arguments: audience, audience, profile id,
// audience, page size). The page is cut inside its own subquery: ordered
// and limited after the join, PostgreSQL sorted all of an audience's
// members for each page (500 ms for 101 of 188,000) where the key reads
// just the page.
const membersPageQuery = `SELECT cur.id, cur.audience, cur.started_ms,
	cur.finished_ms, cur.evaluated_ms, cur.size, cur.entered, cur.exited,
	cur.status, cur.error, m.profile_id, m.user_id, m.email, m.identifiers,
	m.attributes
	FROM (` + currentRunQuery + `) cur
	LEFT JOIN (SELECT profile_id, user_id, email, identifiers, attributes
	           FROM audience_members
	           WHERE audience = ? AND profile_id > ?
	             AND run_id = (SELECT id FROM (` + currentRunQuery + `) latest)
	           ORDER BY profile_id LIMIT ?) m ON 1 = 1
	ORDER BY m.profile_id`

func pageFrom(rows []pageRow, cursorRun int64, limit int) (Page, error) {
	page := Page{Run: rows[0].run()}
	if cursorRun != 0 && cursorRun != page.Run.ID {
		return Page{}, resolver.Errorf(resolver.EGone, "this cursor belongs to an "+
			"earlier result (or another audience); start again without next")
	}

	for i, row := range rows {
		if row.ProfileID == nil {
			break // the result is empty after the cursor
		}
		if i == limit {
			page.Next = encodeCursor(page.Run.ID, page.Members[limit-1].ProfileID)
			break
		}
		m, err := memberRow{
			ProfileID: *row.ProfileID, RunID: row.ID, UserID: *row.UserID,
			Email: *row.Email, Identifiers: *row.Identifiers, Attributes: *row.Attributes,
		}.member()
		if err != nil {
			return Page{}, err
		}
		page.Members = append(page.Members, m)
	}
	return page, nil
}

func encodeCursor(run, profile int64) string {
	text := strconv.FormatInt(run, 10) + ":" + strconv.FormatInt(profile, 10)
	return base64.RawURLEncoding.EncodeToString([]byte(text))
}

// decodeCursor reads a next cursor into the run it belongs to and the last
// profile id served; "" is the start (0, 0).
func decodeCursor(cursor string) (run, profile int64, err error) {
	if cursor == "" {
		return 0, 0, nil
	}
	raw, decodeErr := base64.RawURLEncoding.DecodeString(cursor)
	runText, profileText, ok := strings.Cut(string(raw), ":")
	run, runErr := strconv.ParseInt(runText, 10, 64)
	profile, profileErr := strconv.ParseInt(profileText, 10, 64)
	if decodeErr != nil || !ok || runErr != nil || profileErr != nil || run < 1 {
		return 0, 0, resolver.Errorf(resolver.EInvalid, "next cursor %q is not valid", cursor)
	}
	return run, profile, nil
}

// EachMember calls fn for every member of the audience's current result in
// profile order. It streams one query, which reads one consistent snapshot:
// a run that commits meanwhile never mixes into the export, and memory stays
// flat whatever the audience's size.
func (r *Runner) EachMember(ctx context.Context, name string,
	fn func(Run, Member) error) error {
	return r.eachMemberIn(ctx, r.db, name, true, fn)
}

// eachMemberIn is EachMember reading through q (a snapshot, say); without
// identifiers, each member's Identifiers is nil.
func (r *Runner) eachMemberIn(ctx context.Context, q sqlx.QueryerContext, name string,
	identifiers bool, fn func(Run, Member) error) error {
	decode := memberRow.member
	if !identifiers {
		decode = memberRow.memberWithout
	}
	run, err := r.oneRunIn(ctx, q, currentRunQuery, name)
	if err != nil {
		return err
	}

	idColumn := "identifiers"
	if !identifiers {
		idColumn = "''"
	}
	rows, err := q.QueryxContext(ctx, r.db.Rebind(`SELECT profile_id, run_id,
		user_id, email, `+idColumn+`, attributes FROM audience_members
		WHERE audience = ? ORDER BY profile_id`), name)
	if err != nil {
		return fmt.Errorf("read members of %s: %w", name, err)
	}
	defer rows.Close()

	for rows.Next() {
		var row memberRow
		if err := rows.Scan(&row.ProfileID, &row.RunID, &row.UserID, &row.Email,
			&row.Identifiers, &row.Attributes); err != nil {
			return fmt.Errorf("scan member of %s: %w", name, err)
		}
		if row.RunID != run.ID {
			if run, err = r.runByID(ctx, q, row.RunID); err != nil {
				return err
			}
		}
		m, err := decode(row)
		if err != nil {
			return err
		}
		if err := fn(run, m); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read members of %s: %w", name, err)
	}
	return nil
}

// exportPageSize is how many members an export handles at a time: a
// layout that reads more for its rows reads it once a page, and writes
// are flushed once a page.
const exportPageSize = 1000

// streamMemberPagesIn calls fn with the audience's current members in
// profile order, up to size at a time, read by one query through q that
// is still open while fn runs. fn must not keep the slice it is given: the
// next page reuses it. Without identifiers, Identifiers is nil.
func (r *Runner) streamMemberPagesIn(ctx context.Context, q sqlx.QueryerContext,
	name string, identifiers bool, size int, fn func([]Member) error) error {
	page := make([]Member, 0, size)
	err := r.eachMemberIn(ctx, q, name, identifiers, func(_ Run, m Member) error {
		if page = append(page, m); len(page) < size {
			return nil
		}
		err := fn(page)
		page = page[:0]
		return err
	})
	if err != nil || len(page) == 0 {
		return err
	}
	return fn(page)
}

// eachMemberPageIn calls fn with the audience's current members in profile
// order, up to size at a time: each page is read by a query of its own
// through snapshot, done before fn is called, so fn may query snapshot
// too. Without identifiers, each member's Identifiers is nil.
func (r *Runner) eachMemberPageIn(ctx context.Context, snapshot *sqlx.Tx, name string,
	identifiers bool, size int, fn func([]Member) error) error {
	decode, idColumn := memberRow.member, "identifiers"
	if !identifiers {
		decode, idColumn = memberRow.memberWithout, "''"
	}
	query := snapshot.Rebind(`SELECT profile_id, run_id, user_id, email,
		` + idColumn + ` AS identifiers, attributes FROM audience_members
		WHERE audience = ? AND profile_id > ? ORDER BY profile_id LIMIT ?`)

	after := int64(math.MinInt64)
	for {
		members, err := readMemberPage(ctx, snapshot, query, name, after, size, decode)
		if err != nil || len(members) == 0 {
			return err
		}
		if err := fn(members); err != nil {
			return err
		}
		if len(members) < size {
			return nil
		}
		after = members[len(members)-1].ProfileID
	}
}

// readMemberPage reads the page of members query selects after a profile.
func readMemberPage(ctx context.Context, snapshot *sqlx.Tx, query, name string,
	after int64, size int, decode func(memberRow) (Member, error)) ([]Member, error) {
	rows, err := snapshot.QueryContext(ctx, query, name, after, size)
	if err != nil {
		return nil, fmt.Errorf("read members of %s: %w", name, err)
	}
	defer rows.Close()

	members := make([]Member, 0, size)
	for rows.Next() {
		var row memberRow
		if err := rows.Scan(&row.ProfileID, &row.RunID, &row.UserID, &row.Email,
			&row.Identifiers, &row.Attributes); err != nil {
			return nil, fmt.Errorf("scan member of %s: %w", name, err)
		}
		m, err := decode(row)
		if err != nil {
			return nil, err
		}
		members = append(members, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read members of %s: %w", name, err)
	}
	return members, nil
}

func (r *Runner) runByID(ctx context.Context, q sqlx.QueryerContext, id int64) (Run, error) {
	var row runRow
	err := sqlx.GetContext(ctx, q, &row, r.db.Rebind(`SELECT `+runColumns+`
		FROM audience_runs WHERE id = ?`), id)
	if err != nil {
		return Run{}, fmt.Errorf("read run %d: %w", id, err)
	}
	return row.run(), nil
}

// Memberships tells, for every audience, whether the profile is in its
// current result, as Segment's Profile API shows audiences: boolean traits
// keyed by the audience name.
func (r *Runner) Memberships(ctx context.Context, profile int64) (map[string]bool, error) {
	var in []string
	err := r.db.SelectContext(ctx, &in, r.db.Rebind(
		`SELECT audience FROM audience_members WHERE profile_id = ?`), profile)
	if err != nil {
		return nil, fmt.Errorf("read memberships of profile %d: %w", profile, err)
	}
	out := make(map[string]bool, len(r.defs))
	for _, def := range r.defs {
		out[def.Name] = false
	}
	for _, name := range in {
		if _, known := out[name]; known {
			out[name] = true
		}
	}
	return out, nil
}
