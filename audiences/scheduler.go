package audiences

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// Scheduler runs every audience on its cron schedule and once at start.
// Jobs of one audience never overlap: a tick that finds the previous run
// still going is skipped.
type Scheduler struct {
	runner *Runner
	cron   *cron.Cron
	log    *slog.Logger

	ctx     context.Context
	cancel  context.CancelFunc
	initial sync.WaitGroup
	retries []time.Duration
	entries []cron.EntryID
	names   []string // the audience of each entry
	// wallClock tells the minute a job fired in, which names its slot.
	wallClock func() time.Time
	// atStart holds the audiences whose next run is the one at start,
	// which every process computes without claiming a slot.
	atStart   map[string]bool
	atStartMu sync.Mutex
}

// NewScheduler prepares a job for each of the runner's audiences. It
// returns an error naming the audience whose schedule does not parse.
func NewScheduler(runner *Runner, log *slog.Logger) (*Scheduler, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Scheduler{runner: runner, log: log, ctx: ctx, cancel: cancel, retries: retryDelays(),
		wallClock: time.Now}
	s.cron = cron.New(cron.WithLocation(time.UTC), cron.WithChain(
		cron.Recover(cronLogger{log}),
		cron.SkipIfStillRunning(cronLogger{log}),
	))

	for _, def := range runner.Definitions() {
		name := def.Name
		id, err := s.cron.AddFunc(def.scheduleSpec(), func() { s.runJob(name) })
		if err != nil {
			cancel()
			return nil, fmt.Errorf("schedule audience %s (%q): %w",
				name, def.scheduleSpec(), err)
		}
		s.entries = append(s.entries, id)
		s.names = append(s.names, name)
	}
	return s, nil
}

// Start computes every audience once in the background and starts the
// cron schedule. The first runs go through the same guarded jobs as the
// schedule, so a tick while one (or its retries) is going is skipped; an
// audience that reads others (in_audience) waits for their first runs.
func (s *Scheduler) Start() {
	s.atStartMu.Lock()
	s.atStart = map[string]bool{}
	for _, name := range s.names {
		s.atStart[name] = true
	}
	s.atStartMu.Unlock()

	firstDone := map[string]chan struct{}{}
	for _, name := range s.names {
		firstDone[name] = make(chan struct{})
	}
	for i, id := range s.entries {
		name, job := s.names[i], s.cron.Entry(id).WrappedJob
		def, _ := s.runner.Definition(name)
		s.initial.Add(1)
		go func() {
			defer s.initial.Done()
			defer close(firstDone[name])
			// Validate refuses cycles, so this wait always ends.
			for _, other := range def.Audiences() {
				<-firstDone[other]
			}
			job.Run()
		}()
	}
	s.cron.Start()
}

// Stop stops scheduling, aborts running computations (their previous
// results stay in place and the runs are recorded as aborted) and returns
// when every job has returned.
func (s *Scheduler) Stop() {
	done := s.cron.Stop()
	s.cancel()
	<-done.Done()
	s.initial.Wait()
}

// retryDelays are the waits before the retries of a failed scheduled run.
func retryDelays() []time.Duration {
	return []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute}
}

// runJob runs an audience and, when the run failed (not when it was
// aborted), retries it after growing delays. Errors are logged and recorded
// on the runs by the runner itself.
func (s *Scheduler) runJob(name string) {
	if !s.startingRun(name) && !s.claim(name) {
		return
	}
	for attempt := 0; ; attempt++ {
		run, err := s.runner.Run(s.ctx, name)
		if err == nil || run.Status != StatusFailed || attempt == len(s.retries) {
			return
		}
		select {
		case <-time.After(s.retries[attempt]):
		case <-s.ctx.Done():
			return
		}
	}
}

// startingRun reports whether this is the audience's run at start, which
// a process always computes: a restart, perhaps at another --clock, must
// not serve the previous process's result.
func (s *Scheduler) startingRun(name string) bool {
	s.atStartMu.Lock()
	defer s.atStartMu.Unlock()
	first := s.atStart[name]
	delete(s.atStart, name)
	return first
}

// claim takes the scheduled run of name for this process, and reports
// false when another process of the fleet took it.
func (s *Scheduler) claim(name string) bool {
	// The slot is the wall-clock minute the schedule fired in, the same on
	// every process of a fleet whatever clock audiences are evaluated at.
	slot := s.wallClock().UTC().Truncate(time.Minute)
	claimed, err := s.runner.claimSlot(context.WithoutCancel(s.ctx), name, slot)
	if err != nil {
		s.logError("claim scheduled run", name, err)
		return false
	}
	if !claimed && s.log != nil {
		s.log.Debug("another process computes this run", "audience", name,
			"slot", slot.Format(time.RFC3339))
	}
	return claimed
}

func (s *Scheduler) logError(msg, name string, err error) {
	if s.log != nil {
		s.log.Error(msg, "audience", name, "error", err)
	}
}

// cronLogger adapts slog to the logger robfig/cron expects.
type cronLogger struct{ log *slog.Logger }

func (l cronLogger) Info(msg string, keysAndValues ...any) {
	if l.log != nil {
		l.log.Debug("cron: "+msg, keysAndValues...)
	}
}

func (l cronLogger) Error(err error, msg string, keysAndValues ...any) {
	if l.log != nil {
		l.log.Error("cron: "+msg, append(keysAndValues, "error", err)...)
	}
}
