package web

import (
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Failed sign-ins a client may make at once, and how fast it earns more:
// enough for a person who mistypes, far too few to guess a password.
const (
	signInBurst     = 20
	signInRefill    = 3 * time.Second
	signInClientCap = 10000 // clients remembered before the quiet ones are forgotten
)

// signInThrottle counts failed sign-ins per client address. A client that
// used up its allowance is refused (429 with Retry-After) before its
// credentials are even checked, right ones included, until it has earned
// another try.
type signInThrottle struct {
	mu      sync.Mutex
	clients map[string]*rate.Limiter
	now     func() time.Time
}

func newSignInThrottle(now func() time.Time) *signInThrottle {
	return &signInThrottle{clients: map[string]*rate.Limiter{}, now: now}
}

// wait returns how long client must wait before it may try again; zero
// when it may try now.
func (t *signInThrottle) wait(client string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	limiter := t.clients[client]
	if limiter == nil {
		return 0
	}
	now := t.now()
	if limiter.TokensAt(now) >= 1 {
		return 0
	}
	reservation := limiter.ReserveN(now, 1)
	defer reservation.CancelAt(now)
	return reservation.DelayFrom(now)
}

// failed takes one try from client's allowance and reports whether that
// used it up.
func (t *signInThrottle) failed(client string) (exhausted bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	limiter := t.clients[client]
	if limiter == nil {
		t.forgetQuiet()
		limiter = rate.NewLimiter(rate.Every(signInRefill), signInBurst)
		t.clients[client] = limiter
	}
	limiter.AllowN(t.now(), 1)
	return limiter.TokensAt(t.now()) < 1
}

// forgetQuiet drops clients whose allowance is full again once too many
// are remembered, so a scan from many addresses cannot grow the map
// without bound.
func (t *signInThrottle) forgetQuiet() {
	if len(t.clients) < signInClientCap {
		return
	}
	now := t.now()
	for client, limiter := range t.clients {
		if limiter.TokensAt(now) >= signInBurst {
			delete(t.clients, client)
		}
	}
}

// clientAddress is the address the connection came from. Headers such as
// X-Forwarded-For are not trusted: anyone could vary them to escape the
// throttle.
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// retryAfterSeconds renders a wait as whole seconds, rounded up.
func retryAfterSeconds(wait time.Duration) string {
	return strconv.Itoa(int(math.Ceil(wait.Seconds())))
}
