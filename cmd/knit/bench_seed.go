package main

import (
	"context"
	"fmt"
	"io"
	"math/bits"
	"math/rand/v2"
	"os"
	"strconv"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/knit-cdp/knit/resolver"
)

const seedSummary = `knit bench seed [flags]: write a deterministic SegKicks and SegRuns data
set of --profiles people and --events messages through knit's ingestion
path (identity resolution included), for benchmarks of audience
computation.

Every person becomes exactly one profile: 15 % browse anonymously on one
device; the others sign in with a userId and an email on each of their 1 to
3 devices (iPhone, Android, web) and apps, shop, and about a third of those
who only shop leave a cart in the last five days (cart_abandonment);
runners buy shoes and then log "Workout Completed" runs, and the heaviest
pass 300 miles (shoe_reorder). Messages are spread over the --days days
before the start of the current UTC day (of --clock's day, when given).

The same --seed, --profiles and --events give the same messages with the
same messageIds, so seeding the same database again adds nothing. --events
counts every message (identifies too) and must be at least about 2.5 a
profile.`

// seedPlan shares the events among the people: each gets the fewest
// messages their story needs, and the rest in proportion to a weight by
// kind (runners log many runs).
type seedPlan struct {
	seed          uint64
	profiles      int
	events        int64
	extra         uint64 // events beyond every person's minimum
	totalWeight   uint64
	start, end    time.Time
	batch         int
	maxPersonSize int
}

func newSeedPlan(seed uint64, profiles int, events int64, days int,
	end time.Time) (*seedPlan, error) {
	p := &seedPlan{seed: seed, profiles: profiles, events: events, end: end,
		start: end.Add(-time.Duration(days) * 24 * time.Hour)}
	var minimum uint64
	for i := range profiles {
		person := newBenchPerson(seed, i)
		minimum += uint64(person.minSteps())
		p.totalWeight += person.weight()
	}
	if uint64(events) < minimum {
		return nil, fmt.Errorf("%w: --events %d is too few for %d profiles: they need "+
			"at least %d (a sign-in on each device and app)", errUsage, events, profiles,
			minimum)
	}
	p.extra = uint64(events) - minimum
	return p, nil
}

// scaled is floor(x*y/d) without overflow, for y <= d.
func scaled(x, y, d uint64) uint64 {
	hi, lo := bits.Mul64(x, y)
	q, _ := bits.Div64(hi, lo, d)
	return q
}

// people sends every person's messages, parsed, in batches of batch, to
// out, and closes it. The messages of the people are exactly p.events.
func (p *seedPlan) people(ctx context.Context, batch int, received func() time.Time,
	out chan<- []*resolver.Message) error {
	defer close(out)
	env := resolver.Envelope{Source: "seed"}
	messages := make([]*resolver.Message, 0, batch)
	raw := make([]byte, 0, batch*800)
	var id []byte
	var weightBefore uint64
	prefix := "seed-" + strconv.FormatUint(p.seed, 10) + "-"
	for i := range p.profiles {
		person := newBenchPerson(p.seed, i)
		weightAfter := weightBefore + person.weight()
		n := person.minSteps() + int(scaled(p.extra, weightAfter, p.totalWeight)-
			scaled(p.extra, weightBefore, p.totalWeight))
		weightBefore = weightAfter
		rng := rand.New(rand.NewPCG(mix64(p.seed)^0x5eed, uint64(i)))
		for k, st := range person.story(rng, n, p.start, p.end) {
			id = strconv.AppendInt(append(id[:0], prefix...), int64(i), 10)
			id = strconv.AppendInt(append(id, '-'), int64(k), 10)
			start := len(raw)
			raw = appendMessage(raw, &person, &st, id)
			env.ReceivedAt = received()
			m, err := resolver.ParseMessage(raw[start:len(raw):len(raw)], env)
			if err != nil {
				return fmt.Errorf("seed message %s: %w", id, err)
			}
			messages = append(messages, m)
			if len(messages) < batch {
				continue
			}
			select {
			case out <- messages:
			case <-ctx.Done():
				return ctx.Err()
			}
			messages = make([]*resolver.Message, 0, batch)
			raw = make([]byte, 0, batch*800)
		}
	}
	if len(messages) > 0 {
		out <- messages
	}
	return nil
}

