package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/knit-cdp/knit/webhook"
)

// benchRun is one run of the load generator: its timeline and, with
// --events, the events still to send.
type benchRun struct {
	cfg       *benchConfig
	start     time.Time
	warmupEnd time.Time
	// end is when the measured window closes and the last request may
	// start; far away when only --events bounds the run.
	end       time.Time
	remaining atomic.Int64
}

func newBenchRun(cfg *benchConfig, start time.Time) *benchRun {
	r := &benchRun{cfg: cfg, start: start, warmupEnd: start.Add(cfg.warmup)}
	r.end = r.warmupEnd.Add(cfg.duration)
	if cfg.duration <= 0 {
		r.end = start.Add(100 * 365 * 24 * time.Hour)
	}
	r.remaining.Store(cfg.events)
	return r
}

// take reserves up to n events to send and returns how many; 0 when
// --events are all sent.
func (r *benchRun) take(n int) int {
	if r.cfg.events <= 0 {
		return n
	}
	left := r.remaining.Add(-int64(n))
	switch {
	case left >= 0:
		return n
	case left > -int64(n):
		return n + int(left)
	default:
		return 0
	}
}

// benchTicket is a request the open-loop schedule wants sent at due.
type benchTicket struct {
	due time.Time
	n   int
}

// dispatch hands out requests on the --rate schedule until the run ends.
// When every connection is busy it falls behind, and the requests keep
// their due times, so their latency counts the wait (no coordinated
// omission).
func (r *benchRun) dispatch(ctx context.Context, tickets chan<- benchTicket) {
	defer close(tickets)
	perRequest := float64(r.cfg.batch) / r.cfg.rate * float64(time.Second)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for k := 0; ; k++ {
		due := r.start.Add(time.Duration(float64(k) * perRequest))
		if !due.Before(r.end) {
			return
		}
		n := r.take(r.cfg.batch)
		if n == 0 {
			return
		}
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		select {
		case tickets <- benchTicket{due: due, n: n}:
		case <-ctx.Done():
			return
		}
	}
}

// benchStats is what one connection saw.
type benchStats struct {
	hist     latencyHist // requests completed in the window
	requests int64       // completed in the window
	accepted int64       // events accepted by those

	sent, acceptedTotal, requestsTotal, failed, rejected int64
	byStatus                                             map[string]int64
	firstError                                           string
	firstErrorAt                                         time.Time
	lastDone                                             time.Time
}

// benchWorker is one connection: a keep-alive client of its own and its
// own stream of messages.
type benchWorker struct {
	run    *benchRun
	client *http.Client
	stream *benchStream
	target string
	body   []byte
	resp   bytes.Buffer
	stats  benchStats
}

func newBenchWorker(r *benchRun, index int) *benchWorker {
	cfg := r.cfg
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        1,
		MaxIdleConnsPerHost: 1,
		MaxConnsPerHost:     1,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	target := cfg.url + "/v1/batch"
	if cfg.mode == "webhook" {
		target = cfg.url + "/webhook"
	}
	span := time.Duration(cfg.days) * 24 * time.Hour
	return &benchWorker{run: r, target: target,
		client: &http.Client{Transport: transport, Timeout: cfg.timeout},
		stream: newBenchStream(cfg.seed, cfg.people, cfg.runID, index, r.start, span),
		stats:  benchStats{byStatus: map[string]int64{}}}
}

// closedLoop sends one request after another until the run ends.
func (w *benchWorker) closedLoop(ctx context.Context) {
	for ctx.Err() == nil && time.Now().Before(w.run.end) {
		n := w.run.take(w.run.cfg.batch)
		if n == 0 {
			return
		}
		w.send(ctx, n, time.Time{})
	}
}

// openLoop sends the requests the schedule hands it.
func (w *benchWorker) openLoop(ctx context.Context, tickets <-chan benchTicket) {
	for t := range tickets {
		w.send(ctx, t.n, t.due)
	}
}

