package web_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"image/png"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/audiences"
	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
	"github.com/knit-cdp/knit/web"
	"github.com/knit-cdp/knit/web/httpx"
)

// The console's browser tests drive a real headless Chromium against a knit
// console that serves the seed journey (testdata/seed-journey) from a fresh
// SQLite database on 127.0.0.1. CI installs Chromium in .ci/run.

const (
	chromiumPath = "/usr/bin/chromium"
	browserToken = "test-token"
	// browserPassword is the admin password of the console under test.
	browserPassword = "correct horse battery staple"
	sessionCookie   = "knit_session"
	browserTimeout  = 5 * time.Minute // guards against a hung browser only
)

// seedEvaluatedAt is when the audiences are computed: Jane's cart holds
// ShoeC and the socks, and her ShoeD is due for a reorder.
func seedEvaluatedAt() time.Time { return time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) }

// mustConsoleServer serves the console over the seed journey and returns its
// base URL.
func mustConsoleServer(t *testing.T) string {
	t.Helper()
	ctx := t.Context()
	db := sqltest.MustOpen(t)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	clock := seedEvaluatedAt

	store := resolver.NewStore(db, resolver.DefaultRules(), clock, log)
	if _, err := store.Ingest(ctx, mustSeedMessages(t, clock())); err != nil {
		t.Fatalf("ingest seed journey: %v", err)
	}
	runner := audiences.NewRunner(db, audiences.WithBuiltins(nil), clock, log)
	for _, def := range runner.Definitions() {
		run, err := runner.Run(ctx, def.Name)
		if err != nil || run.Status != audiences.StatusOK {
			t.Fatalf("run audience %s: status %q, error %v", def.Name, run.Status, err)
		}
	}

	// Sessions run on the real clock, as they do in a server started with
	// --clock: session expiry is about people, not about the data's time.
	auth, _, err := web.EnsureToken(ctx, db, browserToken, time.Now)
	if err != nil {
		t.Fatalf("ensure token: %v", err)
	}
	auth.SetAdminPassword(browserPassword)
	site := web.NewServer(runner, resolver.NewProfiles(db), auth, "", log)
	site.SetAdmin(store)
	site.SetClock(clock)
	site.SetSettings(web.Settings{Rules: resolver.DefaultRules(), WebhookSecretSet: true,
		WriteKeys: 2, AdminPasswordSet: true, Database: "SQLite (test)"})

	gin.SetMode(gin.ReleaseMode)
	router := gin.New()
	router.UseRawPath = true
	router.UnescapePathValues = true
	router.Use(httpx.Recover(log))
	site.Register(router)

	server := httptest.NewServer(router) // listens on 127.0.0.1 only
	t.Cleanup(server.Close)
	return server.URL
}

// mustSeedMessages parses every line of the seed journey.
func mustSeedMessages(t *testing.T, receivedAt time.Time) []*resolver.Message {
	t.Helper()
	raw, err := os.ReadFile("../testdata/seed-journey/messages.ndjson")
	if err != nil {
		t.Fatalf("read seed journey: %v", err)
	}
	env := resolver.Envelope{Source: "test", ReceivedAt: receivedAt}
	var messages []*resolver.Message
	for i, line := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		m, err := resolver.ParseMessage(line, env)
		if err != nil {
			t.Fatalf("parse seed message on line %d: %v", i+1, err)
		}
		messages = append(messages, m)
	}
	if len(messages) != 69 {
		t.Fatalf("seed journey has %d messages, want 69", len(messages))
	}
	return messages
}

