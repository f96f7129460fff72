// Package resolver keeps Segment events and stitches them into one profile
// per person, following Segment Unify's identity rules. It knows nothing of
// HTTP: the webhook edge and the import command both feed it parsed
// messages.
package resolver

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver/sqldb"
)

// Store writes events, identities, profiles and traits.
type Store struct {
	db    *sqldb.DB
	rules Rules
	now   func() time.Time
	log   *slog.Logger

	// writeMu serialises resolution inside this process: identity matching
	// reads then writes, and two interleaved writers could otherwise put one
	// identifier on two profiles. Across processes on PostgreSQL the write
	// transaction's advisory lock does the same (sqldb.WithWriteTx); the
	// mutex keeps this process's writers from queueing on the database.
	writeMu sync.Mutex

	// statements are kept prepared across transactions on SQLite; pgx
	// keeps its own cache on PostgreSQL (see writer.direct).
	statements *statementCache
}

// NewStore returns a Store over db that resolves identities with rules and
// reads the current time from now.
func NewStore(db *sqldb.DB, rules Rules, now func() time.Time, log *slog.Logger) *Store {
	s := &Store{db: db, rules: rules, now: now, log: log}
	if db.Dialect() == sqldb.SQLite {
		s.statements = newStatementCache(db.DB)
	}
	return s
}

// Status says what happened to one message.
type Status string

// The outcomes of storing a message.
const (
	StatusStored    Status = "stored"
	StatusDuplicate Status = "duplicate"
)

// Outcome is the result for one message handed to Ingest.
type Outcome struct {
	MessageID string
	Status    Status
	ProfileID int64 // 0 when the message carried no usable identifier
}

// Ingest stores messages in one transaction, in order, resolving each to a
// profile. A message whose messageId is already stored is skipped and
// reported as a duplicate. When Ingest returns nil, every message is
// committed; on error none of them is.
func (s *Store) Ingest(ctx context.Context, messages []*Message) ([]Outcome, error) {
	outcomes, _, err := s.ingestTimed(ctx, messages)
	return outcomes, err
}

// IngestPhases is where one Ingest call spent its time, phase by phase:
// what /metrics shows of the writer, and where its time goes under load.
type IngestPhases struct {
	// Wait is taking the write lock and beginning the transaction.
	Wait time.Duration
	// ReadAhead is reading what the messages' ids and identifiers already
	// hold, in a few statements for all of them.
	ReadAhead time.Duration
	// Resolve is taking the messages in order: identity resolution and
	// the rows kept for the end; on SQLite also each merge's statements.
	Resolve time.Duration
	// Write is writing the rows kept for the end; on PostgreSQL also the
	// batch's merges (foldsSQL).
	Write time.Duration
	// Commit is committing: on SQLite, writing the write-ahead log, and
	// its fsync unless a GroupCommitter syncs it after (Sync).
	Commit time.Duration
	// Sync is, in a GroupCommitter on SQLite, from the commit's end until
	// the write-ahead log holding it is on disk and its callers answered:
	// the fsync, and any fsync under way that it waited for.
	Sync time.Duration
}

// pipelineStep links one ingest transaction to its neighbours in a
// GroupCommitter: what was read ahead for its messages, what the
// transaction before it touched, and what to call, while it holds the
// write lock, to gather the next group and start reading ahead for it
// (see startsNext). The zero step stands alone.
type pipelineStep struct {
	ahead     *readAhead
	prev      *groupTrace
	startNext func()
	// syncLater commits without waiting for the disk (on SQLite): the
	// caller calls the database's SyncCommitted before answering anyone.
	syncLater bool
}

// The points of a transaction where startNext may be called.
const (
	afterReads  = iota // its own reads are done
	afterWrites        // everything is written; only the commit is left
)

// startsNext says when a transaction starts the next group's read-ahead.
// On PostgreSQL, once its own reads are done: its writes are round trips
// to the server, and the next group's reads fill the wait. On SQLite
// (where the committer reads ahead only in tests) once it is about to
// commit: its writes keep a core busy in-process, and a next group
// gathered sooner missed the requests that arrived meanwhile (smaller
// groups cost more an event than the reads saved; docs/benchmarks.md,
// sixteenth session).
func (s *Store) startsNext() int {
	if s.db.Dialect() == sqldb.Postgres {
		return afterReads
	}
	return afterWrites
}

