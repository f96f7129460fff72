package resolver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/knit-cdp/knit/resolver/sqldb"
)

// DefaultGroupMessages is how many messages one shared transaction takes at
// most when GroupOptions leaves it unset.
const DefaultGroupMessages = 5000

// GroupOptions tunes a GroupCommitter.
type GroupOptions struct {
	// MaxMessages caps the messages of one shared transaction; a request
	// larger than the cap still commits, alone.
	MaxMessages int
	// Observe, when set, is told the size of every group and, for one
	// that committed, where its time went.
	Observe func(GroupStats)
}

// GroupStats describes one shared transaction.
type GroupStats struct {
	Requests int  // Ingest calls it answered
	Messages int  // messages it held
	Retried  bool // it failed and its requests were committed one by one
	// ReadAhead says it took what was read for it while the group before
	// it committed, rather than reading it all under the write lock.
	ReadAhead bool
	// Phases is where the shared transaction spent its time; zero when
	// it failed.
	Phases IngestPhases
}

// GroupCommitter stores messages from concurrent Ingest calls in shared
// transactions: while one transaction commits, the calls that arrive wait,
// and the next transaction takes them all. Each call still returns only
// after its own messages are committed and, on SQLite, the write-ahead log
// holding them is synced to disk (answerWhenSynced), or they have failed,
// so a 2xx sent on its answer means stored. One fsync serves many
// requests, and runs beside the next transaction.
//
// A failed shared transaction is retried one request at a time, so a
// request that cannot be stored fails alone and its neighbours succeed.
type GroupCommitter struct {
	store   *Store
	opts    GroupOptions
	queue   chan *groupRequest
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once
	// readAhead says whether the next group is read while one commits:
	// on PostgreSQL, where the writer waits for the server's round trips.
	// On SQLite, where the writer keeps a core busy and single-message
	// webhooks keep the other one busy too, it cost single-message
	// webhooks 13 to 20 % (docs/benchmarks.md, sixteenth session); tests
	// turn it on there to check it all the same.
	readAhead bool
	// readAheadStarted, when set (by tests), is called with each
	// read-ahead once started, before the group under way goes on.
	readAheadStarted func(*readAhead)
	// syncs holds committed groups whose callers wait for the log's sync
	// (answerWhenSynced); closed when run ends. synced is closed once the
	// last of them is answered.
	syncs  chan committedGroup
	synced chan struct{}
	// syncCommitted makes the committed groups durable: the database's
	// SyncCommitted, or a test's stand-in.
	syncCommitted func() error
	// diskFailed is set once a sync has failed. From then on the
	// committer stores nothing more: after a failed fsync the kernel may
	// have dropped the log's pages, and a later sync that succeeds would
	// not bring them back, so no later answer could promise anything.
	diskFailed atomic.Bool
}

// committedGroup is a group committed without waiting for the disk, with
// what to answer its callers once the log holding it is synced.
type committedGroup struct {
	requests    []*groupRequest
	outcomes    []Outcome
	stats       GroupStats
	committedAt time.Time
}

// syncQueue is how many committed groups may wait for the log's sync
// before the committer waits too: enough that a slow fsync never stalls
// it at once, few enough that a stuck disk soon holds back new requests.
const syncQueue = 16

type groupRequest struct {
	ctx      context.Context
	messages []*Message
	reply    chan groupReply // buffered: the committer never blocks on it
}

type groupReply struct {
	outcomes []Outcome
	err      error
}

// NewGroupCommitter starts a committer over store. Close stops it.
func NewGroupCommitter(store *Store, opts GroupOptions) *GroupCommitter {
	if opts.MaxMessages <= 0 {
		opts.MaxMessages = DefaultGroupMessages
	}
	g := &GroupCommitter{
		store:         store,
		opts:          opts,
		queue:         make(chan *groupRequest),
		stop:          make(chan struct{}),
		stopped:       make(chan struct{}),
		readAhead:     store.db.Dialect() == sqldb.Postgres,
		syncs:         make(chan committedGroup, syncQueue),
		synced:        make(chan struct{}),
		syncCommitted: store.db.SyncCommitted,
	}
	go g.answerWhenSynced()
	go g.run()
	return g
}