// mustBrowser starts a headless Chromium with a fresh profile and returns a
// tab's context. When the test ends it checks that the tab requested
// nothing but base.
func mustBrowser(t *testing.T, base string) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("chromium is required for the console's browser tests "+
			"(CI installs it in .ci/run; locally: apt-get install chromium): %v", err)
	}

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 800),
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "chromium-profile")),
	}
	parent, cancelTimeout := context.WithTimeout(context.Background(), browserTimeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(parent, opts...)

	var mu sync.Mutex
	var requested []string
	record := func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			mu.Lock()
			requested = append(requested, e.Request.URL)
			mu.Unlock()
		}
	}
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithListener(record))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		cancelTimeout()
		mu.Lock()
		defer mu.Unlock()
		for _, u := range requested {
			if !strings.HasPrefix(u, base+"/") && u != "about:blank" {
				t.Errorf("the browser requested %s, outside the test server %s", u, base)
			}
		}
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

func mustDo(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

func mustRun[T any](t *testing.T, ctx context.Context, action chromedp.Action[T]) T {
	t.Helper()
	value, err := chromedp.Run(ctx, action)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	return value
}

// mustLoad runs steps that make the tab load a page (following redirects)
// and returns the page's HTTP status and final URL.
func mustLoad(t *testing.T, ctx context.Context,
	steps ...chromedp.Action[chromedp.Void]) (int64, string) {
	t.Helper()
	resp, err := chromedp.RunResponse(ctx, steps...)
	if err != nil {
		t.Fatalf("browser: load page: %v", err)
	}
	return resp.Status, mustRun(t, ctx, chromedp.Location())
}

func mustVisit(t *testing.T, ctx context.Context, address string) (int64, string) {
	t.Helper()
	return mustLoad(t, ctx, chromedp.Navigate(address))
}

// mustSignIn types token into the sign-in form of the current page.
func mustSignIn(t *testing.T, ctx context.Context, token string) (int64, string) {
	t.Helper()
	mustDo(t, ctx, chromedp.SendKeys(chromedp.CSS("#token"), token))
	return mustLoad(t, ctx, chromedp.Click(chromedp.CSS(`form[action^="/login"] button`)))
}

// mustSearch types query into the header's search box and submits it.
func mustSearch(t *testing.T, ctx context.Context, query string) (int64, string) {
	t.Helper()
	mustDo(t, ctx, chromedp.Clear(chromedp.CSS("#q")),
		chromedp.SendKeys(chromedp.CSS("#q"), query))
	return mustLoad(t, ctx, chromedp.Click(chromedp.CSS("form.search button")))
}

func mustText(t *testing.T, ctx context.Context, selector string) string {
	t.Helper()
	return strings.TrimSpace(mustRun(t, ctx, chromedp.Text(chromedp.CSS(selector))))
}

// mustRows returns the text of each body cell of the tables matched by
// selector, a row at a time.
func mustRows(t *testing.T, ctx context.Context, selector string) [][]string {
	t.Helper()
	quoted, _ := json.Marshal(selector + " tbody tr")
	return mustRun(t, ctx, chromedp.Evaluate[[][]string](`Array.from(
		document.querySelectorAll(`+string(quoted)+`),
		row => Array.from(row.cells, cell => cell.innerText.trim()))`))
}

// mustSessionCookie returns the browser's console session cookie for base.
func mustSessionCookie(t *testing.T, ctx context.Context, base string) *network.Cookie {
	t.Helper()
	res, err := chromedp.Call(ctx, network.GetCookies,
		network.GetCookiesParams{URLs: []string{base + "/"}})
	if err != nil {
		t.Fatalf("browser: get cookies: %v", err)
	}
	for _, c := range res.Cookies {
		if c.Name == sessionCookie {
			return c
		}
	}
	return nil
}

// mustGet fetches base+path outside the browser, without following
// redirects, with the session cookie when one is given.
func mustGet(t *testing.T, base, path string, session *network.Cookie) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if session != nil {
		req.AddCookie(&http.Cookie{Name: session.Name, Value: session.Value})
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	if _, err := body.ReadFrom(resp.Body); err != nil {
		t.Fatalf("GET %s: read body: %v", path, err)
	}
	return resp, body.Bytes()
}

func TestConsoleSignIn(t *testing.T) {
	base := mustConsoleServer(t)
	ctx := mustBrowser(t, base)

	status, at := mustVisit(t, ctx, base+"/")
	if status != http.StatusOK || at != base+"/login?next=%2F" {
		t.Fatalf("visiting / signed out: status %d at %s, want the sign-in page", status, at)
	}
	if title := mustRun(t, ctx, chromedp.Title()); title != "Sign in · knit" {
		t.Errorf("title = %q, want %q", title, "Sign in · knit")
	}

	status, _ = mustSignIn(t, ctx, "not-the-token")
	if status != http.StatusUnauthorized {
		t.Errorf("wrong token: status %d, want 401", status)
	}
	if got := mustText(t, ctx, ".error"); got !=
		"That is neither the API token nor the admin password." {
		t.Errorf("wrong token: error %q", got)
	}
	if c := mustSessionCookie(t, ctx, base); c != nil {
		t.Errorf("wrong token started a session: %+v", c)
	}

	status, at = mustSignIn(t, ctx, browserToken)
	if status != http.StatusOK || at != base+"/" {
		t.Fatalf("right token: status %d at %s, want the audiences page", status, at)
	}
	if h1 := mustText(t, ctx, "main h1"); h1 != "Audiences" {
		t.Errorf("heading = %q, want Audiences", h1)
	}
	checkAudiencesTable(t, ctx)

	// Run now computes the audience again and comes back to the list.
	status, at = mustLoad(t, ctx, chromedp.Click(
		chromedp.CSS(`form[action="/run/cart_abandonment"] button`)))
	if status != http.StatusOK || at != base+"/" {
		t.Errorf("run now: status %d at %s, want the audiences page", status, at)
	}
}

func TestConsoleSearchFindsJane(t *testing.T) {
	base := mustConsoleServer(t)
	ctx := mustBrowser(t, base)
	mustVisit(t, ctx, base+"/login")
	mustSignIn(t, ctx, browserToken)

	profilePath := regexp.MustCompile(`^/people/[0-9]+$`)
	var janePath string
	for _, query := range []string{
		"janedoe@example.com", "  JaneDoe@Example.com ", "anon_456", "ios.id:ios_abc123",
	} {
		status, at := mustSearch(t, ctx, query)
		path := strings.TrimPrefix(at, base)
		if status != http.StatusOK || !profilePath.MatchString(path) {
			t.Fatalf("search %q: status %d at %s, want a profile page", query, status, at)
		}
		if janePath == "" {
			janePath = path
		} else if path != janePath {
			t.Errorf("search %q found %s, want Jane's %s", query, path, janePath)
		}
	}
	checkJanesProfile(t, ctx)

	status, at := mustSearch(t, ctx, "nobody@example.com")
	if status != http.StatusOK || at != base+"/people?q=nobody%40example.com" {
		t.Fatalf("unknown search: status %d at %s", status, at)
	}
	if text := mustText(t, ctx, "main"); !strings.Contains(text,
		"No profile holds that identifier") {
		t.Errorf("unknown search page says %q, want the no-profile message", text)
	}
	if got := mustRun(t, ctx, chromedp.Value(chromedp.CSS("#q"))); got != "nobody@example.com" {
		t.Errorf("search box after an unknown search holds %q", got)
	}
}

func TestConsoleCSVDownload(t *testing.T) {
	base := mustConsoleServer(t)
	ctx := mustBrowser(t, base)
	mustVisit(t, ctx, base+"/login")
	mustSignIn(t, ctx, browserToken)

	session := mustSessionCookie(t, ctx, base)
	if session == nil {
		t.Fatalf("no %s cookie after signing in", sessionCookie)
	}
	if !session.HTTPOnly || session.SameSite != network.CookieSameSiteLax {
		t.Errorf("session cookie: httpOnly %v, sameSite %q; want true, Lax",
			session.HTTPOnly, session.SameSite)
	}

	const csvPath = "/audiences/cart_abandonment.csv"
	resp, body := mustGet(t, base, csvPath, session)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s with the browser's session: %d %s", csvPath, resp.StatusCode, body)
	}
	wantDisposition := `attachment; filename="cart_abandonment-20261127-120000.csv"`
	if got := resp.Header.Get("Content-Disposition"); got != wantDisposition {
		t.Errorf("Content-Disposition = %q, want %q", got, wantDisposition)
	}
	checkCartCSV(t, body)

	downloaded := mustDownloadByClick(t, ctx, csvPath)
	if !bytes.Equal(downloaded, body) {
		t.Errorf("the browser's download differs from the API's:\n%s\nvs\n%s", downloaded, body)
	}

	resp, body = mustGet(t, base, csvPath, nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET %s without credentials: %d %s, want 401", csvPath, resp.StatusCode, body)
	}
}

