package web_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/audiences"
	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
	"github.com/knit-cdp/knit/web"
)

// mustSite serves the API and console over db with token as the API token.
func mustSite(t *testing.T, db *sqldb.DB, token string) *httptest.Server {
	t.Helper()
	auth, _, err := web.EnsureToken(t.Context(), db, token, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	runner := audiences.NewRunner(db, audiences.WithBuiltins(nil), time.Now, nil)
	gin.SetMode(gin.TestMode)
	router := gin.New()
	site := web.NewServer(runner, resolver.NewProfiles(db), auth, "", nil)
	site.SetAdmin(resolver.NewStore(db, resolver.DefaultRules(), time.Now, nil))
	site.Register(router)
	server := httptest.NewServer(router)
	t.Cleanup(server.Close)
	return server
}

func mustSignInCookie(t *testing.T, server *httptest.Server, token string) *http.Cookie {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	resp, err := client.PostForm(server.URL+"/login", url.Values{"token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "knit_session" && c.Value != "" {
			if c.MaxAge <= 0 || !c.HttpOnly {
				t.Errorf("session cookie %+v: want MaxAge > 0 and HttpOnly", c)
			}
			return c
		}
	}
	t.Fatalf("sign-in answered %d without a session cookie", resp.StatusCode)
	return nil
}

func statusWithCookie(t *testing.T, server *httptest.Server, path string, c *http.Cookie) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, server.URL+path, nil)
	req.AddCookie(c)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestChangingTheTokenEndsConsoleSessions(t *testing.T) {
	db := sqltest.MustOpen(t)
	before := mustSite(t, db, "token-a")
	cookie := mustSignInCookie(t, before, "token-a")
	if got := statusWithCookie(t, before, "/audiences", cookie); got != http.StatusOK {
		t.Fatalf("GET /audiences with a fresh session: %d", got)
	}

	after := mustSite(t, db, "token-b")
	if got := statusWithCookie(t, after, "/audiences", cookie); got != http.StatusUnauthorized {
		t.Errorf("GET /audiences with a session of the old token: %d, want 401", got)
	}
}

func TestGeneratedTokenIsPrintedOnceAndKeptHashed(t *testing.T) {
	db := sqltest.MustOpen(t)
	auth, generated, err := web.EnsureToken(t.Context(), db, "", time.Now)
	if err != nil || !strings.HasPrefix(generated, "knit_") ||
		!auth.ValidToken(t.Context(), generated) {
		t.Fatalf("first start: token %q, err %v", generated, err)
	}

	again, second, err := web.EnsureToken(t.Context(), db, "", time.Now)
	if err != nil || second != "" || !again.ValidToken(t.Context(), generated) {
		t.Errorf("second start: generated %q (want none), err %v, first token valid %v",
			second, err, again.ValidToken(t.Context(), generated))
	}
	var stored string
	if err := db.Get(&stored, `SELECT value FROM settings`); err != nil ||
		strings.Contains(stored, generated) {
		t.Errorf("settings hold %q (err %v); the token itself must not be stored", stored, err)
	}
}

func TestTokenResetTakesEffectOnARunningServer(t *testing.T) {
	db := sqltest.MustOpen(t)
	_, first, err := web.EnsureToken(t.Context(), db, "", time.Now)
	if err != nil || first == "" {
		t.Fatalf("first token %q, err %v", first, err)
	}
	server := mustSite(t, db, "")

	fresh, err := web.ResetToken(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	for token, want := range map[string]int{fresh: http.StatusOK, first: 401} {
		req, _ := http.NewRequest(http.MethodGet, server.URL+"/audiences", nil)
		req.SetBasicAuth(token, "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("token %q after reset: %d, want %d", token, resp.StatusCode, want)
		}
	}
}

func TestConsoleSessionCannotChangeDataThroughTheAPI(t *testing.T) {
	db := sqltest.MustOpen(t)
	server := mustSite(t, db, "token-a")
	cookie := mustSignInCookie(t, server, "token-a")

	req, _ := http.NewRequest(http.MethodPost, server.URL+"/audiences/cart_abandonment/runs", nil)
	req.AddCookie(cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST with only a session cookie: %d, want 401", resp.StatusCode)
	}
}

func TestTheSessionCookieIsSecureBehindTLS(t *testing.T) {
	server := mustSite(t, sqltest.MustOpen(t), "tls-token")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	for _, behindTLS := range []bool{false, true} {
		req, err := http.NewRequest(http.MethodPost, server.URL+"/login",
			strings.NewReader(url.Values{"token": {"tls-token"}}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if behindTLS {
			req.Header.Set("X-Forwarded-Proto", "https")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var session *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == "knit_session" {
				session = c
			}
		}
		if session == nil || session.Secure != behindTLS || !session.HttpOnly ||
			session.SameSite != http.SameSiteLaxMode {
			t.Errorf("behind TLS %v: cookie %+v, want Secure only then, always HttpOnly "+
				"and SameSite=Lax", behindTLS, session)
		}
	}
}

// TestSignInIsThrottledPerAddress guesses wrong until refused: 429 with
// Retry-After, the right token refused too while the wait lasts; the
// allowance comes back with time.
func TestSignInIsThrottledPerAddress(t *testing.T) {
	server, clock := mustThrottleSite(t)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	post := func(token string) *http.Response {
		resp, err := client.PostForm(server.URL+"/login", url.Values{"token": {token}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	for i := range 20 {
		if resp := post("guess"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d: status %d, want 401", i+1, resp.StatusCode)
		}
	}
	refused := post("guess")
	if refused.StatusCode != http.StatusTooManyRequests ||
		refused.Header.Get("Retry-After") == "" {
		t.Fatalf("21st guess: status %d Retry-After %q, want 429 with a wait",
			refused.StatusCode, refused.Header.Get("Retry-After"))
	}
	if resp := post(throttleToken); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("the right token while throttled: status %d, want 429", resp.StatusCode)
	}

	clock.Add(time.Minute)
	if resp := post(throttleToken); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the right token after a minute: status %d, want 303", resp.StatusCode)
	}
}

const throttleToken = "throttle-token"

// testClock is a clock a test moves by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// mustThrottleSite is mustSite on a clock the test moves.
func mustThrottleSite(t *testing.T) (*httptest.Server, *testClock) {
	t.Helper()
	db := sqltest.MustOpen(t)
	clock := &testClock{now: time.Now()}
	auth, _, err := web.EnsureToken(t.Context(), db, throttleToken, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	runner := audiences.NewRunner(db, audiences.WithBuiltins(nil), time.Now, nil)
	gin.SetMode(gin.TestMode)
	router := gin.New()
	site := web.NewServer(runner, resolver.NewProfiles(db), auth, "", nil)
	site.SetClock(clock.Now)
	site.Register(router)
	server := httptest.NewServer(router)
	t.Cleanup(server.Close)
	return server, clock
}
