package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

const benchProfilesSummary = `knit bench profiles [flags]: look people up through a running knit's
Profile API and report requests/s, latency percentiles and errors.

knit picks --ids identifiers of real people from --db (the server's
database, read only for this): profiles at random, and of each its user_id
and one anonymous_id. Each of --concurrency keep-alive connections then
asks, one request at a time, for a random one of them at a random endpoint
of --endpoints (traits, events, external_ids, merges, metadata, links), for
--duration after --warmup. Every answer but 200 is an error.

The server's peak memory comes from /proc/PID/status (VmHWM) with
--server-pid, else from /metrics sampled each second.`

// benchProfilesConfig is what `knit bench profiles` was told.
type benchProfilesConfig struct {
	url, apiToken, db, space string
	endpoints                []string
	ids, concurrency         int
	duration, warmup         time.Duration
	timeout                  time.Duration
	seed                     uint64
	serverPID                int
	jsonOut                  bool
}

// benchProfileID is one identifier the benchmark looks people up by.
type benchProfileID struct{ Type, Value string }

// benchProfilesReport is what `knit bench profiles` prints.
type benchProfilesReport struct {
	URL               string                  `json:"url"`
	Concurrency       int                     `json:"concurrency"`
	IDs               map[string]int          `json:"ids"` // by type
	Window            float64                 `json:"window_seconds"`
	Requests          int64                   `json:"requests"` // answered 200 in the window
	RequestsPerSecond float64                 `json:"requests_per_second"`
	Latency           benchLatency            `json:"latency"`
	ByEndpoint        map[string]benchLatency `json:"latency_by_endpoint"`
	RequestsTotal     int64                   `json:"requests_total"`
	Failed            int64                   `json:"failed_requests"`
	ErrorsByStatus    map[string]int64        `json:"errors_by_status"`
	FirstError        string                  `json:"first_error,omitempty"`
	ServerMemory      benchMemory             `json:"server_memory"`
}

func runBenchProfiles(ctx context.Context, args []string, getenv env, stdout,
	stderr io.Writer) error {
	c, err := parseBenchProfilesFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	ids, err := pickProfileIDs(ctx, c.db, c.ids, c.seed, getenv, stderr)
	if err != nil {
		return err
	}
	report, err := c.run(ctx, ids)
	if err != nil {
		return err
	}
	if c.jsonOut {
		err = writeIndentedJSON(stdout, report)
	} else {
		err = report.writeText(stdout)
	}
	if err == nil && report.Failed > 0 {
		err = fmt.Errorf("%d requests failed; first: %s", report.Failed, report.FirstError)
	}
	return err
}

// profileEndpoints are the Profile API's GET endpoints.
var profileEndpoints = []string{"traits", "events", "external_ids", "merges", "metadata",
	"links"}

func parseBenchProfilesFlags(args []string, getenv env,
	stderr io.Writer) (*benchProfilesConfig, error) {
	fs := newFlagSet("knit bench profiles", benchProfilesSummary, stderr)
	c := &benchProfilesConfig{}
	fs.StringVar(&c.url, "url", orDefault(getenv("KNIT_BENCH_URL"), "http://127.0.0.1:8080"),
		"base URL of the knit server (env KNIT_BENCH_URL)")
	fs.StringVar(&c.apiToken, "api-token", getenv("KNIT_API_TOKEN"),
		"the server's API token (env KNIT_API_TOKEN)")
	fs.StringVar(&c.db, "db", orDefault(getenv("KNIT_DB"), "knit.db"),
		"the server's database, to pick identifiers of real people from (env KNIT_DB)")
	fs.StringVar(&c.space, "space", orDefault(getenv("KNIT_SPACE_ID"), "bench"),
		"space id in the paths: the server's KNIT_SPACE_ID when it has one (env "+
			"KNIT_SPACE_ID)")
	endpoints := fs.String("endpoints", "traits,events,external_ids",
		"comma-separated endpoints to ask: "+strings.Join(profileEndpoints, ", "))
	fs.IntVar(&c.ids, "ids", 1000, "profiles to pick identifiers of")
	fs.IntVar(&c.concurrency, "concurrency", 4, "connections, each one request at a time")
	fs.DurationVar(&c.duration, "duration", 30*time.Second, "how long to measure, after "+
		"the warm-up")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "load sent before measuring starts")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "give up on one request after this")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of the random picks")
	fs.IntVar(&c.serverPID, "server-pid", 0, "process id of the server on this machine: "+
		"its peak memory\nis read from /proc/PID/status (VmHWM)")
	fs.BoolVar(&c.jsonOut, "json", false, "print the report as JSON")
	var positional []string
	if err := parseFlags(fs, args, &positional); err != nil {
		return nil, err
	}
	return c, c.check(positional, *endpoints)
}

