package web_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/audiences"
	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
	"github.com/knit-cdp/knit/web"
	"github.com/knit-cdp/knit/web/httpx"
	"github.com/knit-cdp/knit/webhook"
)

// Credentials of abuseSite.
const (
	abuseToken    = "abuse-api-token-4d2a"
	abusePassword = "abuse admin password 77c1"
	abuseSecret   = "abuse-webhook-secret-91ef"
	abuseWriteKey = "abusewritekey5b6c"
)

// abuseSite is the ingestion edge, the APIs and the console wired as
// knit serve wires them (request ids, audit log, write keys, a webhook
// secret, an admin password), over a fresh database on the engine under
// test, listening on 127.0.0.1.
type abuseSite struct {
	URL    string
	db     *sqldb.DB
	runner *audiences.Runner
}

// mustAbuseSite serves an abuseSite with rules, the built-in audiences
// and defs.
func mustAbuseSite(t *testing.T, rules resolver.Rules,
	defs []audiences.Definition) *abuseSite {
	t.Helper()
	db := sqltest.MustOpen(t)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
	store := resolver.NewStore(db, rules, time.Now, log)
	all := audiences.WithBuiltins(defs)
	if err := audiences.Validate(all); err != nil {
		t.Fatalf("audiences: %v", err)
	}
	runner := audiences.NewRunner(db, all, time.Now, log)

	auth, _, err := web.EnsureToken(t.Context(), db, abuseToken, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	auth.SetAdminPassword(abusePassword)
	site := web.NewServer(runner, resolver.NewProfiles(db).WithRules(rules), auth, "", log)
	site.SetAdmin(store)
	site.SetAuditLog(resolver.NewAuditLog(db))
	site.SetSettings(web.Settings{Rules: rules, WebhookSecretSet: true, WriteKeys: 1,
		AdminPasswordSet: true, Database: "test"})
	hooks := webhook.New(store, webhook.Config{Secret: abuseSecret,
		WriteKeys: []string{abuseWriteKey}, Rejections: store}, log)

	gin.SetMode(gin.ReleaseMode)
	router := gin.New()
	router.UseRawPath = true
	router.UnescapePathValues = true
	router.Use(httpx.RequestID(), httpx.Recover(log))
	hooks.Register(router)
	site.Register(router)
	server := httptest.NewServer(router) // 127.0.0.1 only
	t.Cleanup(server.Close)
	return &abuseSite{URL: server.URL, db: db, runner: runner}
}

// abuseRequest is one request to an abuseSite.
type abuseRequest struct {
	method, path string
	body         []byte
	form         url.Values
	header       http.Header
	cookie       *http.Cookie
}

// abuseAnswer is a response with its body read.
type abuseAnswer struct {
	status int
	header http.Header
	body   string
}

// decode decodes the JSON body into dest, failing the test otherwise.
func (a abuseAnswer) decode(t *testing.T, dest any) {
	t.Helper()
	if err := json.Unmarshal([]byte(a.body), dest); err != nil {
		t.Fatalf("decode %d %.300s: %v", a.status, a.body, err)
	}
}

// do sends r without following redirects.
func (s *abuseSite) do(t *testing.T, r abuseRequest) abuseAnswer {
	t.Helper()
	var body io.Reader
	if r.form != nil {
		body = strings.NewReader(r.form.Encode())
	} else if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(t.Context(), r.method, s.URL+r.path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	if r.form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	if r.cookie != nil {
		req.AddCookie(r.cookie)
	}
	resp, err := attackNoRedirects.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", r.method, r.path, err)
	}
	return abuseAnswer{status: resp.StatusCode, header: resp.Header, body: string(data)}
}

// api sends r with the API token.
func (s *abuseSite) api(t *testing.T, r abuseRequest) abuseAnswer {
	t.Helper()
	if r.header == nil {
		r.header = http.Header{}
	}
	r.header.Set("Authorization", "Bearer "+abuseToken)
	if r.body != nil && r.header.Get("Content-Type") == "" {
		r.header.Set("Content-Type", "application/json")
	}
	return s.do(t, r)
}

// signIn opens a console session with secret.
func (s *abuseSite) signIn(t *testing.T, secret string) *http.Cookie {
	t.Helper()
	a := s.do(t, abuseRequest{method: http.MethodPost, path: "/login",
		form: url.Values{"token": {secret}}})
	for _, line := range strings.Split(a.header.Get("Set-Cookie"), "\n") {
		if value, ok := strings.CutPrefix(line, sessionCookie+"="); ok {
			value, _, _ = strings.Cut(value, ";")
			return &http.Cookie{Name: sessionCookie, Value: value}
		}
	}
	t.Fatalf("signing in answered %d without a session", a.status)
	return nil
}

// form posts a console form with the session's CSRF token, read from page.
func (s *abuseSite) form(t *testing.T, cookie *http.Cookie, page, path string,
	values url.Values) abuseAnswer {
	t.Helper()
	a := s.do(t, abuseRequest{method: http.MethodGet, path: page, cookie: cookie})
	if values == nil {
		values = url.Values{}
	}
	values.Set("csrf", attackCSRFOf(t, a.body))
	return s.do(t, abuseRequest{method: http.MethodPost, path: path, form: values,
		cookie: cookie})
}

// batch posts messages to the tracking API with the write key and
// requires a 200 with nothing rejected.
func (s *abuseSite) batch(t *testing.T, messages []map[string]any) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"batch": messages})
	if err != nil {
		t.Fatal(err)
	}
	a := s.do(t, abuseRequest{method: http.MethodPost, path: "/v1/batch", body: body,
		header: http.Header{"Authorization": {attackBasic(abuseWriteKey, "")},
			"Content-Type": {"application/json"}}})
	if a.status != http.StatusOK || strings.Contains(a.body, "rejected") {
		t.Fatalf("POST /v1/batch: %d %.500s", a.status, a.body)
	}
}