// ingested is what one ingest transaction produced: each message's
// outcome, where its time went, and what it touched (nil unless a next
// step may read ahead against it).
type ingested struct {
	outcomes      []Outcome
	phases        IngestPhases
	trace         *groupTrace
	readAheadUsed bool
}

// earlyCheckpointMessages is the size of a transaction from which the
// writer asks for the write-ahead log to be copied into the file at once
// rather than at the background checkpointer's next tick. Batches of 100
// messages commit about 1,500 pages a transaction of 400, and copying
// them right away on the other core took 7 to 11 % more events a second
// and p99 from about 170 to 105 ms (docs/benchmarks.md, eighteenth
// session); single-message webhooks commit groups of about 15, and asking
// after each of theirs cost them 2 to 10 %, so they keep the tick.
const earlyCheckpointMessages = 100

// ingestTimed is Ingest, also telling how long each phase took; the
// phases of a call that failed are as far as it got.
func (s *Store) ingestTimed(ctx context.Context, messages []*Message) ([]Outcome,
	IngestPhases, error) {
	done, err := s.ingestStep(ctx, messages, pipelineStep{})
	return done.outcomes, done.phases, err
}

// ingestStep is ingestTimed as one step of a pipeline.
func (s *Store) ingestStep(ctx context.Context, messages []*Message,
	step pipelineStep) (ingested, error) {
	s.prepare(messages) // before the lock: no other writer waits for it
	done := ingested{outcomes: make([]Outcome, len(messages))}
	clock := newLapClock()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()

	if s.statements != nil {
		s.statements.warm(ctx)
	}
	begin := s.db.WithWriteTx
	if step.syncLater {
		begin = s.db.WithWriteTxSyncLater
	}
	var w *writer
	err := s.countedWriteTx(ctx, begin, func(tx *sqlx.Tx) error {
		done.phases.Wait = clock.lap()
		w = &writer{tx: tx, rules: s.rules, now: s.now(), bulk: newBulkRows(),
			cache: newIdentityCache(), dialect: s.db.Dialect(), shared: s.statements}
		if w.dialect == sqldb.Postgres {
			w.folds = newFoldedMerges()
		}
		err := w.prefetch(ctx, messages, step.ahead, step.prev)
		if done.phases.ReadAhead = clock.lap(); err != nil {
			return err
		}
		step.startAt(afterReads, s.startsNext())
		err = w.ingestAll(ctx, messages, done.outcomes, &done.phases, clock)
		if err == nil {
			step.startAt(afterWrites, s.startsNext())
		}
		return err
	})
	if err != nil {
		return done, fmt.Errorf("resolver.Ingest: %w", err)
	}
	done.phases.Commit = clock.lap()
	if len(messages) >= earlyCheckpointMessages {
		s.db.CheckpointSoon()
	}
	done.readAheadUsed = w.readAheadUsed
	if step.startNext != nil { // a next group may check its read-ahead against it
		done.trace = traceOf(w)
	}
	s.logOutcomes(ctx, done.outcomes)
	return done, nil
}

// startAt calls startNext, if any, when point is the one chosen.
func (step pipelineStep) startAt(point, chosen int) {
	if step.startNext != nil && point == chosen {
		step.startNext()
	}
}

// ingestAll stores messages in order into outcomes, then writes the rows
// kept for the end, timing both phases.
func (w *writer) ingestAll(ctx context.Context, messages []*Message, outcomes []Outcome,
	phases *IngestPhases, clock *lapClock) error {
	for i, m := range messages {
		outcome, err := w.ingest(ctx, m)
		if err != nil {
			return fmt.Errorf("store message %q: %w", m.ID, err)
		}
		outcomes[i] = outcome
	}
	phases.Resolve = clock.lap()

	err := w.flush(ctx)
	phases.Write = clock.lap()
	return err
}