func (c *benchProfilesConfig) check(positional []string, endpoints string) error {
	problem := func(format string, args ...any) error {
		return fmt.Errorf("%w: knit bench profiles: "+format, append([]any{errUsage},
			args...)...)
	}
	u, err := url.Parse(c.url)
	switch {
	case len(positional) > 0:
		return problem("no arguments, got %q", positional)
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return problem("--url %q is not an http:// or https:// address", c.url)
	case c.apiToken == "":
		return problem("give --api-token (or KNIT_API_TOKEN)")
	case c.ids < 1 || c.concurrency < 1 || c.duration <= 0 || c.warmup < 0 ||
		c.timeout <= 0 || c.space == "":
		return problem("--ids, --concurrency and --duration must be above 0, --warmup " +
			"not negative, --timeout above 0, --space not empty")
	}
	c.url = strings.TrimSuffix(c.url, "/")
	for _, e := range strings.Split(endpoints, ",") {
		e = strings.TrimSpace(e)
		known := false
		for _, k := range profileEndpoints {
			known = known || k == e
		}
		if !known {
			return problem("--endpoints: %q is not one of %s", e,
				strings.Join(profileEndpoints, ", "))
		}
		c.endpoints = append(c.endpoints, e)
	}
	return nil
}

// pickProfileIDs reads the user_id and one anonymous_id of up to n live
// profiles picked at random, by id, from the database at dsn.
func pickProfileIDs(ctx context.Context, dsn string, n int, seed uint64, getenv env,
	stderr io.Writer) ([]benchProfileID, error) {
	log, err := newLogger(getenv("KNIT_LOG_LEVEL"), stderr)
	if err != nil {
		return nil, err
	}
	db, err := openDB(ctx, dsn, log)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var bounds struct {
		Low  *int64 `db:"low"`
		High *int64 `db:"high"`
	}
	err = db.GetContext(ctx, &bounds, `SELECT MIN(id) AS low, MAX(id) AS high
		FROM profiles WHERE merged_into IS NULL`)
	if err != nil {
		return nil, fmt.Errorf("read profile ids: %w", err)
	}
	if bounds.Low == nil {
		return nil, fmt.Errorf("--db %s holds no profiles", redactDSN(dsn))
	}
	rng := rand.New(rand.NewPCG(seed, 0x1d5))
	// Every identifier of the profile, kept by type below: a condition on
	// type here leads SQLite to walk the primary key (type, value) instead
	// of the profile's index, reading every identifier of the type.
	query := db.Rebind(`SELECT type, value FROM identities WHERE profile_id = ?`)
	seen := map[int64]bool{}
	var ids []benchProfileID
	span := *bounds.High - *bounds.Low + 1
	for attempt := 0; len(seen) < n && attempt < 20*n; attempt++ {
		profile := *bounds.Low + rng.Int64N(span)
		if seen[profile] {
			continue
		}
		var found []benchProfileID
		if err := db.SelectContext(ctx, &found, query, profile); err != nil {
			return nil, fmt.Errorf("read identifiers of profile %d: %w", profile, err)
		}
		picked := pickOnePerType(rng, found)
		if len(picked) == 0 {
			continue // merged away, erased, a gap in the ids, or no such ids
		}
		seen[profile] = true
		ids = append(ids, picked...)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("--db %s: found no profile with a user_id or an "+
			"anonymous_id", redactDSN(dsn))
	}
	return ids, nil
}

