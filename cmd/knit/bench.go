package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
)

const benchSummary = `knit bench: load a running knit server, or seed a database, for
benchmarks (docs/benchmarks.md has the method and the figures).

Usage:
  knit bench [run] [flags]   drive a running knit over HTTP with SegKicks and
                             SegRuns traffic and report accepted events/s,
                             latency percentiles, errors and the server's memory
  knit bench seed [flags]    write a deterministic data set through the
                             ingestion path (see "knit bench seed --help")
  knit bench audiences [flags]  compute the audiences on a database, runs
                             timed, with this process's peak memory
  knit bench export [flags]  stream an audience's CSV from a running knit:
                             rows/s, MB/s, first byte, server memory
  knit bench profiles [flags]  Profile API lookups of real people on a
                             running knit: requests/s, latency, errors

"knit bench run" simulates --people customers (1 to 3 devices each: iPhone,
Android, web; anonymous browsing, sign-ins with email and userId, product
views, cart adds and removals, orders, SegRuns "Workout Completed" runs),
timestamped over the last --days days, or with --days 0 when sent, as live
traffic is. Each of --concurrency connections is one keep-alive HTTP client
sending one request at a time (closed loop), or, with --rate, requests
start on a fixed schedule (open loop) and latency is measured from when
each was due, so a slow server shows in p99.

In --mode batch requests go to /v1/batch with --write-key as the HTTP Basic
user (knit's KNIT_WRITE_KEYS); in --mode webhook to /webhook, one message a
request (an Actions-style array when --batch > 1), signed with X-Signature
when --webhook-secret is set. knit refuses bodies over 500 KB: a message
is 500 to 900 bytes.

Accepted events count the messages of 2xx answers, less those the answer
rejects, among requests that completed in the measured window (after
--warmup). The server's peak memory comes from /proc/PID/status (VmHWM) with
--server-pid, else from process_resident_memory_bytes on /metrics sampled
each second (needs --api-token). messageIds are bench-SEED-RUN-CONN-X, X
the message's number scrambled into hex (random like a library's UUIDs), so
runs with different --run-id never collide.`

// benchConfig is what `knit bench run` was told.
type benchConfig struct {
	url, writeKey, secret, apiToken string
	mode                            string
	batch, concurrency, people      int
	days                            int
	duration, warmup, timeout       time.Duration
	events                          int64
	rate                            float64
	seed                            uint64
	runID                           string
	serverPID                       int
	jsonOut                         bool
}

// runBench dispatches `knit bench` to its run, seed, audiences, export and
// profiles commands.
func runBench(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "seed":
			return runBenchSeed(ctx, args[1:], getenv, stdout, stderr)
		case "audiences":
			return runBenchAudiences(ctx, args[1:], getenv, stdout, stderr)
		case "export":
			return runBenchExport(ctx, args[1:], getenv, stdout, stderr)
		case "profiles":
			return runBenchProfiles(ctx, args[1:], getenv, stdout, stderr)
		case "run":
			args = args[1:]
		}
	}
	cfg, err := parseBenchFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	report, err := cfg.run(ctx)
	if err != nil {
		return err
	}
	if cfg.jsonOut {
		err = report.writeJSON(stdout)
	} else {
		err = report.writeText(stdout)
	}
	if err != nil {
		return err
	}
	return report.problem()
}

