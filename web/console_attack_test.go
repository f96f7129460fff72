package web_test

// Attacks on the console: hostile data from Segment messages, forged forms,
// redirects, sessions, secrets, headers and odd input. Every server here
// listens on 127.0.0.1 and nothing is sent anywhere else; payloads name only
// relative URLs, so even one that got through would not reach another host.

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/gin-gonic/gin"
	"go.yaml.in/yaml/v3"

	"github.com/knit-cdp/knit/audiences"
	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
	"github.com/knit-cdp/knit/web"
	"github.com/knit-cdp/knit/web/httpx"
	"github.com/knit-cdp/knit/webhook"
)

// attackPayload tries every way out of the context it lands in: an
// element, an attribute, a script element, a template action, a JavaScript
// line break and a javascript: URL. If any part of it were parsed as markup,
// the page would hold an element with data-pwn or window.__xss would be set.
const attackPayload = `"'><img src=x data-pwn=1 onerror="window.__xss=1">` +
	`<b data-pwn=2>pwn</b></script><script>window.__xss=1</script>` +
	"<!--{{.}}-->\u2028\u2029javascript:window.__xss=1"

// Secrets the site under attack is configured with; none may ever appear
// on a console page.
const (
	attackToken         = "attack-api-token-7f3c1e"
	attackPassword      = "attack admin password 91b2"
	attackWebhookSecret = "attack-webhook-secret-c4d5"
	attackWriteKey      = "attackwritekey0a1b2c3d"
	attackDestSecret    = "dest-hmac-secret-5e6f"
	attackDestWriteKey  = "dest-write-key-7a8b"
	attackURLPassword   = "dest-url-password-9c0d"
	attackURLUser       = "dest-url-userkey-1e2f"
	attackURLQueryKey   = "dest-url-query-3a4b"
)

// attackAudiences are configured next to the built-ins: one whose member
// attribute is a hostile trait value, and one with destinations holding
// every kind of secret a destination can hold.
const attackAudiences = `
- name: hostile_plan
  description: People with a plan trait.
  include_anonymous: true
  condition:
    trait: {key: plan, exists: true}
    attributes:
      plan_value: value
- name: secret_destinations
  description: Delivers to tools with secrets.
  include_anonymous: true
  destinations:
    - url: https://user:` + attackURLPassword +
	`@hooks.example.invalid/a?key=` + attackURLQueryKey + `
      secret: ` + attackDestSecret + `
      write_key: ` + attackDestWriteKey + `
    - url: https://` + attackURLUser + `@hooks.example.invalid/b
      style: track
    - url: https://` + attackURLUser + `:@api.example.invalid/v1/batch
  condition:
    trait: {key: plan, exists: true}
`

// attackSite is a console and ingestion edge wired as knit serve wires
// them, over the seed journey and hostile messages.
type attackSite struct {
	URL    string
	db     *sqldb.DB
	store  *resolver.Store
	runner *audiences.Runner
	auth   *web.Auth
	// hostile is the profile whose every field carries attackPayload.
	hostile int64
}

