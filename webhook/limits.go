package webhook

import (
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/web/httpx"
)

// Limits bound what the ingestion edge takes from one source over time and
// from everyone at once. A zero field is no limit, so the zero Limits
// limits nothing.
type Limits struct {
	// Rate is how many messages a second one source (a write key, or
	// Segment's /webhook) may send over time, counted in messages, not
	// requests: a batch of 100 costs 100.
	Rate float64
	// Burst is how many messages a source may send at once, at least
	// MaxBatchMessages so that any valid batch can pass; 0 takes
	// max(Rate, MaxBatchMessages).
	Burst int
	// MaxInflight is how many ingestion requests are served at once.
	MaxInflight int
	// MaxInflightBytes bounds the request bodies held in memory at once:
	// each request counts its Content-Length, or the most it may hold
	// (MaxRequestBytes) when compressed or of unknown length.
	MaxInflightBytes int64
}

// DefaultLimits are the limits of `knit serve` unless configured: no rate
// limit, 256 requests and 64 MiB of request bodies at once.
func DefaultLimits() Limits {
	return Limits{MaxInflight: 256, MaxInflightBytes: 64 << 20}
}

// minInflightBytes is the least MaxInflightBytes that still admits the
// largest request.
const minInflightBytes = MaxRequestBytes + 1

// Validate reports every limit that cannot work, by its setting's name.
func (l Limits) Validate() error {
	var problems []string
	if l.Rate < 0 || math.IsNaN(l.Rate) || math.IsInf(l.Rate, 0) {
		problems = append(problems, "KNIT_RATE_LIMIT must be 0 (off) or a positive number")
	}
	if l.Burst != 0 && l.Burst < MaxBatchMessages {
		problems = append(problems, fmt.Sprintf("KNIT_RATE_BURST must be at least %d, "+
			"the largest batch, or a full batch could never pass", MaxBatchMessages))
	}
	if l.MaxInflight < 0 {
		problems = append(problems, "KNIT_MAX_INFLIGHT must be 0 (no cap) or more")
	}
	if l.MaxInflightBytes != 0 && l.MaxInflightBytes < minInflightBytes {
		problems = append(problems, fmt.Sprintf("KNIT_MAX_INFLIGHT_BYTES must be 0 "+
			"(no cap) or at least %d, or the largest request could never pass",
			minInflightBytes))
	}
	if len(problems) > 0 {
		return resolver.Errorf(resolver.EInvalid, "%s", strings.Join(problems, "; "))
	}
	return nil
}

// burst is the bucket size in force.
func (l Limits) burst() int {
	if l.Burst > 0 {
		return l.Burst
	}
	return max(int(math.Ceil(l.Rate)), MaxBatchMessages)
}

// limiter applies Limits: a token bucket per source and a gate on the
// requests and body bytes in flight. Buckets fill on the real clock, not
// on a replay's --clock: they measure load.
type limiter struct {
	limits Limits

	mu      sync.Mutex
	buckets map[string]*rate.Limiter // by source; sources are configured keys

	requests chan struct{} // one slot per request in flight; nil without a cap
	bytesMu  sync.Mutex
	bytes    int64 // body bytes of the requests in flight

	refusals *sampledLog
}

func newLimiter(limits Limits, log *slog.Logger) *limiter {
	l := &limiter{limits: limits, buckets: map[string]*rate.Limiter{},
		refusals: &sampledLog{log: log, every: 10 * time.Second}}
	if limits.MaxInflight > 0 {
		l.requests = make(chan struct{}, limits.MaxInflight)
	}
	return l
}