// Ingest stores messages as Store.Ingest does, sharing the transaction with
// other calls made at the same time. When it returns nil every message is
// committed; on error none of this call's messages is, unless the error is
// ctx's, when they may or may not be (a retry finds them as duplicates).
func (g *GroupCommitter) Ingest(ctx context.Context, messages []*Message) ([]Outcome, error) {
	if len(messages) == 0 {
		return nil, nil
	}
	if g.diskFailed.Load() {
		return nil, errDiskFailed()
	}
	g.store.prepare(messages) // here, in parallel with other callers
	r := &groupRequest{ctx: ctx, messages: messages, reply: make(chan groupReply, 1)}

	select {
	case g.queue <- r:
	case <-g.stop:
		return nil, errCommitterClosed()
	case <-ctx.Done():
		return nil, fmt.Errorf("wait to store messages: %w", ctx.Err())
	}

	select {
	case rep := <-r.reply:
		return rep.outcomes, rep.err
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for commit: %w", ctx.Err())
	}
}

// DiskFailed reports whether a sync of the log has failed: from then on
// the committer refuses every request until the process restarts.
func (g *GroupCommitter) DiskFailed() bool { return g.diskFailed.Load() }

// Close stops taking calls once the transaction under way has committed.
// Calls made after Close fail without storing anything.
func (g *GroupCommitter) Close() {
	g.once.Do(func() { close(g.stop) })
	<-g.stopped
}

func (g *GroupCommitter) run() {
	defer close(g.stopped)
	defer func() { <-g.synced }()
	defer close(g.syncs)
	var next *pendingGroup
	var prev *groupTrace
	for {
		if next == nil {
			select {
			case first := <-g.queue:
				next = &pendingGroup{requests: g.gather(first)}
			case <-g.stop:
				return
			}
		}
		// A group gathered during the last commit is stored even after
		// Close: its callers are waiting.
		next, prev = g.commit(next, prev)
	}
}

// pendingGroup is a group of requests gathered for one transaction, and
// what was read ahead for them, if anything.
type pendingGroup struct {
	requests []*groupRequest
	ahead    *readAhead
}

// gather takes first and whatever other requests are already waiting, up
// to the message cap.
func (g *GroupCommitter) gather(first *groupRequest) []*groupRequest {
	group := []*groupRequest{first}
	count := len(first.messages)
	for count < g.opts.MaxMessages {
		select {
		case r := <-g.queue:
			group = append(group, r)
			count += len(r.messages)
		default:
			return group
		}
	}
	return group
}

// gatherWaiting gathers the requests already waiting, if any, and starts
// reading ahead for them; it returns nil when none waits.
func (g *GroupCommitter) gatherWaiting() *pendingGroup {
	select {
	case first := <-g.queue:
		requests := g.gather(first)
		ahead := g.store.startReadAhead(messagesOf(requests))
		if g.readAheadStarted != nil {
			g.readAheadStarted(ahead)
		}
		return &pendingGroup{requests: requests, ahead: ahead}
	default:
		return nil
	}
}

func messagesOf(requests []*groupRequest) []*Message {
	var all []*Message
	for _, r := range requests {
		all = append(all, r.messages...)
	}
	return all
}

// commit stores the group's messages in one transaction and answers each
// request with its own outcomes; when that fails, it stores each request
// in a transaction of its own. Where the committer reads ahead, the
// requests waiting while the transaction holds the write lock (from a
// point that depends on the engine: Store.startsNext) are gathered as the
// next group, and what they will ask is read meanwhile (readAhead).
// commit returns that group, or nil, and what its own transaction
// touched, or nil when it failed or nothing may read ahead against it.
func (g *GroupCommitter) commit(group *pendingGroup,
	prev *groupTrace) (*pendingGroup, *groupTrace) {
	requests := answerAbandoned(group.requests)
	if len(requests) == 0 {
		return nil, prev
	}
	if g.diskFailed.Load() {
		g.answer(requests, nil, errDiskFailed())
		return nil, nil
	}

	all := messagesOf(requests)
	var next *pendingGroup
	step := pipelineStep{ahead: group.ahead, prev: prev, syncLater: true}
	if g.readAhead {
		step.startNext = func() { next = g.gatherWaiting() }
	}
	// Not any one caller's context: the work is all of theirs, and it
	// finishes even if a caller goes away.
	done, err := g.store.ingestStep(context.Background(), all, step)
	// A database that cannot work now fails each request alone too, and
	// each would wait its own busy timeout first: answer them all at once.
	stats := GroupStats{Requests: len(requests), Messages: len(all)}
	if err == nil {
		stats.Phases, stats.ReadAhead = done.phases, done.readAheadUsed
		g.syncs <- committedGroup{requests: requests, outcomes: done.outcomes,
			stats: stats, committedAt: time.Now()}
		return next, done.trace
	}
	if len(requests) == 1 || ErrorCode(err) == EUnavailable {
		g.answer(requests, nil, err)
		g.observe(stats)
		return next, nil
	}

	// The one-by-one retry answers at once, without the syncer: each of
	// its commits syncs the whole log, and so the groups committed before
	// it too. Every write transaction writes to the log (the write
	// generation), even one that finds only duplicates, so a duplicate's
	// answer never precedes its first copy's sync
	// (TestDuplicateOnlyIngestStillWritesALogFrame).
	g.store.logGroupRetry(len(requests), len(all), err)
	for _, r := range requests {
		outcomes, err := g.store.Ingest(context.WithoutCancel(r.ctx), r.messages)
		r.reply <- groupReply{outcomes: outcomes, err: err}
	}
	g.observe(GroupStats{Requests: len(requests), Messages: len(all), Retried: true})
	return next, nil
}