// attackMessages are Segment messages that carry attackPayload in every
// field the console shows: identifiers, traits (keys and values), event
// names, page names, product names and ids, currencies, units, app names,
// device ids and types, and the user agent. They land between the seed's
// events, so the hostile person is in cart_abandonment and hostile_plan.
func attackMessages(t *testing.T, received time.Time) []*resolver.Message {
	t.Helper()
	p := attackPayload
	ctxt := map[string]any{
		"app":       map[string]any{"name": p},
		"device":    map[string]any{"id": "dev" + p, "type": p},
		"userAgent": p,
		"ip":        p,
		"library":   map[string]any{"name": p},
	}
	at := func(day, hour int) string {
		return time.Date(2026, 11, day, hour, 0, 0, 0, time.UTC).Format(time.RFC3339)
	}
	raw := []map[string]any{
		{"type": "identify", "messageId": "evil-1", "timestamp": at(20, 9),
			"userId": "evil-user" + p, "anonymousId": "evil-anon" + p, "context": ctxt,
			"traits": map[string]any{
				"email": "evil" + p + "@example.com", "name": p, "plan": p,
				"first_name": p, p: p, "list": []any{p, 1, true},
				"object": map[string]any{p: p},
			}},
		{"type": "track", "messageId": "evil-2", "timestamp": at(26, 9), "event": "Product Added",
			"userId": "evil-user" + p, "context": ctxt,
			"properties": map[string]any{"product_id": "prod" + p, "name": p,
				"price": 12.5, "currency": p}},
		{"type": "track", "messageId": "evil-3", "timestamp": at(26, 10), "event": p,
			"userId": "evil-user" + p, "context": ctxt,
			"properties": map[string]any{"distance": 3, "distance_unit": p,
				"duration_s": 60, "products": []any{map[string]any{"name": p}}}},
		{"type": "page", "messageId": "evil-4", "timestamp": at(26, 11), "name": p,
			"userId": "evil-user" + p, "context": ctxt},
		{"type": "screen", "messageId": "evil-5", "timestamp": at(26, 12), "name": p,
			"userId": "evil-user" + p, "context": ctxt},
		// Spreadsheet formulas, for the CSV exports.
		{"type": "identify", "messageId": "evil-7", "timestamp": at(26, 14),
			"userId": "=HYPERLINK(\"x\";\"y\")", "traits": map[string]any{
				"plan": "+SUM(1;2)", "email": "formula@example.com", "name": "@SUM(1)"}},
		// A second person holding the same text as another type makes the
		// search for it list candidates instead of jumping to one profile.
		{"type": "identify", "messageId": "evil-6", "timestamp": at(26, 13),
			"anonymousId": "evil-user" + p, "userId": "twin" + p,
			"traits": map[string]any{"name": p, "email": "twin" + p + "@example.com"}},
	}
	env := resolver.Envelope{Source: "src" + p, ReceivedAt: received}
	var out []*resolver.Message
	for i, m := range raw {
		line, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := resolver.ParseMessage(line, env)
		if err != nil {
			t.Fatalf("parse hostile message %d: %v", i, err)
		}
		out = append(out, msg)
	}
	return out
}

// mustAttackSite serves the console as knit serve does, on 127.0.0.1.
func mustAttackSite(t *testing.T) *attackSite {
	t.Helper()
	return mustAttackSiteWith(t, time.Now)
}

// mustAttackSiteWith is mustAttackSite with sessions on the clock now.
func mustAttackSiteWith(t *testing.T, now func() time.Time) *attackSite {
	t.Helper()
	ctx := t.Context()
	db := sqltest.MustOpen(t)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
	clock := seedEvaluatedAt

	var configured []audiences.Definition
	if err := yaml.Unmarshal([]byte(attackAudiences), &configured); err != nil {
		t.Fatalf("parse attack audiences: %v", err)
	}
	defs := audiences.WithBuiltins(configured)
	if err := audiences.Validate(defs); err != nil {
		t.Fatalf("attack audiences: %v", err)
	}

	store := resolver.NewStore(db, resolver.DefaultRules(), clock, log)
	messages := append(mustSeedMessages(t, clock()), attackMessages(t, clock())...)
	outcomes, err := store.Ingest(ctx, messages)
	if err != nil {
		t.Fatalf("ingest: %v", err)
	}
	site := &attackSite{db: db, store: store}
	for _, o := range outcomes {
		if o.MessageID == "evil-2" {
			site.hostile = o.ProfileID
		}
	}
	if site.hostile == 0 {
		t.Fatalf("the hostile messages made no profile: %+v", outcomes)
	}

	// Refusals with the payload in every field the ingestion page lists.
	long := strings.Repeat("x", 200) + attackPayload
	err = store.RecordRejections(ctx, []resolver.Rejection{
		{ReceivedMS: clock().Add(-time.Hour).UnixMilli(), Source: "src" + attackPayload,
			Endpoint: "/v1/" + attackPayload, Reason: "reason" + attackPayload,
			MessageID: "mid" + attackPayload, Excerpt: attackPayload},
		{ReceivedMS: clock().Add(-time.Hour).UnixMilli(), Source: "webhook",
			Endpoint: "/webhook", Reason: "long", Excerpt: long},
	})
	if err != nil {
		t.Fatalf("record rejections: %v", err)
	}

	site.runner = audiences.NewRunner(db, defs, clock, log)
	for _, def := range site.runner.Definitions() {
		run, err := site.runner.Run(ctx, def.Name)
		if err != nil || run.Status != audiences.StatusOK {
			t.Fatalf("run audience %s: status %q, error %v", def.Name, run.Status, err)
		}
	}

	site.auth, _, err = web.EnsureToken(ctx, db, attackToken, now)
	if err != nil {
		t.Fatalf("ensure token: %v", err)
	}
	site.auth.SetAdminPassword(attackPassword)
	server := web.NewServer(site.runner, resolver.NewProfiles(db), site.auth, "", log)
	server.SetAdmin(store)
	server.SetClock(clock)
	server.SetSettings(web.Settings{Rules: resolver.DefaultRules(), WebhookSecretSet: true,
		WriteKeys: 1, AdminPasswordSet: true, Database: "SQLite (attack)"})
	hooks := webhook.New(store, webhook.Config{Secret: attackWebhookSecret,
		WriteKeys: []string{attackWriteKey}, Now: clock, Rejections: store}, log)

	gin.SetMode(gin.ReleaseMode)
	router := gin.New()
	router.UseRawPath = true
	router.UnescapePathValues = true
	router.Use(httpx.Recover(log))
	hooks.Register(router)
	server.Register(router)

	ts := httptest.NewServer(router) // 127.0.0.1 only
	t.Cleanup(ts.Close)
	site.URL = ts.URL
	return site
}

