package main

import (
	"context"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/knit-cdp/knit/audiences"
	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/webhook"
)

// metrics are what /metrics exposes in Prometheus's format. Each process
// keeps its own registry; nothing is global.
type metrics struct {
	registry  *prometheus.Registry
	messages  *prometheus.CounterVec
	batches   prometheus.Histogram
	requests  *prometheus.CounterVec
	latencies *prometheus.HistogramVec
	inFlight  prometheus.Gauge
	groups    groupMetrics
}

// groupMetrics describe the shared ingestion transactions.
type groupMetrics struct {
	requests, messages prometheus.Histogram
	retried, readAhead prometheus.Counter
	phases             *prometheus.HistogramVec
}

func newGroupMetrics() groupMetrics {
	return groupMetrics{
		requests: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "knit_group_commit_requests",
			Help:    "Ingestion requests answered by one shared transaction.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		messages: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "knit_group_commit_messages",
			Help:    "Messages written by one shared transaction.",
			Buckets: []float64{1, 10, 50, 100, 250, 500, 1000, 2500, 5000},
		}),
		retried: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "knit_group_commit_retried_total",
			Help: "Shared transactions that failed and were retried request by request.",
		}),
		readAhead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "knit_group_commit_read_ahead_total",
			Help: "Shared transactions that took what was read for them while the " +
				"one before committed.",
		}),
		phases: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "knit_group_commit_phase_seconds",
			Help: "Time a committed shared transaction spent in each phase: " +
				"wait (write lock and begin), read_ahead, resolve, write, commit, " +
				"sync (after the commit, until the log is on disk and the callers answered).",
			Buckets: prometheus.ExponentialBuckets(0.00025, 2, 14), // 0.25 ms to 2 s
		}, []string{"phase"}),
	}
}

// observeGroup records one shared transaction.
func (m *metrics) observeGroup(stats resolver.GroupStats) {
	m.groups.requests.Observe(float64(stats.Requests))
	m.groups.messages.Observe(float64(stats.Messages))
	if stats.Retried {
		m.groups.retried.Inc()
	}
	if stats.ReadAhead {
		m.groups.readAhead.Inc()
	}
	if stats.Phases == (resolver.IngestPhases{}) {
		return // failed: its phases say nothing of a commit
	}
	phases := m.groups.phases
	phases.WithLabelValues("wait").Observe(stats.Phases.Wait.Seconds())
	phases.WithLabelValues("read_ahead").Observe(stats.Phases.ReadAhead.Seconds())
	phases.WithLabelValues("resolve").Observe(stats.Phases.Resolve.Seconds())
	phases.WithLabelValues("write").Observe(stats.Phases.Write.Seconds())
	phases.WithLabelValues("commit").Observe(stats.Phases.Commit.Seconds())
	phases.WithLabelValues("sync").Observe(stats.Phases.Sync.Seconds())
}

func newMetrics(runner *audiences.Runner) *metrics {
	m := &metrics{registry: prometheus.NewRegistry()}
	m.messages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "knit_messages_total",
		Help: "Messages by outcome: stored, duplicate, rejected, failed.",
	}, []string{"outcome"})
	m.batches = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "knit_ingest_batch_messages",
		Help:    "Messages written by one ingest transaction.",
		Buckets: []float64{1, 5, 10, 25, 50, 100, 250, 500, 1000},
	})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "knit_http_requests_total",
		Help: "HTTP requests by route and status.",
	}, []string{"route", "status"})
	m.latencies = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "knit_http_request_seconds",
		Help:    "How long HTTP requests took, by route.",
		Buckets: prometheus.DefBuckets,
	}, []string{"route"})
	m.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "knit_http_requests_in_flight",
		Help: "HTTP requests being served now, this scrape included.",
	})
	m.groups = newGroupMetrics()
	m.registry.MustRegister(m.messages, m.batches, m.requests, m.latencies, m.inFlight,
		m.groups.requests, m.groups.messages, m.groups.retried, m.groups.readAhead,
		m.groups.phases,
		newAudienceCollector(runner),
		// process_resident_memory_bytes (on Linux), which `knit bench`
		// samples for the server's peak memory, and the Go runtime's own.
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector())
	return m
}

// handler serves the registry.
func (m *metrics) handler() gin.HandlerFunc {
	return gin.WrapH(promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}))
}

// observeRequests counts every request and its time by route (the
// pattern, never the raw path, so ids make no new series).
func (m *metrics) observeRequests() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		m.inFlight.Inc()
		defer m.inFlight.Dec()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		m.requests.WithLabelValues(route, strconv.Itoa(c.Writer.Status())).Inc()
		m.latencies.WithLabelValues(route).Observe(time.Since(start).Seconds())
	}
}

// meteredIngester counts what the ingester it wraps did with each batch.
type meteredIngester struct {
	inner   webhook.Ingester
	metrics *metrics
}

func (i meteredIngester) Ingest(ctx context.Context,
	messages []*resolver.Message) ([]resolver.Outcome, error) {
	outcomes, err := i.inner.Ingest(ctx, messages)
	if err != nil {
		i.metrics.messages.WithLabelValues("failed").Add(float64(len(messages)))
		return outcomes, err
	}
	i.metrics.batches.Observe(float64(len(messages)))
	for _, o := range outcomes {
		i.metrics.messages.WithLabelValues(string(o.Status)).Inc()
	}
	return outcomes, nil
}

// meteredRejections counts the refusals the recorder it wraps records.
type meteredRejections struct {
	inner   webhook.RejectionRecorder
	metrics *metrics
}

func (r meteredRejections) RecordRejections(ctx context.Context,
	rejections []resolver.Rejection) error {
	r.metrics.messages.WithLabelValues("rejected").Add(float64(len(rejections)))
	return r.inner.RecordRejections(ctx, rejections)
}

// audienceCollector reads each audience's latest result and outbox
// backlog from the database when /metrics is scraped.
type audienceCollector struct {
	runner                *audiences.Runner
	size, runTime, outbox *prometheus.Desc
}

func newAudienceCollector(runner *audiences.Runner) audienceCollector {
	by := []string{"audience"}
	return audienceCollector{runner: runner,
		size: prometheus.NewDesc("knit_audience_members",
			"Members at the audience's latest successful run.", by, nil),
		runTime: prometheus.NewDesc("knit_audience_run_seconds",
			"How long the audience's latest successful run took.", by, nil),
		outbox: prometheus.NewDesc("knit_outbox_pending",
			"Audience changes waiting for delivery.", by, nil),
	}
}

func (a audienceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- a.size
	ch <- a.runTime
	ch <- a.outbox
}

func (a audienceCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, def := range a.runner.Definitions() {
		if run, err := a.runner.CurrentRun(ctx, def.Name); err == nil {
			ch <- prometheus.MustNewConstMetric(a.size, prometheus.GaugeValue,
				float64(run.Size), def.Name)
			ch <- prometheus.MustNewConstMetric(a.runTime, prometheus.GaugeValue,
				run.FinishedAt.Sub(run.StartedAt).Seconds(), def.Name)
		}
		if stats, err := a.runner.Outbox(ctx, def.Name); err == nil {
			ch <- prometheus.MustNewConstMetric(a.outbox, prometheus.GaugeValue,
				float64(stats.Pending), def.Name)
		}
	}
}