// seedResult is what a seed did.
type seedResult struct {
	messages, stored, duplicates int64
	took                         time.Duration
}

func runBenchSeed(ctx context.Context, args []string, getenv env, stdout,
	stderr io.Writer) error {
	fs := newFlagSet("knit bench seed", seedSummary, stderr)
	var flags commonFlags
	flags.register(fs, getenv)
	profiles := fs.Int("profiles", 1000000, "people, each one profile")
	events := fs.Int64("events", 10000000, "messages in all, identifies included")
	seed := fs.Uint64("seed", 1, "seed of the data set")
	days := fs.Int("days", 90, "days the messages are spread over")
	batch := fs.Int("batch", 1000, "messages stored by one call of the ingestion path")
	var positional []string
	if err := parseFlags(fs, args, &positional); err != nil {
		return err
	}
	switch {
	case len(positional) > 0:
		return fmt.Errorf("%w: knit bench seed takes no arguments", errUsage)
	case *profiles < 1 || *days < 1 || *batch < 1:
		return fmt.Errorf("%w: --profiles, --days and --batch must be at least 1", errUsage)
	}

	a, err := openApp(ctx, flags, getenv, stderr)
	if err != nil {
		return err
	}
	defer a.db.Close()
	plan, err := newSeedPlan(*seed, *profiles, *events, *days,
		a.now().UTC().Truncate(24*time.Hour))
	if err != nil {
		return err
	}
	result, err := a.seed(ctx, plan, *batch, stderr)
	fmt.Fprintf(stdout, "seeded %d profiles, %d messages: stored %d, duplicates %d, "+
		"in %.1f s (%.0f messages/s)\n", *profiles, result.messages, result.stored,
		result.duplicates, result.took.Seconds(),
		float64(result.messages)/max(result.took.Seconds(), 1e-9))
	if err != nil {
		return err
	}
	return a.analyzeImported(ctx, int(result.stored))
}

// seed stores the plan's messages through the store, parsing the next
// batch while the last one is written.
func (a *app) seed(ctx context.Context, plan *seedPlan, batch int,
	stderr io.Writer) (seedResult, error) {
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []*resolver.Message, 2)
	produced := make(chan error, 1)
	go func() { produced <- plan.people(ctx, batch, a.now, batches) }()

	var result seedResult
	progress, drawn := newSeedProgress(plan.events, stderr)
	lastLog := start
	for messages := range batches {
		outcomes, err := a.store.Ingest(ctx, messages)
		if err != nil {
			cancel()
			for range batches { // let the producer end
			}
			result.took = time.Since(start)
			return result, fmt.Errorf("seed: %w", err)
		}
		for _, o := range outcomes {
			if o.Status == resolver.StatusDuplicate {
				result.duplicates++
			} else {
				result.stored++
			}
		}
		result.messages += int64(len(messages))
		_ = progress.Add(len(messages))
		if !drawn && time.Since(lastLog) >= 10*time.Second {
			lastLog = time.Now()
			a.log.Info("seeding", "messages", result.messages, "of", plan.events,
				"events_per_second", int(float64(result.messages)/time.Since(start).Seconds()))
		}
	}
	_ = progress.Finish()
	result.took = time.Since(start)
	if err := <-produced; err != nil {
		return result, err
	}
	return result, nil
}

// newSeedProgress draws a bar on a terminal, and says whether it does;
// elsewhere seeding logs a line every ten seconds instead.
func newSeedProgress(events int64, stderr io.Writer) (*progressbar.ProgressBar, bool) {
	file, isFile := stderr.(*os.File)
	if !isFile || !term.IsTerminal(int(file.Fd())) {
		return progressbar.DefaultSilent(events, "seeding"), false
	}
	return progressbar.Default(events, "seeding"), true
}