// pickOnePerType keeps, of a profile's identifiers, its user_id and one of
// its anonymous_ids at random.
func pickOnePerType(rng *rand.Rand, found []benchProfileID) []benchProfileID {
	slices.SortFunc(found, func(a, b benchProfileID) int {
		return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.Value, b.Value))
	})
	var out []benchProfileID
	for _, kind := range []string{"user_id", "anonymous_id"} {
		var of []benchProfileID
		for _, id := range found {
			if id.Type == kind {
				of = append(of, id)
			}
		}
		if len(of) > 0 {
			out = append(out, of[rng.IntN(len(of))])
		}
	}
	return out
}

// profileStats is what one connection saw.
type profileStats struct {
	hist       latencyHist
	byEndpoint map[string]*latencyHist
	requests   int64 // completed in the window
	total      int64
	failed     int64
	byStatus   map[string]int64
	firstError string
}

// run looks the ids up until the window closes and sums what each
// connection saw.
func (c *benchProfilesConfig) run(ctx context.Context,
	ids []benchProfileID) (*benchProfilesReport, error) {
	if err := (&benchConfig{url: c.url}).checkServer(ctx); err != nil {
		return nil, err
	}
	if err := c.checkLookup(ctx, ids[0]); err != nil {
		return nil, err
	}
	watch := &benchConfig{url: c.url, apiToken: c.apiToken, serverPID: c.serverPID}
	memory, err := watch.watchMemory(ctx)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	warmupEnd := start.Add(c.warmup)
	end := warmupEnd.Add(c.duration)
	stats := make([]*profileStats, c.concurrency)
	var wg sync.WaitGroup
	for i := range stats {
		s := &profileStats{byEndpoint: map[string]*latencyHist{}, byStatus: map[string]int64{}}
		stats[i] = s
		rng := rand.New(rand.NewPCG(c.seed, uint64(i)+1))
		wg.Go(func() { c.worker(ctx, s, rng, ids, warmupEnd, end) })
	}
	wg.Wait()
	windowEnd := time.Now()
	if windowEnd.After(end) {
		windowEnd = end
	}
	window := windowEnd.Sub(warmupEnd)
	report := c.report(stats, ids, window)
	report.ServerMemory = memory(context.WithoutCancel(ctx))
	return report, nil
}

// worker is one keep-alive connection asking until end.
func (c *benchProfilesConfig) worker(ctx context.Context, s *profileStats, rng *rand.Rand,
	ids []benchProfileID, warmupEnd, end time.Time) {
	client := &http.Client{Timeout: c.timeout, Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1, DisableCompression: true}}
	defer client.CloseIdleConnections()
	buf := make([]byte, 32<<10)
	for ctx.Err() == nil && time.Now().Before(end) {
		id := ids[rng.IntN(len(ids))]
		endpoint := c.endpoints[rng.IntN(len(c.endpoints))]
		target := c.profileURL(id, endpoint)
		began := time.Now()
		status, body, err := c.lookup(ctx, client, target, buf)
		done := time.Now()
		if err != nil && ctx.Err() != nil {
			return // interrupted, not failed
		}
		s.total++
		answered := err == nil && status == http.StatusOK
		if answered && !done.Before(warmupEnd) && !done.After(end) {
			s.requests++
			s.hist.add(done.Sub(began))
			if s.byEndpoint[endpoint] == nil {
				s.byEndpoint[endpoint] = &latencyHist{}
			}
			s.byEndpoint[endpoint].add(done.Sub(began))
		}
		switch {
		case err != nil:
			s.fail("transport", "transport: "+err.Error())
		case status != http.StatusOK:
			s.fail(fmt.Sprint(status), fmt.Sprintf("HTTP %d from %s: %s", status, target,
				clip(body, 300)))
		}
	}
}

func (s *profileStats) fail(key, message string) {
	s.failed++
	s.byStatus[key]++
	if s.firstError == "" {
		s.firstError = message
	}
}

// checkLookup asks for one profile's traits before the run, so that a
// server that cannot answer (no web role, a wrong token or space) stops
// the bench with its answer instead of a run of failures.
func (c *benchProfilesConfig) checkLookup(ctx context.Context, id benchProfileID) error {
	client := &http.Client{Timeout: c.timeout}
	defer client.CloseIdleConnections()
	target := c.profileURL(id, "traits")
	status, body, err := c.lookup(ctx, client, target, make([]byte, 4<<10))
	switch {
	case err != nil:
		return fmt.Errorf("profile lookup %s: %w", target, err)
	case status != http.StatusOK:
		return fmt.Errorf("profile lookup %s: HTTP %d: %s (the server needs the web "+
			"role, --api-token its token, --space its space)", target, status, clip(body, 300))
	}
	return nil
}

