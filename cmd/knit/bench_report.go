package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/bits"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// latencyHist counts durations in buckets at most 1.6 % wide (64 to a
// power of two), so the percentiles of any number of requests take a fixed
// 30 KB, and workers merge theirs at the end.
type latencyHist struct {
	counts [60 * 64]uint64
	n      uint64
	max    time.Duration
	sum    time.Duration
}

func histBucket(d time.Duration) int {
	v := uint64(max(d, 0))
	if v < 128 {
		return int(v)
	}
	e := bits.Len64(v) - 7 // keep the top seven bits
	return e*64 + int(v>>e)
}

// histUpper is the largest duration counted in bucket i.
func histUpper(i int) time.Duration {
	if i < 128 {
		return time.Duration(i)
	}
	e := i/64 - 1
	m := uint64(i%64 + 64)
	return time.Duration((m+1)<<e - 1)
}

func (h *latencyHist) add(d time.Duration) {
	h.counts[histBucket(d)]++
	h.n++
	h.sum += d
	h.max = max(h.max, d)
}

func (h *latencyHist) merge(o *latencyHist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the duration below which fraction q of the counted ones
// lie, never above the maximum; 0 when nothing was counted.
func (h *latencyHist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.999999)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(histUpper(i), h.max)
		}
	}
	return h.max
}