// answerWhenSynced answers the callers of each committed group once the
// write-ahead log holding it is on disk: one sync serves every group
// committed while the one before ran, and the committer goes on with the
// next group meanwhile. When the sync fails, its groups' callers get an
// error: their messages are committed but may not survive a power cut,
// and a retry finds those that did as duplicates.
func (g *GroupCommitter) answerWhenSynced() {
	defer close(g.synced)
	for first := range g.syncs {
		groups := g.takeCommitted(first)

		var answer error
		if g.diskFailed.Load() {
			answer = errUnsynced()
		} else if err := g.syncCommitted(); err != nil {
			g.diskFailed.Store(true)
			g.store.logSyncFailure(len(groups), err)
			answer = errUnsynced()
		}

		for _, c := range groups {
			g.answer(c.requests, c.outcomes, answer)
			c.stats.Phases.Sync = time.Since(c.committedAt)
			g.observe(c.stats)
		}
	}
}

// takeCommitted returns first and the committed groups already waiting
// behind it.
func (g *GroupCommitter) takeCommitted(first committedGroup) []committedGroup {
	groups := []committedGroup{first}
	for {
		select {
		case c, ok := <-g.syncs:
			if !ok {
				return groups
			}
			groups = append(groups, c)
		default:
			return groups
		}
	}
}

// answerAbandoned answers the requests whose callers stopped waiting
// before their turn came, and returns the others: nothing of theirs is
// stored, so a retry stores it.
func answerAbandoned(group []*groupRequest) []*groupRequest {
	waiting := group[:0]
	for _, r := range group {
		if err := r.ctx.Err(); err != nil {
			r.reply <- groupReply{err: fmt.Errorf("wait to store messages: %w", err)}
			continue
		}
		waiting = append(waiting, r)
	}
	return waiting
}

// answer splits outcomes of the whole group among its requests, in order.
func (g *GroupCommitter) answer(group []*groupRequest, outcomes []Outcome, err error) {
	next := 0
	for _, r := range group {
		if err != nil {
			r.reply <- groupReply{err: err}
			continue
		}
		mine := outcomes[next : next+len(r.messages) : next+len(r.messages)]
		next += len(r.messages)
		r.reply <- groupReply{outcomes: mine}
	}
}

func (g *GroupCommitter) observe(stats GroupStats) {
	if g.opts.Observe != nil {
		g.opts.Observe(stats)
	}
}

// logGroupRetry says why a shared transaction is being retried request by
// request.
func (s *Store) logGroupRetry(requests, messages int, err error) {
	if s.log == nil || errors.Is(err, context.Canceled) {
		return
	}
	s.log.Warn("shared transaction failed; storing its requests one by one",
		"requests", requests, "messages", messages, "error", err)
}

// logSyncFailure says why the callers of committed groups got an error.
func (s *Store) logSyncFailure(groups int, err error) {
	if s.log != nil {
		s.log.Error("write-ahead log sync failed; its requests were told "+
			"to retry", "groups", groups, "error", err)
	}
}

// errUnsynced answers the callers of groups whose sync failed.
func errUnsynced() error {
	return Errorf(EUnavailable, "knit could not confirm that the disk holds "+
		"these messages; they may be stored, and a retry stores each one once")
}

// errDiskFailed answers the requests that come after a failed sync.
func errDiskFailed() error {
	return Errorf(EUnavailable, "knit stopped storing messages after the disk "+
		"failed to confirm a write; nothing of this request was stored. "+
		"Check the disk and restart knit")
}

// errCommitterClosed answers a call made after Close: nothing was stored.
func errCommitterClosed() error {
	return Errorf(EUnavailable, "knit is shutting down; nothing of this request was stored")
}