// allow takes n messages from source's bucket, or returns an error with
// code ERateLimited and the wait until the bucket holds n again.
func (l *limiter) allow(source string, n int) error {
	if l.limits.Rate <= 0 {
		return nil
	}
	burst := l.limits.burst()
	l.mu.Lock()
	bucket := l.buckets[source]
	if bucket == nil {
		bucket = rate.NewLimiter(rate.Limit(l.limits.Rate), burst)
		l.buckets[source] = bucket
	}
	l.mu.Unlock()

	now := time.Now()
	n = min(n, burst)
	reservation := bucket.ReserveN(now, n)
	wait := reservation.DelayFrom(now)
	if wait == 0 {
		return nil
	}
	reservation.CancelAt(now)
	return &resolver.Error{Code: resolver.ERateLimited, RetryAfter: wait,
		Message: fmt.Sprintf("source %s is over its rate of %g messages a second "+
			"(KNIT_RATE_LIMIT), %d at once: the %d message(s) of this request fit in %.0f s",
			source, l.limits.Rate, burst, n, math.Ceil(wait.Seconds()))}
}

// admit is middleware that serves a request only while fewer than
// MaxInflight requests and MaxInflightBytes of bodies are in flight, and
// answers 503 with Retry-After otherwise, at once: Segment and its
// libraries retry a 503 later, where waiting here would hold a connection
// and memory while knit is already full.
func (l *limiter) admit(c *gin.Context) {
	if l.requests != nil {
		select {
		case l.requests <- struct{}{}:
			defer func() { <-l.requests }()
		default:
			l.refuse(c, "requests", fmt.Sprintf("knit is serving %d ingestion requests "+
				"at once (KNIT_MAX_INFLIGHT); retry later", l.limits.MaxInflight))
			return
		}
	}
	if cost := bodyCost(c.Request); l.limits.MaxInflightBytes > 0 {
		if !l.takeBytes(cost) {
			l.refuse(c, "bytes", fmt.Sprintf("knit holds %d bytes of request bodies at "+
				"most at once (KNIT_MAX_INFLIGHT_BYTES); retry later",
				l.limits.MaxInflightBytes))
			return
		}
		defer l.takeBytes(-cost)
	}
	c.Next()
}

func (l *limiter) refuse(c *gin.Context, limit, message string) {
	l.refusals.note("ingestion limit reached", "limit", limit, "path", c.Request.URL.Path,
		"request_id", httpx.RequestIDOf(c))
	httpx.Error(c, nil, &resolver.Error{Code: resolver.EUnavailable, Message: message,
		RetryAfter: time.Second})
}

// takeBytes adds n to the bytes in flight unless that passes the cap;
// a negative n gives bytes back and always succeeds.
func (l *limiter) takeBytes(n int64) bool {
	l.bytesMu.Lock()
	defer l.bytesMu.Unlock()
	if n > 0 && l.bytes+n > l.limits.MaxInflightBytes {
		return false
	}
	l.bytes += n
	return true
}

// bodyCost is the most memory a request's body may take while it is read:
// its declared length when it is not compressed, up to what readBody keeps;
// the whole allowance otherwise.
func bodyCost(r *http.Request) int64 {
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	if r.ContentLength >= 0 && (enc == "" || enc == "identity") {
		return min(r.ContentLength, minInflightBytes)
	}
	return minInflightBytes
}

// sampledLog logs a warning at most once per interval, counting the ones
// it left out, so a flood of refusals is seen without a line for each.
type sampledLog struct {
	log     *slog.Logger
	every   time.Duration
	last    atomic.Int64 // unix nanoseconds of the last line
	skipped atomic.Int64
}

func (s *sampledLog) note(msg string, attrs ...any) {
	if s.log == nil {
		return
	}
	now := time.Now().UnixNano()
	last := s.last.Load()
	if now-last < int64(s.every) || !s.last.CompareAndSwap(last, now) {
		s.skipped.Add(1)
		return
	}
	s.log.Warn(msg, append(attrs, "refused_since_last_line", s.skipped.Swap(0))...)
}

// isRetryLater tells whether err asks the sender to try again later (a
// limit, a slow body, knit being unavailable or failing): such refusals
// are not recorded, as the message is not lost but on its way again.
func isRetryLater(err error) bool {
	switch resolver.ErrorCode(err) {
	case resolver.ERateLimited, resolver.EUnavailable, resolver.ETimeout:
		return true
	}
	return httpx.Status(err) >= http.StatusInternalServerError
}
