package resolver

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// readAhead is what a group's messages will ask the database before they
// are resolved (prefetch), read on a snapshot of another connection while
// the group before them is still being written and committed, so that the
// writer does not wait for those reads. Whatever the group before touched
// is left out when it is used (groupTrace.trusts), and nothing of it is
// used when another writer committed between the two groups.
type readAhead struct {
	done chan struct{} // closed once the fields below are set
	err  error

	known    map[string]bool      // of the messages' ids, those stored or erased
	asked    []Identifier         // every identifier the messages carry
	owners   map[Identifier]int64 // those of asked held by a profile
	profiles []int64              // the holders: every identifier of theirs is in held
	held     []heldIdentifier
}

// startReadAhead reads, in the background, what messages will ask. The
// caller must hold the write lock (be inside a write transaction), so
// that the snapshot shows the database as that transaction began or as
// it committed, and no other writer's work.
func (s *Store) startReadAhead(messages []*Message) *readAhead {
	s.prepare(messages)
	ahead := &readAhead{done: make(chan struct{})}
	go func() {
		defer close(ahead.done)
		ctx := context.Background()
		ahead.err = s.db.Snapshot(ctx, func(tx *sqlx.Tx) error {
			w := &writer{tx: tx, rules: s.rules, dialect: s.db.Dialect(),
				cache: newIdentityCache()}
			return ahead.read(ctx, w, messages)
		})
		if ahead.err != nil && s.log != nil {
			// The group reads everything itself then; only time is lost.
			s.log.Warn("reading ahead of a group failed", "messages", len(messages),
				"error", ahead.err)
		}
	}()
	return ahead
}

// read fills ahead with what prefetch would read for messages.
func (a *readAhead) read(ctx context.Context, w *writer, messages []*Message) error {
	ids, identifiers := w.batchKeys(messages)
	if err := w.readKnownMessages(ctx, ids); err != nil {
		return err
	}
	owners, err := w.owners(ctx, identifiers)
	if err != nil {
		return err
	}
	profiles := distinctProfiles(owners)
	var held []heldIdentifier
	if len(profiles) > 0 {
		if held, err = w.readIdentifiersOf(ctx, profiles); err != nil {
			return err
		}
	}

	a.known, a.asked, a.owners = w.known, identifiers, owners
	a.profiles, a.held = profiles, held
	return nil
}

// generationSetting is the settings row that counts the resolver's write
// transactions, the write generation: each one adds one (withWriteTx), so
// two consecutive transactions of one writer read numbers one apart
// exactly when no other resolver transaction committed between them. A
// knit older than the read-ahead does not count its transactions; see
// docs/deploy.md.
const generationSetting = "write_generation"

// bumpGenerationSQL adds one to the write generation, making the row when
// there is none yet (the settings table is as old as knit's schema).
const bumpGenerationSQL = `INSERT INTO settings (key, value)
	VALUES ('` + generationSetting + `', '1') ON CONFLICT (key) DO UPDATE
	SET value = CAST(CAST(settings.value AS BIGINT) + 1 AS TEXT)`

// generationSQL reads the write generation.
const generationSQL = `SELECT CAST(value AS BIGINT) FROM settings
	WHERE key = '` + generationSetting + `'`

// withWriteTx runs fn in a write transaction (sqldb.WithWriteTx) that
// counts itself in the write generation first. Every transaction of the
// resolver that changes identities, events or erased messages runs here.
func (s *Store) withWriteTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	return s.countedWriteTx(ctx, s.db.WithWriteTx, fn)
}

// countedWriteTx is withWriteTx on the transaction that begin runs: the
// database's WithWriteTx or WithWriteTxSyncLater.
func (s *Store) countedWriteTx(ctx context.Context, begin writeTxFunc,
	fn func(tx *sqlx.Tx) error) error {
	return begin(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, bumpGenerationSQL); err != nil {
			return fmt.Errorf("count the write transaction: %w", err)
		}
		return fn(tx)
	})
}

// writeTxFunc runs fn in a write transaction, as sqldb.DB's WithWriteTx.
type writeTxFunc func(ctx context.Context, fn func(tx *sqlx.Tx) error) error

// groupTrace is what a committed group leaves for the next one to check
// that one's read-ahead against.
type groupTrace struct {
	generation  int64               // the write generation of its transaction
	lastProfile int64               // the highest profile id once it committed
	lastEvent   int64               // the highest event id once it committed
	stored      map[string]bool     // message ids it stored
	identifiers map[Identifier]bool // identifiers it read or changed
	profiles    map[int64]bool      // profiles whose identifiers it read or changed
	erased      bool                // it erased someone: trust nothing read before
}

// traceOf records what w's committed transaction touched. Every identity
// the transaction wrote, it first looked up through its cache, and a merge
// puts both profiles in it, so the cache names all it changed.
func traceOf(w *writer) *groupTrace {
	t := &groupTrace{generation: w.generation, stored: w.bulk.stored,
		lastProfile: w.profileIDs.last, lastEvent: w.eventIDs.last,
		identifiers: map[Identifier]bool{}, profiles: map[int64]bool{}, erased: w.erased}
	c := w.cache
	for id, profile := range c.owner {
		t.identifiers[id] = true
		t.profiles[profile] = true
	}
	for id := range c.free {
		t.identifiers[id] = true
	}
	for id := range c.byValue {
		t.identifiers[id] = true
	}
	for profile := range c.held {
		t.profiles[profile] = true
	}
	for profile := range c.merges {
		t.profiles[profile] = true
	}
	return t
}

// trusts reports whether a read-ahead made while the traced group held the
// write lock still holds, apart from what that group touched, for w's
// transaction, which has read its start (readStart): when no other write
// transaction committed between the two. The write generation says so; the
// highest ids also catch a knit too old to count its transactions that
// stored events or made profiles meanwhile.
func (t *groupTrace) trusts(w *writer) bool {
	return t != nil && !t.erased && w.generation == t.generation+1 &&
		w.profileIDs.last == t.lastProfile && w.eventIDs.last == t.lastEvent
}

// seed fills w's known message ids and identity cache from ahead, leaving
// out what prev touched: the prefetch that follows reads only the rest.
func (w *writer) seed(ahead *readAhead, prev *groupTrace) {
	w.known = make(map[string]bool, len(ahead.known)+len(prev.stored))
	for id := range ahead.known {
		w.known[id] = true
	}
	for id := range prev.stored {
		w.known[id] = true
	}

	var asked []Identifier
	found := map[Identifier]int64{}
	for _, id := range ahead.asked {
		owner, held := ahead.owners[id]
		if prev.identifiers[id] || (held && prev.profiles[owner]) {
			continue
		}
		asked = append(asked, id)
		if held {
			found[id] = owner
		}
	}
	w.cache.learnOwners(asked, found)

	var profiles []int64
	for _, p := range ahead.profiles {
		if !prev.profiles[p] {
			profiles = append(profiles, p)
		}
	}
	var rows []heldIdentifier
	for _, row := range ahead.held {
		if !prev.profiles[row.profile] {
			rows = append(rows, row)
		}
	}
	w.cache.learnProfiles(profiles, rows)
}