// checkCartCSV checks the cart abandonment export holds Jane's cart.
func checkCartCSV(t *testing.T, body []byte) {
	t.Helper()
	records, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("parse CSV: %v\n%s", err, body)
	}
	wantHeader := []string{"profile_id", "email", "user_id", "abandoned_products", "added_at"}
	if len(records) != 2 || !slices.Equal(records[0], wantHeader) {
		t.Fatalf("CSV = %q, want header %q and one row", records, wantHeader)
	}
	row := records[1]
	if row[0] == "" || row[1] != "janedoe@example.com" || row[2] != "abc123def" ||
		row[3] != "shoe-c;sock-1" || row[4] == "" {
		t.Errorf("CSV row = %q, want Jane with shoe-c;sock-1", row)
	}
}

// mustDownloadByClick clicks the page's link to path and returns the file
// the browser saved.
func mustDownloadByClick(t *testing.T, ctx context.Context, path string) []byte {
	t.Helper()
	return mustDownload(t, ctx, chromedp.Click(chromedp.CSS(`a[href="`+path+`"]`)))
}

func TestConsoleSignOut(t *testing.T) {
	base := mustConsoleServer(t)
	ctx := mustBrowser(t, base)
	mustVisit(t, ctx, base+"/login")
	mustSignIn(t, ctx, browserToken)
	session := mustSessionCookie(t, ctx, base)
	if session == nil {
		t.Fatalf("no %s cookie after signing in", sessionCookie)
	}

	status, at := mustLoad(t, ctx, chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)))
	if status != http.StatusOK || at != base+"/login" {
		t.Fatalf("sign out: status %d at %s, want the sign-in page", status, at)
	}
	if c := mustSessionCookie(t, ctx, base); c != nil {
		t.Errorf("session cookie survived signing out: %+v", c)
	}
	if _, at := mustVisit(t, ctx, base+"/"); at != base+"/login?next=%2F" {
		t.Errorf("visiting / after signing out lands at %s, want the sign-in page", at)
	}
	if resp, _ := mustGet(t, base, "/", session); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the old session cookie still opens /: status %d", resp.StatusCode)
	}

	// A deep link survives the detour through the sign-in page.
	status, at = mustVisit(t, ctx, base+"/people?q=anon_456")
	if status != http.StatusOK || !strings.HasPrefix(at, base+"/login?next=") {
		t.Fatalf("deep link signed out: status %d at %s, want the sign-in page", status, at)
	}
	status, at = mustSignIn(t, ctx, browserToken)
	if path := strings.TrimPrefix(at, base); status != http.StatusOK ||
		!regexp.MustCompile(`^/people/[0-9]+$`).MatchString(path) {
		t.Errorf("signing in from a deep link: status %d at %s, want Jane's profile", status, at)
	}
}

