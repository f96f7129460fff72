package audiences

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
)

// Run statuses.
const (
	StatusRunning = "running"
	StatusOK      = "ok"
	StatusFailed  = "failed"
	StatusAborted = "aborted"
)

// Run is the record of one computation of one audience.
type Run struct {
	ID          int64     `json:"id"`
	Audience    string    `json:"audience"`
	StartedAt   time.Time `json:"started_at"`
	FinishedAt  time.Time `json:"finished_at,omitzero"`
	EvaluatedAt time.Time `json:"evaluated_at"`
	Size        int       `json:"size"`
	Entered     int       `json:"entered"`
	Exited      int       `json:"exited"`
	Status      string    `json:"status"`
	Error       string    `json:"error,omitempty"`
}

// MarshalJSON writes the run with every time in one form, UTC with
// milliseconds, as exports write times; a run not finished has
// "finished_at": null.
func (r Run) MarshalJSON() ([]byte, error) {
	var finished *string
	if !r.FinishedAt.IsZero() {
		text := r.FinishedAt.UTC().Format(timeLayout)
		finished = &text
	}
	return json.Marshal(struct {
		ID          int64   `json:"id"`
		Audience    string  `json:"audience"`
		StartedAt   string  `json:"started_at"`
		FinishedAt  *string `json:"finished_at"`
		EvaluatedAt string  `json:"evaluated_at"`
		Size        int     `json:"size"`
		Entered     int     `json:"entered"`
		Exited      int     `json:"exited"`
		Status      string  `json:"status"`
		Error       string  `json:"error,omitempty"`
	}{
		r.ID, r.Audience, r.StartedAt.UTC().Format(timeLayout), finished,
		r.EvaluatedAt.UTC().Format(timeLayout), r.Size, r.Entered, r.Exited,
		r.Status, r.Error,
	})
}

// Runner computes audiences and keeps their results. Runs of one audience
// never overlap: a second request waits for the first to finish.
type Runner struct {
	db     *sqldb.DB
	defs   []Definition
	byName map[string]Definition
	now    func() time.Time
	log    *slog.Logger
	locks  map[string]chan struct{}
	// queries is how many queries compute one audience at once on
	// PostgreSQL, each over its share of the profiles.
	queries int
	// computing holds a token for each audience being computed; see
	// maxComputing.
	computing chan struct{}

	// stopping ends with Abort, and with it every run in progress, however
	// it was started.
	stopping context.Context
	abort    context.CancelFunc
}

// NewRunner returns a Runner for defs, which must have passed Validate. now
// is the clock audiences are evaluated at.
func NewRunner(db *sqldb.DB, defs []Definition, now func() time.Time,
	log *slog.Logger) *Runner {
	stopping, abort := context.WithCancel(context.Background())
	r := &Runner{
		db: db, defs: defs, now: now, log: log,
		byName: map[string]Definition{}, locks: map[string]chan struct{}{},
		stopping: stopping, abort: abort, queries: DefaultQueriesPerAudience,
		computing: make(chan struct{}, maxComputing),
	}
	for _, d := range defs {
		r.byName[d.Name] = d
		r.locks[d.Name] = make(chan struct{}, 1)
	}
	return r
}

// maxComputing is how many audiences one runner computes at once; the
// others wait their turn. Each computation holds connections of the
// database pool (20 on PostgreSQL) for its whole length, one for its lock
// across processes and one or more for its queries, and needs another
// now and then: twenty computations at once held every connection and
// waited for ever for one more.
const maxComputing = 4

// DefaultQueriesPerAudience is how many queries compute one audience at
// once on PostgreSQL unless SetQueriesPerAudience says otherwise: one for
// each of the two cores knit's benchmarks ran on. A single query spends
// most of its time in one server process.
const DefaultQueriesPerAudience = 2

// SetQueriesPerAudience sets how many queries compute one audience at once
// on PostgreSQL, each over its share of the profiles on a connection of its
// own, all reading the same snapshot; n below 2 computes each audience in
// one query. SQLite always uses one. Call it before the first run.
func (r *Runner) SetQueriesPerAudience(n int) {
	r.queries = max(n, 1)
}