// attackNoRedirects is a client that reports redirects instead of following them.
var attackNoRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
	return http.ErrUseLastResponse
}}

// do sends a request to the site and returns the response with its body read.
func (s *attackSite) do(t *testing.T, method, path string, form url.Values,
	cookie *http.Cookie, header http.Header) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.URL+path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	resp, err := attackNoRedirects.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, string(data)
}

// signIn posts secret to the sign-in form and returns the session cookie,
// nil when none was set.
func (s *attackSite) signIn(t *testing.T, secret string) *http.Cookie {
	t.Helper()
	resp, _ := s.do(t, http.MethodPost, "/login", url.Values{"token": {secret}}, nil, nil)
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie && c.Value != "" {
			return c
		}
	}
	return nil
}

// attackCSRFOf returns the CSRF token of the first form on a page.
func attackCSRFOf(t *testing.T, page string) string {
	t.Helper()
	m := regexp.MustCompile(`name="csrf" value="([0-9a-f]{64})"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the page:\n%.2000s", page)
	}
	return m[1]
}

// attackPages are the pages that show data from messages, for the
// hostile profile hostile.
func attackPages(hostile int64) []string {
	p := url.QueryEscape(attackPayload)
	return []string{
		"/",
		"/audience/cart_abandonment",
		"/audience/hostile_plan",
		"/audience/hostile_plan?q=" + url.QueryEscape("evil"),
		"/audience/hostile_plan?q=" + p,
		"/audience/secret_destinations",
		"/audience/" + url.PathEscape(attackPayload),
		fmt.Sprintf("/people/%d", hostile),
		"/people?q=" + url.QueryEscape("evil-user"+attackPayload),
		"/people?q=" + p,
		"/people/" + url.PathEscape(attackPayload),
		fmt.Sprintf("/people/%d/unlink?identifier=%s", hostile, p),
		fmt.Sprintf("/people/%d/delete", hostile),
		"/ingestion",
		"/settings",
		"/login?next=" + p,
	}
}

// TestAttackHostileDataIsEscapedOnEveryPage reads every page that shows
// message data and checks that no part of the payload arrives as markup.
func TestAttackHostileDataIsEscapedOnEveryPage(t *testing.T) {
	site := mustAttackSite(t)
	cookie := site.signIn(t, attackToken)
	for _, path := range attackPages(site.hostile) {
		c := cookie
		if strings.HasPrefix(path, "/login") {
			c = nil
		}
		resp, body := site.do(t, http.MethodGet, path, nil, c, nil)
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusSeeOther {
			t.Errorf("GET %s: %d, want a page", path, resp.StatusCode)
		}
		for _, raw := range []string{"<b data-pwn", "<img src=x", "<script>window",
			"onerror=\"window"} {
			if strings.Contains(body, raw) {
				i := strings.Index(body, raw)
				t.Errorf("GET %s: the page holds %q unescaped: ...%s...", path, raw,
					body[max(0, i-200):min(len(body), i+200)])
			}
		}
		t.Logf("GET %s: %d, %d bytes, payload shown escaped %d times", path,
			resp.StatusCode, len(body), strings.Count(body, "&lt;b data-pwn=2&gt;"))
	}
}

// attackWatch runs before any script of every page: it counts alerts,
// prompts and confirms, and every Content-Security-Policy violation.
const attackWatch = `
window.__alerts = 0; window.__csp = [];
window.alert = window.confirm = window.prompt = function () { window.__alerts++; };
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " " + e.blockedURI + " " + e.sample);
});`

// attackPageState is what attackWatch and the page's DOM say after a load.
type attackPageState struct {
	XSS      any      `json:"xss"`
	Alerts   int      `json:"alerts"`
	CSP      []string `json:"csp"`
	Injected []string `json:"injected"`
	Scripts  []string `json:"scripts"`
	Charts   []string `json:"charts"`
	Title    string   `json:"title"`
}

const attackPageProbe = `({
  xss: window.__xss === undefined ? null : window.__xss,
  alerts: window.__alerts,
  csp: window.__csp,
  injected: Array.from(document.querySelectorAll("[data-pwn], [onerror], [onload], " +
    "[onclick], iframe, object, embed, base, meta[http-equiv]"), e => e.outerHTML.slice(0, 200)),
  scripts: Array.from(document.scripts, s => (s.type || "js") + " " + (s.src ||
    ("inline:" + s.id))),
  charts: Array.from(document.querySelectorAll('script[type="application/json"]'), s => {
    try { const spec = JSON.parse(s.textContent); return s.id + " ok " +
      (Array.isArray(spec.series) ? spec.series.length : "no series"); }
    catch (e) { return s.id + " broken: " + e.message; } }),
  title: document.title,
})`

// TestAttackNoScriptRunsFromMessageData loads every page that shows
// message data in Chromium, once with the page's CSP and once with CSP
// bypassed, so the escaping itself is tested and not only the policy. No
// payload may run, no element may be injected, and each chart's JSON must
// parse.
func TestAttackNoScriptRunsFromMessageData(t *testing.T) {
	site := mustAttackSite(t)
	// A second run of every audience gives the size charts two points.
	for _, def := range site.runner.Definitions() {
		if _, err := site.runner.Run(t.Context(), def.Name); err != nil {
			t.Fatal(err)
		}
	}
	for _, bypassCSP := range []bool{false, true} {
		t.Run(fmt.Sprintf("bypassCSP=%v", bypassCSP), func(t *testing.T) {
			ctx := mustBrowser(t, site.URL)
			if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument,
				page.AddScriptToEvaluateOnNewDocumentParams{Source: attackWatch}); err != nil {
				t.Fatalf("browser: add watch script: %v", err)
			}
			if bypassCSP {
				if _, err := chromedp.Call(ctx, page.SetBypassCSP,
					page.SetBypassCSPParams{Enabled: true}); err != nil {
					t.Fatalf("browser: bypass CSP: %v", err)
				}
			}
			mustVisit(t, ctx, site.URL+"/login")
			if _, at := mustSignIn(t, ctx, attackToken); at != site.URL+"/" {
				t.Fatalf("signing in lands at %s", at)
			}
			for _, path := range attackPages(site.hostile) {
				status, _ := mustVisit(t, ctx, site.URL+path)
				// Open every excerpt and details element, as a reader would.
				mustRun(t, ctx, chromedp.Evaluate[any](`document.querySelectorAll("details")
					.forEach(d => d.open = true); 0`))
				state := mustRun(t, ctx, chromedp.Evaluate[attackPageState](attackPageProbe))
				if state.XSS != nil || state.Alerts != 0 || len(state.Injected) != 0 {
					t.Errorf("GET %s (%d): script ran or markup was injected: xss %v, "+
						"alerts %d, injected %q", path, status, state.XSS, state.Alerts,
						state.Injected)
				}
				if len(state.CSP) != 0 {
					t.Errorf("GET %s: CSP violations %q", path, state.CSP)
				}
				for _, s := range state.Scripts {
					if s != "js "+site.URL+"/static/vendor/uplot/uPlot.iife.min.js" &&
						s != "js "+site.URL+"/static/charts.js" &&
						!strings.HasPrefix(s, "application/json inline:") {
						t.Errorf("GET %s: unexpected script %q", path, s)
					}
				}
				for _, c := range state.Charts {
					if !strings.Contains(c, " ok ") {
						t.Errorf("GET %s: chart JSON %s", path, c)
					}
				}
				t.Logf("GET %s: %d %q charts %q", path, status, state.Title, state.Charts)
			}
		})
	}
}

// profileOf returns the profile that holds the identifier value.
func (s *attackSite) profileOf(t *testing.T, value string) int64 {
	t.Helper()
	found, err := resolver.NewProfiles(s.db).Search(t.Context(), value)
	if err != nil || len(found) != 1 {
		t.Fatalf("search %q: %v, %v", value, found, err)
	}
	return found[0]
}

// exists tells whether a profile still holds the identifier value.
func (s *attackSite) exists(t *testing.T, value string) bool {
	t.Helper()
	found, err := resolver.NewProfiles(s.db).Search(t.Context(), value)
	if err != nil {
		t.Fatalf("search %q: %v", value, err)
	}
	return len(found) > 0
}

// TestAttackConfirmationPagePostsOnlyToItsOwnAction: the unlink and delete
// confirmation pages build their form's action from the profile in the
// path, which may hold an encoded "/" and "..". A link that reads "unlink
// this spam identifier" can then carry the console's own CSRF token to any
// other form: here, deleting Jane for good. The page must refuse a profile
// that is not a number, or post to the action it names.
func TestAttackConfirmationPagePostsOnlyToItsOwnAction(t *testing.T) {
	site := mustAttackSite(t)
	jane := site.profileOf(t, "janedoe@example.com")
	cookie := site.signIn(t, attackToken)

	crafted := fmt.Sprintf("/people/%d%%2F..%%2F%d%%2Fdelete%%3F/unlink?identifier=%s",
		site.hostile, jane, url.QueryEscape("email:spam@example.com"))
	resp, body := site.do(t, http.MethodGet, crafted, nil, cookie, nil)
	action := regexp.MustCompile(`<form method="post" action="([^"]*)"`).FindStringSubmatch(body)
	if resp.StatusCode == http.StatusOK && action != nil &&
		!regexp.MustCompile(`^/people/[0-9]+/unlink$`).MatchString(action[1]) {
		t.Errorf("GET %s: 200 with a form posting to %q; want a 404, or a form that "+
			"posts to /people/<number>/unlink", crafted, action[1])
	}
	for _, path := range []string{
		fmt.Sprintf("/people/%d%%2F..%%2F..%%2Flogout%%3F/delete", jane),
		"/people/..%2F..%2Frun%2Fcart_abandonment%23/delete",
	} {
		resp, body := site.do(t, http.MethodGet, path, nil, cookie, nil)
		action := regexp.MustCompile(`<form method="post" action="([^"]*)"`).FindStringSubmatch(body)
		if resp.StatusCode == http.StatusOK && action != nil &&
			!regexp.MustCompile(`^/people/[1-9][0-9]*/(unlink|delete)$`).MatchString(action[1]) {
			t.Errorf("GET %s: 200 with a form posting to %q, want a 404", path, action[1])
		}
	}

	// In the browser: the admin follows the link and presses "Unlink and
	// rebuild", meaning to unlink a spam address.
	ctx := mustBrowser(t, site.URL)
	mustVisit(t, ctx, site.URL+"/login")
	mustSignIn(t, ctx, attackToken)
	if status, _ := mustVisit(t, ctx, site.URL+crafted); status == http.StatusNotFound {
		return // refused: there is no button to press
	}
	heading := mustText(t, ctx, "main h1")
	button := mustText(t, ctx, "main form button")
	status, at := mustLoad(t, ctx, chromedp.Click(chromedp.CSS("main form button")))
	t.Logf("the page read %q with a %q button; pressing it: %d at %s", heading, button,
		status, at)
	if !site.exists(t, "janedoe@example.com") {
		t.Errorf("pressing %q on the page %q deleted Jane (profile %d) for good",
			button, heading, jane)
	}
}