// lapClock measures consecutive phases on the monotonic clock.
type lapClock struct{ last time.Time }

func newLapClock() *lapClock { return &lapClock{last: time.Now()} }

// lap returns the time since the previous lap (or the start) and starts
// the next.
func (c *lapClock) lap() time.Duration {
	now := time.Now()
	elapsed := now.Sub(c.last)
	c.last = now
	return elapsed
}

func (s *Store) logOutcomes(ctx context.Context, outcomes []Outcome) {
	if s.log == nil {
		return
	}
	duplicates := 0
	for _, o := range outcomes {
		switch o.Status {
		case StatusDuplicate:
			duplicates++
		case StatusDeleted:
			s.log.InfoContext(ctx, "deletion request carried out", "message_id", o.MessageID,
				"profile_id", o.ProfileID)
		}
	}
	s.log.DebugContext(ctx, "messages committed", "stored", len(outcomes)-duplicates,
		"duplicates", duplicates)
}

// writer does the work of one ingest transaction.
type writer struct {
	tx        *sqlx.Tx
	rules     Rules
	now       time.Time
	decisions []decision // of the message being stored
	anyBlocks *bool      // whether any identifier was unlinked, read once
	stmts     map[string]*sqlx.Stmt
	shared    *statementCache // statements kept across transactions, or nil
	// bulk collects rows written together at the end of a batch; nil
	// writes each row at once.
	bulk *bulkRows
	// cache remembers identities read and written in this transaction;
	// nil reads them from the database each time.
	cache *identityCache
	// dialect picks engine-specific forms of a few queries; "" uses forms
	// both engines take.
	dialect sqldb.Dialect
	// known holds the batch's message ids stored or erased before it
	// began; nil asks the database message by message.
	known map[string]bool
	// profileIDs and eventIDs number the profiles and events the
	// transaction writes.
	profileIDs, eventIDs idNumbering
	// folds holds the batch's merges for its end (PostgreSQL); nil writes
	// each merge at once.
	folds *foldedMerges
	// generation is the write generation of the transaction (readStart).
	generation int64
	// readAheadUsed says the prefetch took a read-ahead; erased, that the
	// transaction erased someone (no read-ahead may outlive that).
	readAheadUsed, erased bool
}

func (w *writer) ingest(ctx context.Context, m *Message) (Outcome, error) {
	outcome := Outcome{MessageID: m.ID, Status: StatusDuplicate}

	// Stored before, or erased for a privacy request: either way not again.
	stored, err := w.storedBefore(ctx, m.ID)
	if err != nil {
		return outcome, err
	}
	if stored || (w.bulk != nil && w.bulk.stored[m.ID]) {
		return outcome, nil
	}

	if m.Type == "delete" {
		// An erase reads and deletes what the batch stored so far.
		if err := w.flush(ctx); err != nil {
			return outcome, err
		}
		outcome, err := w.deleteFor(ctx, m)
		// It removed identities and messages: read both afresh after it,
		// and number events from what is left, as one message at a time
		// would.
		if w.cache != nil {
			w.cache = newIdentityCache()
		}
		w.known = nil
		w.erased = true
		w.eventIDs.last = 0
		return outcome, err
	}
	profileID, ids, err := w.resolveMessage(ctx, m)
	if err != nil {
		return outcome, err
	}
	eventID, err := w.insertEvent(ctx, m, profileID)
	if err != nil {
		return outcome, err
	}
	if err := w.settle(ctx, m, eventID, profileID, ids); err != nil {
		return outcome, err
	}

	outcome.Status = StatusStored
	outcome.ProfileID = profileID
	return outcome, nil
}

// storedBefore says whether messageID was stored or erased before this
// message: from the batch's prefetched ids, or the database.
func (w *writer) storedBefore(ctx context.Context, messageID string) (bool, error) {
	if w.known != nil {
		return w.known[messageID], nil
	}
	// The same question as the prefetch's: on PostgreSQL, event_ids also
	// holds the ids of events that retention dropped.
	query, args, err := knownMessagesQuery(w.dialect, []string{messageID})
	if err != nil {
		return false, err
	}
	var found []string
	if err := w.tx.SelectContext(ctx, &found, w.tx.Rebind(query), args...); err != nil {
		return false, fmt.Errorf("check duplicate: %w", err)
	}
	return len(found) > 0, nil
}

