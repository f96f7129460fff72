package audiences

import (
	"context"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
)

// MemberSearch is one page of the members of an audience's current result
// that a search found.
type MemberSearch struct {
	// Run is the current result the members come from.
	Run Run
	// Members are this page's members, in profile order.
	Members []Member
	// Total counts every member the search found, on all pages.
	Total int
}

// SearchMembers returns up to limit members of the audience's current
// result, skipping the first offset, whose email or user_id contains query
// (A-Z matching a-z; %, _ and \ match only themselves; an empty query finds
// every member), with how many there are in all. The run, the page and
// the count are read from one snapshot. Before the first successful run
// it returns an *resolver.Error with code ENotFound, as for an unknown
// audience; a negative offset or a limit below 1 has code EInvalid.
func (r *Runner) SearchMembers(ctx context.Context, name, query string,
	offset, limit int) (MemberSearch, error) {
	if _, err := r.Definition(name); err != nil {
		return MemberSearch{}, err
	}
	if offset < 0 || limit < 1 {
		return MemberSearch{}, resolver.Errorf(resolver.EInvalid,
			"a page needs an offset of 0 or more and a limit of 1 or more")
	}
	var out MemberSearch
	err := r.db.Snapshot(ctx, func(tx *sqlx.Tx) error {
		var err error
		out, err = r.searchIn(ctx, tx, name, query, offset, limit)
		return err
	})
	return out, err
}

// searchIn is SearchMembers reading through tx. A page that is not full
// tells how many there are without a second pass, which is when a search
// finds few members; a full page is followed by a count.
func (r *Runner) searchIn(ctx context.Context, tx *sqlx.Tx, name, query string,
	offset, limit int) (MemberSearch, error) {
	var out MemberSearch
	var err error
	if out.Run, err = r.oneRunIn(ctx, tx, currentRunQuery, name); err != nil {
		return out, err
	}
	out.Members, err = r.matchingMembers(ctx, tx, name, query, offset, limit)
	switch {
	case err != nil:
	case query == "":
		out.Total = out.Run.Size // the run counted its members when it saved them
	case len(out.Members) < limit && (len(out.Members) > 0 || offset == 0):
		out.Total = offset + len(out.Members)
	default:
		out.Total, err = r.countMatches(ctx, tx, name, query)
	}
	return out, err
}

// memberMatch is the condition and arguments that keep the audience's
// members whose email or user_id contains query: LIKE on SQLite, where it
// matches A-Z and a-z alike, and ILIKE on PostgreSQL.
func (r *Runner) memberMatch(name, query string) (string, []any) {
	if query == "" {
		return `audience = ?`, []any{name}
	}
	like := "LIKE"
	if r.db.Dialect() == sqldb.Postgres {
		like = "ILIKE"
	}
	pattern := "%" + escapeLike(query) + "%"
	return `audience = ? AND (email ` + like + ` ? ESCAPE '\' OR
		user_id ` + like + ` ? ESCAPE '\')`, []any{name, pattern, pattern}
}

// escapeLike makes text match itself in a LIKE pattern with ESCAPE '\':
// its %, _ and \ stand for themselves, not for wildcards.
func escapeLike(text string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(text)
}

func (r *Runner) countMatches(ctx context.Context, tx *sqlx.Tx, name,
	query string) (int, error) {
	where, args := r.memberMatch(name, query)
	var total int
	err := tx.GetContext(ctx, &total, tx.Rebind(`SELECT COUNT(*) FROM audience_members
		WHERE `+where), args...)
	if err != nil {
		return 0, fmt.Errorf("count members of %s: %w", name, err)
	}
	return total, nil
}

func (r *Runner) matchingMembers(ctx context.Context, tx *sqlx.Tx, name, query string,
	offset, limit int) ([]Member, error) {
	where, args := r.memberMatch(name, query)
	var rows []memberRow
	err := tx.SelectContext(ctx, &rows, tx.Rebind(`SELECT profile_id, run_id, user_id,
		email, identifiers, attributes FROM audience_members WHERE `+where+`
		ORDER BY profile_id LIMIT ? OFFSET ?`), append(args, limit, offset)...)
	if err != nil {
		return nil, fmt.Errorf("search members of %s: %w", name, err)
	}
	members := make([]Member, 0, len(rows))
	for _, row := range rows {
		m, err := row.member()
		if err != nil {
			return nil, err
		}
		members = append(members, m)
	}
	return members, nil
}