// attackSecrets are every secret the site knows, by what they are.
func attackSecrets() map[string]string {
	return map[string]string{
		"API token": attackToken, "admin password": attackPassword,
		"webhook secret": attackWebhookSecret, "write key": attackWriteKey,
		"destination secret": attackDestSecret, "destination write key": attackDestWriteKey,
		"password in a destination URL":  attackURLPassword,
		"user name in a destination URL": attackURLUser,
		"query key in a destination URL": attackURLQueryKey,
	}
}

// refuse sends requests the ingestion edge refuses, each carrying secrets
// in the ways senders really do: the write key in the body or as the
// HTTP Basic user name, the API token sent by mistake as a write key, and
// secrets inside refused messages.
func (s *attackSite) refuse(t *testing.T) {
	t.Helper()
	post := func(path, user, body string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL+path,
			strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if user != "" {
			req.SetBasicAuth(user, "")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("POST %s %s: %d, want a refusal", path, body, resp.StatusCode)
		}
	}
	// A valid write key, in the body and as the Basic user, with a message
	// that has no identifier.
	post("/v1/track", attackWriteKey, `{"writeKey":"`+attackWriteKey+
		`","event":"x","properties":{"note":"`+attackWebhookSecret+`"}}`)
	post("/v1/batch", "", `{"writeKey":"`+attackWriteKey+`","batch":[{"type":"track",`+
		`"event":"x","context":{"k":"`+attackWriteKey+`"}}]}`)
	// The API token and the admin password used as write keys.
	post("/v1/track", attackToken, `{"userId":"u1","event":"x","writeKey":"`+attackToken+`"}`)
	post("/v1/identify", "", `{"userId":"u1","WriteKey":"`+attackPassword+`"}`)
	// A webhook without a valid signature.
	post("/webhook", "", `{"type":"track","event":"x","userId":"u1","properties":`+
		`{"s":"`+attackWebhookSecret+`"}}`)
	// Long bodies whose excerpt ends inside the write key (with this
	// padding the key starts at byte MaxExcerptBytes; shorter padding moves
	// the cut into it).
	for _, into := range []int{1, 5, 11, len(attackWriteKey) - 1} {
		post("/v1/track", attackWriteKey, `{"type":"track","event":"x","properties":`+
			`{"pad":"`+strings.Repeat("p", resolver.MaxExcerptBytes-60-into)+`","k":"`+
			attackWriteKey+`"}}`)
	}
}