// resolveMessage extracts the message's identifiers, leaves out blocked
// ones (recording why) and resolves the message to a profile.
func (w *writer) resolveMessage(ctx context.Context, m *Message) (int64, []Identifier, error) {
	ids, blocked := w.extracted(m)
	ids, unlinked, err := w.withoutUnlinked(ctx, ids)
	if err != nil {
		return 0, nil, err
	}
	blocked = append(blocked, unlinked...)
	for _, b := range blocked {
		w.record(decision{kind: DecisionBlocked, identifier: b.Identifier,
			rule: "blocked values", detail: b.reason})
	}
	previous, err := w.aliasPrevious(ctx, m)
	if err != nil {
		return 0, nil, err
	}
	profile, err := w.resolve(ctx, m, ids, previous)
	return profile, ids, err
}

// settle writes what follows from where the message, stored as event
// eventID, landed: its decisions, its identity links and, for an identify,
// its traits.
func (w *writer) settle(ctx context.Context, m *Message, eventID, profile int64,
	ids []Identifier) error {
	if err := w.writeDecisions(ctx, m, eventID, profile, ids); err != nil {
		return err
	}
	if profile != 0 && m.Type == "identify" {
		return w.setTraits(ctx, profile, m)
	}
	return nil
}

// insertEvent stores the message as an event of profileID (none when 0)
// and returns the event's id.
func (w *writer) insertEvent(ctx context.Context, m *Message, profileID int64) (int64, error) {
	id, err := w.newEventID(ctx)
	if err != nil {
		return 0, err
	}

	err = w.write(ctx, &bulkEvents,
		id, m.ID, m.Source, m.Type, m.Event, m.UserID, m.AnonymousID, nullable(profileID),
		m.Timestamp.UnixMilli(), m.ReceivedAt.UnixMilli(), m.App,
		m.DeviceType, m.DeviceID, propertiesJSON(m), string(m.Raw))
	if err != nil {
		return 0, fmt.Errorf("insert event: %w", err)
	}

	if w.bulk == nil {
		return id, w.advanceSequences(ctx)
	}
	w.bulk.stored[m.ID] = true
	return id, nil
}

// aliasPrevious returns the identifier an alias call's previousId stands
// for when alias merges are on: the user_id of that value if a profile holds
// one, else the anonymous_id (what analytics.js sends). Nothing otherwise.
func (w *writer) aliasPrevious(ctx context.Context, m *Message) ([]Identifier, error) {
	if m.Type != "alias" || !w.rules.AliasMerges {
		return nil, nil
	}
	value := strings.TrimSpace(m.PreviousID)
	if value == strings.TrimSpace(m.UserID) {
		return nil, nil // an alias to itself ties nothing
	}
	if reason := w.rules.blockedReason(TypeUserID, value); reason != "" {
		w.record(decision{kind: DecisionBlocked, rule: "blocked values", detail: reason,
			identifier: Identifier{Type: "previous_id", Value: value}})
		return nil, nil
	}

	previous := Identifier{Type: TypeUserID, Value: value}
	owners, err := w.owners(ctx, []Identifier{previous})
	if err != nil {
		return nil, err
	}
	if _, held := owners[previous]; !held {
		previous.Type = TypeAnonymousID
	}

	// The same blocks apply as to any identifier of that type.
	if reason := w.rules.blockedReason(previous.Type, value); reason != "" {
		w.record(decision{kind: DecisionBlocked, rule: "blocked values", detail: reason,
			identifier: previous})
		return nil, nil
	}
	kept, unlinked, err := w.withoutUnlinked(ctx, []Identifier{previous})
	for _, b := range unlinked {
		w.record(decision{kind: DecisionBlocked, identifier: b.Identifier,
			rule: "blocked values", detail: b.reason})
	}
	return kept, err
}
