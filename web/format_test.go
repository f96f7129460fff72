package web

import (
	"testing"
	"time"
)

func TestNumbersAndTimesAreWrittenForPeople(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000",
		1234567: "1,234,567", -45000: "-45,000"} {
		if got := groupDigits(n); got != want {
			t.Errorf("groupDigits(%d) = %q, want %q", n, got, want)
		}
	}

	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		10 * time.Second: "just now", 5 * time.Minute: "5 minutes ago",
		time.Hour: "1 hour ago", 30 * time.Hour: "30 hours ago",
		72 * time.Hour: "3 days ago", -20 * time.Minute: "in 20 minutes",
		100 * 24 * time.Hour: "3 months ago",
	} {
		if got := describeSpan(d); got != want {
			t.Errorf("describeSpan(%v) = %q, want %q", d, got, want)
		}
	}
	got := string(relativeTime(now.Add(-2*time.Hour), now))
	want := `<time datetime="2026-12-04T10:00:00Z" title="4 Dec 2026 10:00:00 UTC">` +
		`2 hours ago</time>`
	if got != want {
		t.Errorf("relativeTime = %s\nwant %s", got, want)
	}
}