// TestAttackNoPageShowsASecret reads every console page, after refusals
// that carried secrets, and looks for any secret the site holds.
func TestAttackNoPageShowsASecret(t *testing.T) {
	site := mustAttackSite(t)
	site.refuse(t)
	cookie := site.signIn(t, attackToken)
	pages := append(attackPages(site.hostile), "/audience/shoe_reorder",
		"/audiences", "/audiences/secret_destinations", "/audiences/secret_destinations.csv",
		"/audiences/secret_destinations/changes")
	for _, path := range pages {
		resp, body := site.do(t, http.MethodGet, path, nil, cookie, nil)
		if resp.StatusCode >= 500 {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
		for what, secret := range attackSecrets() {
			if what == "user name in a destination URL" {
				continue // TestAttackDefinitionHidesTheUserOfADestinationURL
			}
			for from := 0; ; {
				i := strings.Index(body[from:], secret)
				if i < 0 {
					break
				}
				i += from
				line := body[strings.LastIndex(body[:i], "\n")+1:]
				line, _, _ = strings.Cut(line, "\n")
				t.Errorf("GET %s shows the %s: %s", path, what, strings.TrimSpace(line))
				from = i + len(secret)
			}
			// Nor the start of one that an excerpt's end cut through.
			if path == "/ingestion" && strings.Contains(body, secret[:8]) {
				t.Errorf("GET %s shows the start of the %s (%q)", path, what, secret[:8])
			}
		}
	}
	// The refusals are listed, so the check above read their excerpts.
	_, body := site.do(t, http.MethodGet, "/ingestion", nil, cookie, nil)
	if n := strings.Count(body, "[redacted]"); n < 5 {
		t.Errorf("the ingestion page shows %d redactions, want the refusals listed", n)
	}
	_, body = site.do(t, http.MethodGet, "/audience/secret_destinations", nil, cookie, nil)
	if !strings.Contains(body, "hooks.example.invalid") {
		t.Errorf("the definition's YAML does not show the destinations at all")
	}
}

// TestAttackDefinitionHidesTheUserOfADestinationURL: an audience's page
// shows its definition as YAML and promises that "any password ... in a
// destination URL" reads (hidden). The user name of a URL is a credential
// too (Segment's tracking API takes the write key as the HTTP Basic user
// name, with an empty password: https://KEY:@api...), yet it is shown,
// even when the empty password is "hidden" beside it. The settings page
// drops the whole user information of the same URLs.
func TestAttackDefinitionHidesTheUserOfADestinationURL(t *testing.T) {
	site := mustAttackSite(t)
	cookie := site.signIn(t, attackToken)
	for _, path := range []string{"/settings", "/audience/secret_destinations"} {
		_, body := site.do(t, http.MethodGet, path, nil, cookie, nil)
		for _, line := range strings.Split(body, "\n") {
			if strings.Contains(line, attackURLUser) {
				t.Errorf("GET %s shows a destination URL's user name: %s", path,
					strings.TrimSpace(line))
			}
		}
	}
}

// lastRun is the id of the audience's latest run.
func (s *attackSite) lastRun(t *testing.T, name string) int64 {
	t.Helper()
	run, err := s.runner.LastRun(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return run.ID
}