// benchLatency is the latency part of a report, in milliseconds.
type benchLatency struct {
	P50  float64 `json:"p50_ms"`
	P95  float64 `json:"p95_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

func millis(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}

func (h *latencyHist) report() benchLatency {
	l := benchLatency{P50: millis(h.quantile(0.50)), P95: millis(h.quantile(0.95)),
		P99: millis(h.quantile(0.99)), Max: millis(h.max)}
	if h.n > 0 {
		l.Mean = millis(h.sum / time.Duration(h.n))
	}
	return l
}

// benchMemory is what the report says of the server's memory.
type benchMemory struct {
	// Source is "proc" (/proc/PID/status of --server-pid), "metrics"
	// (process_resident_memory_bytes sampled each second) or "" (unknown,
	// Note says why).
	Source    string `json:"source"`
	PeakBytes int64  `json:"peak_bytes"`
	RSSBytes  int64  `json:"rss_bytes"` // at the end of the run
	Samples   int    `json:"samples,omitempty"`
	Note      string `json:"note,omitempty"`
}

// readProcMemory reads the peak (VmHWM) and current (VmRSS) resident size
// of process pid from /proc, which only Linux has.
func readProcMemory(pid int) (peak, rss int64, err error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, fmt.Errorf("read the memory of process %d: %w", pid, err)
	}
	scanner := bufio.NewScanner(bytes.NewReader(data))
	for scanner.Scan() {
		key, value, ok := strings.Cut(scanner.Text(), ":")
		if !ok || (key != "VmHWM" && key != "VmRSS") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("process %d: %s is %q: %w", pid, key, value, err)
		}
		if key == "VmHWM" {
			peak = kb * 1024
		} else {
			rss = kb * 1024
		}
	}
	if peak == 0 {
		return 0, 0, fmt.Errorf("process %d: no VmHWM in /proc/%d/status", pid, pid)
	}
	return peak, rss, nil
}

// metricsWatch samples a server's process_resident_memory_bytes from
// /metrics every second and keeps the largest.
type metricsWatch struct {
	client *http.Client
	url    string
	token  string

	mu   sync.Mutex
	mem  benchMemory
	done chan struct{}
	stop context.CancelFunc
}

func startMetricsWatch(ctx context.Context, client *http.Client, base,
	token string) *metricsWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &metricsWatch{client: client, url: strings.TrimSuffix(base, "/") + "/metrics",
		token: token, mem: benchMemory{Source: "metrics"}, done: make(chan struct{}),
		stop: cancel}
	go func() {
		defer close(w.done)
		ticker := time.NewTicker(time.Second)
		defer ticker.Stop()
		for {
			w.sample(ctx)
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
		}
	}()
	return w
}

// finish stops sampling, takes a last sample and returns what was seen.
func (w *metricsWatch) finish(ctx context.Context) benchMemory {
	w.stop()
	<-w.done
	w.sample(ctx)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mem.Samples == 0 {
		w.mem.Source = ""
	}
	return w.mem
}

func (w *metricsWatch) sample(ctx context.Context) {
	rss, err := w.scrape(ctx)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		if w.mem.Note == "" && ctx.Err() == nil {
			w.mem.Note = err.Error()
		}
		return
	}
	w.mem.Samples++
	w.mem.RSSBytes = rss
	w.mem.PeakBytes = max(w.mem.PeakBytes, rss)
}

func (w *metricsWatch) scrape(ctx context.Context) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.url, nil)
	if err != nil {
		return 0, fmt.Errorf("GET /metrics: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+w.token)
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: HTTP %d (is --api-token right?)", resp.StatusCode)
	}
	const name = "process_resident_memory_bytes "
	scanner := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	for scanner.Scan() {
		if value, ok := strings.CutPrefix(scanner.Text(), name); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			if err != nil {
				return 0, fmt.Errorf("/metrics: %s%q: %w", name, value, err)
			}
			return int64(f), nil
		}
	}
	if err := scanner.Err(); err != nil {
		return 0, fmt.Errorf("read /metrics: %w", err)
	}
	return 0, fmt.Errorf("/metrics has no process_resident_memory_bytes")
}

// benchGenerator is what the load generator itself cost.
type benchGenerator struct {
	CPUSeconds  float64 `json:"cpu_seconds"` // user + system, the whole run
	WallSeconds float64 `json:"wall_seconds"`
	Cores       float64 `json:"cores"` // CPU seconds a wall-clock second
}

// benchReport is what `knit bench run` prints, as text or as JSON.
type benchReport struct {
	Mode        string  `json:"mode"`
	URL         string  `json:"url"`
	RunID       string  `json:"run_id"`
	Batch       int     `json:"batch"`
	Concurrency int     `json:"concurrency"`
	TargetRate  float64 `json:"target_rate,omitempty"` // events/s, open loop
	Warmup      float64 `json:"warmup_seconds"`
	Window      float64 `json:"window_seconds"` // the measured window

	// In the measured window (requests completed within it):
	Requests          int64        `json:"requests"`
	EventsAccepted    int64        `json:"events_accepted"`
	EventsPerSecond   float64      `json:"events_per_second"`
	RequestsPerSecond float64      `json:"requests_per_second"`
	Latency           benchLatency `json:"latency"`

	// Over the whole run, warm-up included:
	EventsSent      int64            `json:"events_sent_total"`
	AcceptedTotal   int64            `json:"events_accepted_total"`
	RequestsTotal   int64            `json:"requests_total"`
	FailedRequests  int64            `json:"failed_requests"`
	RejectedEvents  int64            `json:"rejected_events"`
	ErrorsByStatus  map[string]int64 `json:"errors_by_status"`
	FirstError      string           `json:"first_error,omitempty"`
	ServerMemory    benchMemory      `json:"server_memory"`
	Generator       benchGenerator   `json:"generator"`
	Interrupted     bool             `json:"interrupted,omitempty"`
	MeasuredNothing bool             `json:"measured_nothing,omitempty"`
}

func (r *benchReport) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func (r *benchReport) writeText(w io.Writer) error {
	var b strings.Builder
	loop := "closed loop"
	if r.TargetRate > 0 {
		loop = fmt.Sprintf("open loop at %.0f events/s", r.TargetRate)
	}
	fmt.Fprintf(&b, "knit bench: %s mode against %s, messages a request: %d, "+
		"connections: %d, %s, run %s\n", r.Mode, r.URL, r.Batch, r.Concurrency, loop,
		r.RunID)
	interrupted := ""
	if r.Interrupted {
		interrupted = " (interrupted)"
	}
	fmt.Fprintf(&b, "measured %.1f s after a %.1f s warm-up%s\n", r.Window, r.Warmup,
		interrupted)
	row := func(name, format string, args ...any) {
		fmt.Fprintf(&b, "  %-22s "+format+"\n", append([]any{name}, args...)...)
	}
	row("accepted events/s", "%.1f  (%d events in the window)", r.EventsPerSecond,
		r.EventsAccepted)
	row("requests/s", "%.1f  (%d requests)", r.RequestsPerSecond, r.Requests)
	l := r.Latency
	row("latency ms", "p50 %.2f  p95 %.2f  p99 %.2f  max %.2f  (mean %.2f)",
		l.P50, l.P95, l.P99, l.Max, l.Mean)
	row("whole run", "%d events sent, %d accepted, %d requests", r.EventsSent,
		r.AcceptedTotal, r.RequestsTotal)
	row("errors", "%s", r.errorsText())
	row("server memory", "%s", r.ServerMemory.text())
	g := r.Generator
	row("generator CPU", "%.2f s over %.1f s: %.2f cores", g.CPUSeconds, g.WallSeconds,
		g.Cores)
	_, err := io.WriteString(w, b.String())
	return err
}

// problem is the error that makes `knit bench` exit 1 after its report:
// failed requests, rejected events or an empty measured window.
func (r *benchReport) problem() error {
	switch {
	case r.FailedRequests > 0 || r.RejectedEvents > 0:
		return fmt.Errorf("%d requests failed and %d events were rejected; first: %s",
			r.FailedRequests, r.RejectedEvents, r.FirstError)
	case r.MeasuredNothing:
		return fmt.Errorf("no request completed in the measured window: " +
			"give a longer --duration, more --events or a shorter --warmup")
	}
	return nil
}

func (r *benchReport) errorsText() string {
	if r.FailedRequests == 0 && r.RejectedEvents == 0 {
		return "none"
	}
	keys := make([]string, 0, len(r.ErrorsByStatus))
	for k := range r.ErrorsByStatus {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, r.ErrorsByStatus[k])
	}
	return fmt.Sprintf("%d failed requests, %d rejected events (%s); first: %s",
		r.FailedRequests, r.RejectedEvents, strings.Join(parts, ", "), r.FirstError)
}

func (m benchMemory) text() string {
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	switch m.Source {
	case "proc":
		return fmt.Sprintf("peak %.1f MiB (VmHWM), %.1f MiB at the end (VmRSS)",
			mib(m.PeakBytes), mib(m.RSSBytes))
	case "metrics":
		return fmt.Sprintf("peak %.1f MiB of %d samples of /metrics, %.1f MiB at the end",
			mib(m.PeakBytes), m.Samples, mib(m.RSSBytes))
	default:
		return "unknown: " + m.Note
	}
}