// send posts n messages and records the outcome; latency runs from due,
// or from just before sending when due is zero. A request in flight is
// not cut short when ctx ends, so what the server stored is counted.
func (w *benchWorker) send(ctx context.Context, n int, due time.Time) {
	req, err := w.request(context.WithoutCancel(ctx), n)
	if err != nil {
		w.record(n, 0, err, time.Now(), time.Now())
		return
	}
	if due.IsZero() {
		due = time.Now()
	}
	resp, err := w.client.Do(req)
	status := 0
	if err == nil {
		w.resp.Reset()
		_, err = w.resp.ReadFrom(io.LimitReader(resp.Body, 1<<20))
		_ = resp.Body.Close()
		status = resp.StatusCode
	}
	w.record(n, status, err, due, time.Now())
}

func (w *benchWorker) request(ctx context.Context, n int) (*http.Request, error) {
	cfg := w.run.cfg
	var signed []byte
	if cfg.mode == "batch" {
		w.body = w.stream.appendBatch(w.body[:0], n)
	} else {
		w.body, signed = w.stream.appendWebhook(w.body[:0], n)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.target,
		bytes.NewReader(w.body))
	if err != nil {
		return nil, fmt.Errorf("make request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if cfg.mode == "batch" {
		req.SetBasicAuth(cfg.writeKey, "")
	} else if cfg.secret != "" {
		req.Header.Set("X-Signature", webhook.Signature(cfg.secret, signed))
	}
	return req, nil
}

// record counts a completed request: in the window when it completed
// between the warm-up's end and the run's end.
func (w *benchWorker) record(n, status int, err error, due, done time.Time) {
	s := &w.stats
	s.sent += int64(n)
	s.requestsTotal++
	s.lastDone = done
	inWindow := !done.Before(w.run.warmupEnd) && !done.After(w.run.end)
	if inWindow {
		s.requests++
		s.hist.add(done.Sub(due))
	}
	switch {
	case err != nil:
		s.failed++
		s.note("transport", 1, "transport: "+err.Error(), done)
	case status < 200 || status > 299:
		s.failed++
		s.note(strconv.Itoa(status), 1, fmt.Sprintf("HTTP %d: %s", status,
			clip(w.resp.Bytes(), 300)), done)
	default:
		rejected, first := countRejected(w.resp.Bytes())
		accepted := int64(n - rejected)
		s.acceptedTotal += accepted
		if inWindow {
			s.accepted += accepted
		}
		if rejected > 0 {
			s.rejected += int64(rejected)
			s.note("rejected", int64(rejected), fmt.Sprintf("HTTP %d rejected %d: %s", status, rejected,
				first), done)
		}
	}
}

// note counts n errors under key (a status, "transport" or "rejected") and
// keeps the first error's message.
func (s *benchStats) note(key string, n int64, message string, at time.Time) {
	s.byStatus[key] += n
	if s.firstError == "" {
		s.firstError, s.firstErrorAt = message, at
	}
}

// countRejected reads a 2xx answer's list of rejected messages.
func countRejected(body []byte) (int, string) {
	if !bytes.Contains(body, []byte(`"rejected"`)) {
		return 0, ""
	}
	var answer struct {
		Rejected []json.RawMessage `json:"rejected"`
	}
	if err := json.Unmarshal(body, &answer); err != nil || len(answer.Rejected) == 0 {
		return 0, ""
	}
	return len(answer.Rejected), clip(answer.Rejected[0], 300)
}

// clip returns b without surrounding white space, cut after n bytes.
func clip(b []byte, n int) string {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

func (s *benchStats) merge(o *benchStats) {
	s.hist.merge(&o.hist)
	s.requests += o.requests
	s.accepted += o.accepted
	s.sent += o.sent
	s.acceptedTotal += o.acceptedTotal
	s.requestsTotal += o.requestsTotal
	s.failed += o.failed
	s.rejected += o.rejected
	for k, v := range o.byStatus {
		s.byStatus[k] += v
	}
	if o.firstError != "" && (s.firstError == "" || o.firstErrorAt.Before(s.firstErrorAt)) {
		s.firstError, s.firstErrorAt = o.firstError, o.firstErrorAt
	}
	if o.lastDone.After(s.lastDone) {
		s.lastDone = o.lastDone
	}
}

// run drives the server and returns the report; it fails only when it
// cannot start (no server at --url, no --server-pid process).
func (c *benchConfig) run(ctx context.Context) (*benchReport, error) {
	if err := c.checkServer(ctx); err != nil {
		return nil, err
	}
	memory, err := c.watchMemory(ctx)
	if err != nil {
		return nil, err
	}
	cpuStart := processCPU()
	r := newBenchRun(c, time.Now())
	workers := make([]*benchWorker, c.concurrency)
	var tickets chan benchTicket
	if c.rate > 0 {
		tickets = make(chan benchTicket, c.concurrency)
		go r.dispatch(ctx, tickets)
	}
	var wg sync.WaitGroup
	for i := range workers {
		w := newBenchWorker(r, i)
		workers[i] = w
		wg.Go(func() {
			defer w.client.CloseIdleConnections()
			if tickets != nil {
				w.openLoop(ctx, tickets)
			} else {
				w.closedLoop(ctx)
			}
		})
	}
	wg.Wait()
	wall := time.Since(r.start)
	report := r.report(workers, ctx.Err() != nil)
	report.ServerMemory = memory(context.WithoutCancel(ctx))
	cpu := processCPU() - cpuStart
	report.Generator = benchGenerator{CPUSeconds: cpu.Seconds(), WallSeconds: wall.Seconds(),
		Cores: cpu.Seconds() / wall.Seconds()}
	return report, nil
}

// checkServer asks /healthz, so a wrong --url fails at once.
func (c *benchConfig) checkServer(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url+"/healthz", nil)
	if err != nil {
		return fmt.Errorf("--url %s: %w", c.url, err)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("no knit at --url %s: %w", c.url, err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("--url %s: /healthz answered HTTP %d", c.url, resp.StatusCode)
	}
	return nil
}

// watchMemory starts watching the server's memory and returns the
// function that ends the watch and says what it saw.
func (c *benchConfig) watchMemory(ctx context.Context) (func(context.Context) benchMemory,
	error) {
	switch {
	case c.serverPID > 0:
		if _, _, err := readProcMemory(c.serverPID); err != nil {
			return nil, fmt.Errorf("--server-pid: %w", err)
		}
		return func(context.Context) benchMemory {
			peak, rss, err := readProcMemory(c.serverPID)
			if err != nil {
				return benchMemory{Note: err.Error()}
			}
			return benchMemory{Source: "proc", PeakBytes: peak, RSSBytes: rss}
		}, nil
	case c.apiToken != "":
		w := startMetricsWatch(ctx, &http.Client{Timeout: 5 * time.Second}, c.url, c.apiToken)
		return w.finish, nil
	default:
		return func(context.Context) benchMemory {
			return benchMemory{Note: "give --server-pid (server on this machine) or " +
				"--api-token (to read /metrics)"}
		}, nil
	}
}

// report sums the connections' counts over the measured window: from the
// warm-up's end to the end of --duration, or to the last answer when the
// run stopped before (--events sent, or interrupted).
func (r *benchRun) report(workers []*benchWorker, interrupted bool) *benchReport {
	total := benchStats{byStatus: map[string]int64{}}
	for _, w := range workers {
		total.merge(&w.stats)
	}
	cfg := r.cfg
	rep := &benchReport{Mode: cfg.mode, URL: cfg.url, RunID: cfg.runID, Batch: cfg.batch,
		Concurrency: cfg.concurrency, TargetRate: cfg.rate, Warmup: cfg.warmup.Seconds(),
		Requests: total.requests, EventsAccepted: total.accepted,
		Latency: total.hist.report(), EventsSent: total.sent,
		AcceptedTotal: total.acceptedTotal, RequestsTotal: total.requestsTotal,
		FailedRequests: total.failed, RejectedEvents: total.rejected,
		ErrorsByStatus: total.byStatus, FirstError: total.firstError,
		Interrupted: interrupted}
	windowEnd := r.end
	allSent := cfg.events > 0 && r.remaining.Load() <= 0
	if (interrupted || allSent) && total.lastDone.Before(windowEnd) {
		windowEnd = total.lastDone
	}
	window := windowEnd.Sub(r.warmupEnd).Seconds()
	if window <= 0 || total.requests == 0 {
		rep.MeasuredNothing = true
		return rep
	}
	rep.Window = window
	rep.EventsPerSecond = float64(total.accepted) / window
	rep.RequestsPerSecond = float64(total.requests) / window
	return rep
}
