package main

import (
	"context"
	"io"
	"log/slog"
	"runtime/debug"
	"testing"
)

func TestGCPercentGrowsTheHeapBy64MBOrDoubles(t *testing.T) {
	const mib = 1 << 20
	cases := []struct {
		live uint64
		want int
	}{
		{0, 400},
		{1 * mib, 400},
		{16 * mib, 400},
		{20 * mib, 300}, // 320 rounded down to a step of 50
		{30 * mib, 200}, // 213
		{50 * mib, 100}, // 128
		{64 * mib, 100},
		{2048 * mib, 100},
	}
	for _, c := range cases {
		if got := gcPercentFor(c.live); got != c.want {
			t.Errorf("gcPercentFor(%d MiB) = %d, want %d", c.live/mib, got, c.want)
		}
	}
}

// currentGCPercent reads the collector's percent without changing it.
func currentGCPercent() int {
	percent := debug.SetGCPercent(100)
	debug.SetGCPercent(percent)
	return percent
}

func TestTuneGCSetsThePercentUnlessGOGCIsSet(t *testing.T) {
	before := currentGCPercent()
	t.Cleanup(func() { debug.SetGCPercent(before) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	debug.SetGCPercent(123)
	tuneGC(ctx, func(name string) string {
		if name == "GOGC" {
			return "123"
		}
		return ""
	}, log)
	if got := currentGCPercent(); got != 123 {
		t.Fatalf("with GOGC set the percent became %d, want the operator's 123", got)
	}

	tuneGC(ctx, func(string) string { return "" }, log)
	if got := currentGCPercent(); got < 100 || got%gcPercentStep != 0 || got == 123 {
		t.Fatalf("without GOGC the percent is %d, want one tuneGC chose (a step "+
			"of %d, at least 100)", got, gcPercentStep)
	}
}
