package main

import (
	"context"
	"log/slog"
	"runtime/debug"
	runtimemetrics "runtime/metrics"
	"time"
)

// gcHeadroomBytes is how far the heap may grow past what the last
// collection found live before the next one starts, when that is more than
// Go's default of doubling. While ingesting, knit's live heap is a few tens
// of megabytes of short-lived request data, and collecting each time it
// doubled took a sixth of the server's CPU. Letting it grow by 64 MB
// (GOGC 400 for such a heap) took PostgreSQL batches from 10,080 and
// 10,027 to 10,747 and 10,960 events/s over 30 s, for 30 MiB more memory
// (see docs/benchmarks.md).
const gcHeadroomBytes = 64 << 20

// maxGCPercent bounds the percent for a nearly empty heap.
const maxGCPercent = 400

// gcPercentStep rounds the percent, so a live heap that drifts a little
// does not change the setting at every check.
const gcPercentStep = 50

// gcCheckEvery is how often the live heap is read.
const gcCheckEvery = time.Second

// gcPercentFor is the GOGC percent that lets a heap with live bytes grow
// by gcHeadroomBytes or double, whichever is more, up to maxGCPercent. A
// large live heap (an audience of millions being computed) keeps Go's
// default of 100, so its peak memory stays what it was.
func gcPercentFor(live uint64) int {
	if live == 0 {
		return maxGCPercent
	}
	percent := int(min(gcHeadroomBytes*100/live, maxGCPercent))
	percent -= percent % gcPercentStep
	return max(percent, 100)
}

// tuneGC sets the collector's percent from the live heap now and every
// gcCheckEvery until ctx ends. It does nothing when the operator set GOGC:
// their choice stands.
func tuneGC(ctx context.Context, getenv env, log *slog.Logger) {
	if getenv("GOGC") != "" {
		return
	}
	sample := []runtimemetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	current := -1
	adjust := func() {
		runtimemetrics.Read(sample)
		if sample[0].Value.Kind() != runtimemetrics.KindUint64 {
			return
		}
		want := gcPercentFor(sample[0].Value.Uint64())
		if want != current {
			debug.SetGCPercent(want)
			log.Debug("gc percent set", "gc_percent", want,
				"live_heap_bytes", sample[0].Value.Uint64())
			current = want
		}
	}

	adjust()
	go func() {
		ticker := time.NewTicker(gcCheckEvery)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
				adjust()
			}
		}
	}()
}
