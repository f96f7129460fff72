package resolver

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/knit-cdp/knit/resolver/sqldb"
)

// bulkProfiles holds the profiles a batch creates. flush writes them
// before any other table, since the other rows refer to them.
var bulkProfiles = bulkTable{name: "profiles",
	columns: []string{"id", "created_ms", "updated_ms"}}

// idNumbering gives the rows one write transaction adds to a table their
// ids: one past the highest stored id, read once, then counting up. Every
// writer holds the write lock (sqldb.WithWriteTx), so no other transaction
// numbers rows meanwhile, and a batch writes its rows without a round trip
// each; ids come in order of creation, as the engines' own numbering does.
// Profiles are numbered so that a batch creates them with its other rows;
// events, so that their identity links can name them.
type idNumbering struct {
	last    int64 // the highest id stored or handed out; 0 before it is read
	written int64 // the highest id the sequence was moved past
}

// numberedTable is a table whose ids knit hands out: its name, and the
// query for the highest id taken.
type numberedTable struct {
	name    string
	highest string
}

var (
	profileRows = numberedTable{name: "profiles",
		highest: `SELECT COALESCE(MAX(id), 0) FROM profiles`}
	// An event id stays taken while an identity link names it, even once
	// the event is gone (PostgreSQL's retention drops months of events and
	// keeps their links), so a new event never inherits an old one's links.
	eventRows = numberedTable{name: "events",
		highest: `SELECT COALESCE(MAX(id), 0) FROM (SELECT MAX(id) AS id FROM events
			UNION ALL SELECT MAX(event_id) FROM identity_links) AS taken`}
)

// nextID returns the id for a row of table, numbered by n: always
// positive (0 means none), and an error once the highest taken id is the
// largest the column holds.
func (w *writer) nextID(ctx context.Context, table numberedTable,
	n *idNumbering) (int64, error) {
	if n.last == 0 {
		if err := w.get(ctx, &n.last, table.highest); err != nil {
			return 0, fmt.Errorf("read the highest %s id: %w", table.name, err)
		}
		n.last = max(n.last, 0) // ids below 1 were put there by hand
	}
	if n.last == math.MaxInt64 {
		return 0, fmt.Errorf("no %s id is left above %d", table.name, n.last)
	}
	n.last++
	return n.last, nil
}

// newProfileID returns the id for a profile the transaction creates.
func (w *writer) newProfileID(ctx context.Context) (int64, error) {
	return w.nextID(ctx, profileRows, &w.profileIDs)
}

// newEventID returns the id for an event the transaction stores.
func (w *writer) newEventID(ctx context.Context) (int64, error) {
	return w.nextID(ctx, eventRows, &w.eventIDs)
}

// advanceSequences moves PostgreSQL's id sequences of profiles and events
// past the ids this transaction wrote, so that a row inserted with the
// default id (by hand, or by an older knit) never takes one of them.
// SQLite has no sequence: it numbers from the highest id as knit does. A
// batch's flush moves them in its own statement (sequencesSQL).
func (w *writer) advanceSequences(ctx context.Context) error {
	if w.dialect != sqldb.Postgres {
		return nil
	}
	query, args := w.sequencesSQL()
	if len(args) == 0 {
		return nil
	}
	if err := w.exec(ctx, query, args...); err != nil {
		return fmt.Errorf("advance the profile and event id sequences: %w", err)
	}
	w.profileIDs.written, w.eventIDs.written = w.profileIDs.last, w.eventIDs.last
	return nil
}

// sequencesSQL is the SELECT that moves the profile and event id sequences
// past the ids the transaction gave out, both in one statement, or
// "SELECT 1" with no arguments when it gave out none.
func (w *writer) sequencesSQL() (string, []any) {
	var calls []string
	var args []any
	for _, seq := range []struct {
		table string
		n     *idNumbering
	}{{"profiles", &w.profileIDs}, {"events", &w.eventIDs}} {
		if seq.n.last > seq.n.written {
			calls = append(calls, "setval(pg_get_serial_sequence('"+seq.table+"', 'id'), ?)")
			args = append(args, seq.n.last)
		}
	}
	if len(calls) == 0 {
		return "SELECT 1", nil
	}
	return "SELECT " + strings.Join(calls, ", "), args
}
