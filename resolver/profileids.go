package resolver

import (
	"context"
	"fmt"
	"math"

	"github.com/knit-cdp/knit/resolver/sqldb"
)

// bulkProfiles holds the profiles a batch creates. flush writes them
// before any other table, since the other rows refer to them.
var bulkProfiles = bulkTable{name: "profiles",
	columns: []string{"id", "created_ms", "updated_ms"}}

// profileNumbering gives new profiles their ids within one write
// transaction: one past the highest stored id, read once, then counting
// up. Every writer holds the write lock (sqldb.WithWriteTx), so no other
// transaction numbers profiles meanwhile, and a batch creates its profiles
// without a round trip each; ids come in order of creation, as before.
type profileNumbering struct {
	last    int64 // the highest id stored or handed out; 0 before it is read
	written int64 // the highest id the sequence was moved past
}

// newProfileID returns the id for a profile the transaction creates:
// always positive (0 means no profile), and an error once the highest
// stored id is the largest the column holds.
func (w *writer) newProfileID(ctx context.Context) (int64, error) {
	numbering := &w.profileIDs
	if numbering.last == 0 {
		err := w.get(ctx, &numbering.last, `SELECT COALESCE(MAX(id), 0) FROM profiles`)
		if err != nil {
			return 0, fmt.Errorf("read the highest profile id: %w", err)
		}
		numbering.last = max(numbering.last, 0) // ids below 1 were put there by hand
	}
	if numbering.last == math.MaxInt64 {
		return 0, fmt.Errorf("no profile id is left above %d", numbering.last)
	}
	numbering.last++
	return numbering.last, nil
}

// advanceProfileSequence moves PostgreSQL's sequence for profile ids past
// the ids this transaction wrote, so that a row inserted with the default
// id (by hand, or by an older knit) never takes one of them. SQLite has no
// sequence: it numbers from the highest id as knit does.
func (w *writer) advanceProfileSequence(ctx context.Context) error {
	numbering := &w.profileIDs
	if w.dialect != sqldb.Postgres || numbering.last <= numbering.written {
		return nil
	}
	err := w.exec(ctx, `SELECT setval(pg_get_serial_sequence('profiles', 'id'), ?)`,
		numbering.last)
	if err != nil {
		return fmt.Errorf("advance the profile id sequence to %d: %w", numbering.last, err)
	}
	numbering.written = numbering.last
	return nil
}