// profileURL is the Profile API's address of endpoint for id.
func (c *benchProfilesConfig) profileURL(id benchProfileID, endpoint string) string {
	return c.url + "/v1/spaces/" + url.PathEscape(c.space) + "/collections/users/profiles/" +
		url.PathEscape(id.Type+":"+id.Value) + "/" + endpoint
}

// lookup GETs target and reads the whole answer; body is its start.
func (c *benchProfilesConfig) lookup(ctx context.Context, client *http.Client,
	target string, buf []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.apiToken)
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	n, err := io.ReadFull(resp.Body, buf)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		err = nil
	} else if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	return resp.StatusCode, buf[:n], err
}

func (c *benchProfilesConfig) report(stats []*profileStats, ids []benchProfileID,
	window time.Duration) *benchProfilesReport {
	r := &benchProfilesReport{URL: c.url, Concurrency: c.concurrency,
		IDs: map[string]int{}, ByEndpoint: map[string]benchLatency{},
		ErrorsByStatus: map[string]int64{}, Window: window.Seconds()}
	for _, id := range ids {
		r.IDs[id.Type]++
	}
	var all latencyHist
	byEndpoint := map[string]*latencyHist{}
	for _, s := range stats {
		all.merge(&s.hist)
		for e, h := range s.byEndpoint {
			if byEndpoint[e] == nil {
				byEndpoint[e] = &latencyHist{}
			}
			byEndpoint[e].merge(h)
		}
		r.Requests += s.requests
		r.RequestsTotal += s.total
		r.Failed += s.failed
		for k, v := range s.byStatus {
			r.ErrorsByStatus[k] += v
		}
		if r.FirstError == "" {
			r.FirstError = s.firstError
		}
	}
	r.Latency = all.report()
	for e, h := range byEndpoint {
		r.ByEndpoint[e] = h.report()
	}
	if r.Window > 0 {
		r.RequestsPerSecond = float64(r.Requests) / r.Window
	}
	return r
}

// errorsText names the failures by status, in order, and the first one.
func (r *benchProfilesReport) errorsText() string {
	if r.Failed == 0 {
		return "none"
	}
	statuses := slices.Sorted(maps.Keys(r.ErrorsByStatus))
	parts := make([]string, len(statuses))
	for i, status := range statuses {
		parts[i] = fmt.Sprintf("%s: %d", status, r.ErrorsByStatus[status])
	}
	return fmt.Sprintf("%d failed requests (%s); first: %s", r.Failed,
		strings.Join(parts, ", "), r.FirstError)
}

func (r *benchProfilesReport) writeText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "knit bench profiles: %s, connections: %d, ids: %d user_id, "+
		"%d anonymous_id\n", r.URL, r.Concurrency, r.IDs["user_id"], r.IDs["anonymous_id"])
	row := func(name, format string, args ...any) {
		fmt.Fprintf(&b, "  %-22s "+format+"\n", append([]any{name}, args...)...)
	}
	latency := func(l benchLatency) string {
		return fmt.Sprintf("p50 %.2f  p95 %.2f  p99 %.2f  max %.2f  (mean %.2f)",
			l.P50, l.P95, l.P99, l.Max, l.Mean)
	}
	row("requests/s", "%.1f  (%d answered 200 in %.1f s)", r.RequestsPerSecond,
		r.Requests, r.Window)
	row("latency ms", "%s", latency(r.Latency))
	for _, e := range profileEndpoints {
		if l, ok := r.ByEndpoint[e]; ok {
			row("  "+e, "%s", latency(l))
		}
	}
	row("whole run", "%d requests, %d failed (warm-up included)", r.RequestsTotal,
		r.Failed)
	row("errors", "%s", r.errorsText())
	row("server memory", "%s", r.ServerMemory.text())
	_, err := io.WriteString(w, b.String())
	return err
}