// takeFirst puts a token in slots, waiting for room until ctx ends. Room
// already free is taken even when ctx has ended (a select with both cases
// ready picks one at random), so that a run whose ctx ended is still
// recorded, as aborted.
func takeFirst(ctx context.Context, slots chan struct{}) error {
	select {
	case slots <- struct{}{}:
		return nil
	default:
	}
	select {
	case slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Definitions returns the audiences the runner knows, sorted by name.
func (r *Runner) Definitions() []Definition { return r.defs }

// RunOrder names every audience so that each comes after the audiences its
// conditions read (in_audience), taking names alphabetically: the order in which
// computing all of them gives each the others' fresh results.
func (r *Runner) RunOrder() []string {
	var order []string
	placed := map[string]bool{}
	var place func(name string)
	place = func(name string) {
		if placed[name] {
			return
		}
		placed[name] = true // Validate refused cycles
		for _, other := range r.byName[name].Audiences() {
			place(other)
		}
		order = append(order, name)
	}
	for _, d := range r.defs {
		place(d.Name)
	}
	return order
}

// Definition returns the named audience, or an *resolver.Error with code
// ENotFound.
func (r *Runner) Definition(name string) (Definition, error) {
	d, ok := r.byName[name]
	if !ok {
		return Definition{}, resolver.Errorf(resolver.ENotFound, "no audience named %q", name)
	}
	return d, nil
}

// Abort ends every run in progress and every run started later: each is
// recorded as aborted and leaves the previous result in place. The server
// calls it when it shuts down.
func (r *Runner) Abort() { r.abort() }

// Run computes the named audience now, replaces its result atomically and
// returns the run's record. When ctx ends first, or Abort is called, the run
// is recorded as aborted and the previous result stays in place. A run
// whose ctx names an actor (resolver.WithActor), one someone asked for, is
// written to the audit log with its run id; scheduled runs are not.
func (r *Runner) Run(ctx context.Context, name string) (Run, error) {
	def, err := r.Definition(name)
	if err != nil {
		return Run{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(r.stopping, cancel)
	defer stop()

	lock := r.locks[name]
	if err := takeFirst(ctx, lock); err != nil {
		return Run{}, fmt.Errorf("wait for running %s: %w", name, err)
	}
	defer func() { <-lock }()
	if err := takeFirst(ctx, r.computing); err != nil {
		return Run{}, fmt.Errorf("wait for running %s: %w", name, err)
	}
	defer func() { <-r.computing }()

	var run Run
	// Other processes on the same PostgreSQL database wait their turn too.
	lockErr := r.db.WithNamedLock(ctx, "audience:"+name, func() error {
		if err = r.abortLeftRunning(context.WithoutCancel(ctx), name); err != nil {
			return nil // reported below
		}
		// The run is recorded even when ctx has ended, so that compute
		// records it as aborted instead of leaving no trace.
		run, err = r.start(context.WithoutCancel(ctx), name)
		if err != nil {
			return err
		}
		run, err = r.compute(ctx, def, run)
		r.logRun(run, err)
		return nil
	})
	if lockErr != nil && err == nil {
		return run, fmt.Errorf("wait for running %s: %w", name, lockErr)
	}
	return run, err
}

func (r *Runner) compute(ctx context.Context, def Definition, run Run) (Run, error) {
	members, err := r.memberRows(ctx, def, run.EvaluatedAt)
	if err == nil {
		run, err = r.save(ctx, def, run, members)
	}
	if err != nil {
		run.Status, run.Error = StatusFailed, err.Error()
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			run.Status = StatusAborted
		}
		run.FinishedAt = r.now().UTC()
		if finishErr := r.finish(run); finishErr != nil {
			err = errors.Join(err, finishErr)
		}
		return run, fmt.Errorf("compute audience %s: %w", def.Name, err)
	}
	return run, nil
}

func (r *Runner) logRun(run Run, err error) {
	if r.log == nil {
		return
	}
	attrs := []any{
		"audience", run.Audience, "run_id", run.ID, "status", run.Status,
		"size", run.Size, "entered", run.Entered, "exited", run.Exited,
		"duration_ms", run.FinishedAt.Sub(run.StartedAt).Milliseconds(),
	}
	if err != nil {
		r.log.Error("audience run failed", append(attrs, "error", err)...)
		return
	}
	r.log.Info("audience run finished", attrs...)
}

func (r *Runner) start(ctx context.Context, name string) (Run, error) {
	now := r.now().UTC()
	// Evaluate at a whole second, so "as of" times read as people write them.
	run := Run{Audience: name, StartedAt: now, EvaluatedAt: now.Truncate(time.Second),
		Status: StatusRunning}

	err := r.db.WithTx(ctx, func(tx *sqlx.Tx) error {
		err := tx.GetContext(ctx, &run.ID, tx.Rebind(`INSERT INTO audience_runs
			(audience, started_ms, evaluated_ms, status) VALUES (?, ?, ?, ?)
			RETURNING id`), name, now.UnixMilli(), run.EvaluatedAt.UnixMilli(), StatusRunning)
		if err != nil || !resolver.HasActor(ctx) {
			return err
		}
		// Someone asked for this run (run now): the audit log says who.
		return resolver.RecordAudit(ctx, tx, now, resolver.AuditRunNow, name,
			map[string]any{"run_id": run.ID})
	})
	if err != nil {
		return run, fmt.Errorf("record run of %s: %w", name, err)
	}
	return run, nil
}

// finish records a run that did not save a result. It uses its own context
// so that an aborted run is still written down.
func (r *Runner) finish(run Run) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, err := r.db.ExecContext(ctx, r.db.Rebind(`UPDATE audience_runs
		SET finished_ms = ?, status = ?, error = ? WHERE id = ?`),
		run.FinishedAt.UnixMilli(), run.Status, run.Error, run.ID)
	if err != nil {
		return fmt.Errorf("record end of run %d: %w", run.ID, err)
	}
	return nil
}

// RecoverInterrupted marks runs left "running" by a process that died as
// aborted, so history never shows a run that will not finish. A run that
// another live process is computing (it holds the audience's lock) is left
// alone.
func (r *Runner) RecoverInterrupted(ctx context.Context) error {
	var names []string
	err := r.db.SelectContext(ctx, &names, r.db.Rebind(`SELECT DISTINCT audience
		FROM audience_runs WHERE status = ?`), StatusRunning)
	if err != nil {
		return fmt.Errorf("find interrupted runs: %w", err)
	}
	for _, name := range names {
		_, err := r.db.TryNamedLock(ctx, "audience:"+name, func() error {
			return r.markAborted(ctx, name)
		})
		if err != nil {
			return fmt.Errorf("mark interrupted runs of %s: %w", name, err)
		}
	}
	return nil
}

// abortLeftRunning marks runs of name still "running" as aborted when
// this process holds the audience's lock across processes (PostgreSQL), so
// no live process computes them. A process killed during a run keeps the
// lock until the database ends its last query, which can be after the
// next process's RecoverInterrupted looked; the next run cleans up.
func (r *Runner) abortLeftRunning(ctx context.Context, name string) error {
	if r.db.Dialect() != sqldb.Postgres {
		return nil // no lock across processes: RecoverInterrupted at start
	}
	if err := r.markAborted(ctx, name); err != nil {
		return fmt.Errorf("mark interrupted runs of %s: %w", name, err)
	}
	return nil
}

func (r *Runner) markAborted(ctx context.Context, name string) error {
	_, err := r.db.ExecContext(ctx, r.db.Rebind(`UPDATE audience_runs
		SET status = ?, error = ?, finished_ms = ? WHERE status = ? AND audience = ?`),
		StatusAborted, "the process stopped during the run",
		r.now().UnixMilli(), StatusRunning, name)
	return err
}

// Preview computes the named audience now without saving anything and
// returns its size and up to sample members.
func (r *Runner) Preview(ctx context.Context, name string, sample int) (int, []Member, error) {
	def, err := r.Definition(name)
	if err != nil {
		return 0, nil, err
	}
	return r.preview(ctx, def, sample)
}

// PreviewDefinition computes an audience that need not be configured, such
// as one being written, and returns its size and up to sample members.
// The definition is validated first, among the configured audiences (it
// stands in for one of the same name); nothing is saved.
func (r *Runner) PreviewDefinition(ctx context.Context, def Definition,
	sample int) (int, []Member, error) {
	defs := []Definition{def}
	for _, d := range r.defs {
		if d.Name != def.Name {
			defs = append(defs, d)
		}
	}
	if err := Validate(defs); err != nil {
		return 0, nil, err
	}
	return r.preview(ctx, def, sample)
}

// preview computes def now and returns its size and its first sample
// members, decoded (none when sample is 0 or less).
func (r *Runner) preview(ctx context.Context, def Definition, sample int) (int, []Member, error) {
	rows, err := r.memberRows(ctx, def, r.now().UTC().Truncate(time.Second))
	if err != nil {
		return 0, nil, fmt.Errorf("preview audience %s: %w", def.Name, err)
	}
	members, err := decodeMembers(rows[:min(len(rows), max(sample, 0))])
	if err != nil {
		return 0, nil, fmt.Errorf("preview audience %s: %w", def.Name, err)
	}
	return len(rows), members, nil
}