func TestConsoleScreenshots(t *testing.T) {
	base := mustConsoleServer(t)
	ctx := mustBrowser(t, base)
	dir := t.ArtifactDir()
	t.Logf("screenshots in %s (keep them with go test -artifacts)", dir)

	mustVisit(t, ctx, base+"/login")
	mustSignIn(t, ctx, browserToken)
	mustScreenshot(t, ctx, filepath.Join(dir, "audiences.png"))

	mustSearch(t, ctx, "janedoe@example.com")
	mustScreenshot(t, ctx, filepath.Join(dir, "profile.png"))
}

// mustScreenshot saves a full-page PNG of the tab to file.
// mustScreenshot saves the whole page as a PNG; a relative file name is
// placed in the test's artifact folder (kept with go test -artifacts).
func mustScreenshot(t *testing.T, ctx context.Context, file string) {
	t.Helper()
	if !filepath.IsAbs(file) {
		file = filepath.Join(t.ArtifactDir(), file)
	}
	shot := mustRun(t, ctx, chromedp.FullScreenshot(100))
	config, err := png.DecodeConfig(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot %s is no PNG: %v", file, err)
	}
	if config.Width < 800 || config.Height < 300 {
		t.Errorf("screenshot %s is only %dx%d", file, config.Width, config.Height)
	}
	if err := os.WriteFile(file, shot, 0o644); err != nil {
		t.Fatalf("save screenshot: %v", err)
	}
}