func parseBenchFlags(args []string, getenv env, stderr io.Writer) (*benchConfig, error) {
	fs := newFlagSet("knit bench", benchSummary, stderr)
	c := &benchConfig{}
	fs.StringVar(&c.url, "url", orDefault(getenv("KNIT_BENCH_URL"), "http://127.0.0.1:8080"),
		"base URL of the knit server (env KNIT_BENCH_URL)")
	fs.StringVar(&c.writeKey, "write-key", getenv("KNIT_BENCH_WRITE_KEY"),
		"write key for --mode batch, one of the server's KNIT_WRITE_KEYS\n"+
			"(env KNIT_BENCH_WRITE_KEY)")
	fs.StringVar(&c.secret, "webhook-secret", getenv("KNIT_WEBHOOK_SECRET"),
		"the server's shared secret; --mode webhook then signs each body\n"+
			"(env KNIT_WEBHOOK_SECRET)")
	fs.StringVar(&c.apiToken, "api-token", getenv("KNIT_API_TOKEN"),
		"API token, to sample the server's memory from /metrics (env KNIT_API_TOKEN)")
	fs.StringVar(&c.mode, "mode", "batch", "batch (tracking API /v1/batch) or webhook (/webhook)")
	fs.IntVar(&c.batch, "batch", 0, "messages a request (default 100 in batch mode, "+
		"1 in webhook mode; at most 2500)")
	fs.IntVar(&c.concurrency, "concurrency", 8, "connections, each one request at a time")
	fs.DurationVar(&c.duration, "duration", 60*time.Second, "how long to measure, after "+
		"the warm-up")
	fs.Int64Var(&c.events, "events", 0, "stop after sending this many events in all "+
		"(warm-up included)\ninstead of after --duration, unless --duration is given too")
	fs.DurationVar(&c.warmup, "warmup", 5*time.Second, "load sent before measuring starts")
	fs.Float64Var(&c.rate, "rate", 0, "events a second on a fixed schedule (open loop); "+
		"0 sends as fast as\nthe connections allow (closed loop)")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of the simulated population and its traffic")
	fs.IntVar(&c.people, "people", 100000, "size of the simulated population")
	fs.IntVar(&c.days, "days", 30, "message timestamps spread over this many days before "+
		"now;\n0 stamps each message as it is sent, less up to 5 s (live traffic)")
	fs.StringVar(&c.runID, "run-id", "", "part of every messageId (default: random, so "+
		"reruns add new events)")
	fs.IntVar(&c.serverPID, "server-pid", 0, "process id of the server on this machine: "+
		"its peak memory\nis read from /proc/PID/status (VmHWM)")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "give up on one request after this")
	fs.BoolVar(&c.jsonOut, "json", false, "print the report as JSON")
	var positional []string
	if err := parseFlags(fs, args, &positional); err != nil {
		return nil, err
	}
	if len(positional) > 0 {
		return nil, fmt.Errorf("%w: knit bench run takes no arguments, got %q", errUsage,
			positional)
	}
	durationGiven := false
	fs.Visit(func(f *flag.Flag) { durationGiven = durationGiven || f.Name == "duration" })
	if c.events > 0 && !durationGiven {
		c.duration = 0 // --events alone: no time limit
	}
	return c, c.check()
}

// check validates the flags and fills in defaults that depend on others.
func (c *benchConfig) check() error {
	problem := func(format string, args ...any) error {
		return fmt.Errorf("%w: knit bench: "+format, append([]any{errUsage}, args...)...)
	}
	switch c.mode {
	case "batch":
		if c.writeKey == "" {
			return problem("--mode batch needs --write-key (or KNIT_BENCH_WRITE_KEY): " +
				"the tracking API refuses requests without one")
		}
		c.batch = cmp.Or(c.batch, 100)
	case "webhook":
		c.batch = cmp.Or(c.batch, 1)
	default:
		return problem("--mode is %q; use batch or webhook", c.mode)
	}
	u, err := url.Parse(c.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return problem("--url %q is not an http:// or https:// address", c.url)
	}
	c.url = strings.TrimSuffix(c.url, "/")
	switch {
	case c.batch < 1 || c.batch > 2500:
		return problem("--batch is %d; knit takes 1 to 2500 messages a request", c.batch)
	case c.concurrency < 1:
		return problem("--concurrency must be at least 1")
	case c.people < 1 || c.days < 0:
		return problem("--people must be at least 1, --days at least 0")
	case c.duration <= 0 && c.events <= 0:
		return problem("give a --duration above 0 or --events")
	case c.rate < 0 || c.warmup < 0 || c.events < 0 || c.timeout <= 0:
		return problem("--rate, --warmup and --events cannot be negative, " +
			"--timeout must be above 0")
	}
	if c.runID == "" {
		random := make([]byte, 4)
		_, _ = rand.Read(random)
		c.runID = hex.EncodeToString(random)
	}
	if !checkRunID(c.runID) {
		return problem("--run-id %q: use up to 40 letters, digits, '.', '_' or '-'", c.runID)
	}
	return nil
}

// checkRunID allows what can stand in a messageId as it is: letters,
// digits, '.', '_' and '-', at most 40 of them.
func checkRunID(id string) bool {
	if id == "" || len(id) > 40 {
		return false
	}
	for _, r := range id {
		ok := r == '.' || r == '_' || r == '-' || ('0' <= r && r <= '9') ||
			('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z')
		if !ok {
			return false
		}
	}
	return true
}