func TestConsoleUnlinkAndDeleteWithConfirmation(t *testing.T) {
	base := mustConsoleServer(t)
	ctx := mustBrowser(t, base)
	mustVisit(t, ctx, base+"/login")
	mustSignIn(t, ctx, browserToken)
	_, janePage := mustSearch(t, ctx, "janedoe@example.com")

	// Unlink Jane's iPhone id: she stays one person through anon_123.
	status, at := mustLoad(t, ctx, chromedp.Click(
		chromedp.CSS(`a[href*="unlink?identifier=ios.id"]`)))
	if status != http.StatusOK || !strings.Contains(mustText(t, ctx, "main h1"), "ios.id:ios_abc123") {
		t.Fatalf("unlink confirmation: status %d at %s", status, at)
	}
	mustDo(t, ctx, chromedp.SendKeys(chromedp.CSS("#reason"), "shop demo phone"))
	status, at = mustLoad(t, ctx, chromedp.Click(chromedp.CSS(`main form button`)))
	if status != http.StatusOK || at == janePage || !regexp.MustCompile(`^/people/[0-9]+$`).
		MatchString(strings.TrimPrefix(at, base)) {
		t.Fatalf("after unlink: status %d at %s, want Jane's rebuilt profile", status, at)
	}
	history := mustText(t, ctx, "main section:nth-of-type(4)")
	if !strings.Contains(history, "after ios.id:ios_abc123 was unlinked (shop demo phone)") {
		t.Errorf("rebuilt profile's history:\n%s", history)
	}
	for _, row := range mustRows(t, ctx, "main section:nth-of-type(1)") {
		if row[0] == "ios.id" {
			t.Errorf("the unlinked id is still listed: %v", row)
		}
	}

	// A form posted without the page's CSRF token is refused.
	session := mustSessionCookie(t, ctx, base)
	req, _ := http.NewRequest(http.MethodPost, at+"/delete",
		strings.NewReader("identifier=email:janedoe@example.com"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: session.Name, Value: session.Value})
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("a forged delete: %v %v, want 403", resp, err)
	}

	// Delete her, confirming on the way.
	mustLoad(t, ctx, chromedp.Click(chromedp.CSS(`a[href$="/delete"]`)))
	status, at = mustLoad(t, ctx, chromedp.Click(chromedp.CSS(`main form button`)))
	if status != http.StatusOK || at != base+"/" {
		t.Fatalf("after delete: status %d at %s, want the audiences page", status, at)
	}
	mustSearch(t, ctx, "janedoe@example.com")
	if text := mustText(t, ctx, "main"); !strings.Contains(text, "No profile holds that identifier") {
		t.Errorf("Jane can still be found after her deletion: %q", text)
	}
}
