package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
	"github.com/knit-cdp/knit/webhook"
)

// Secrets of the server under test; none may reach its output or its
// database.
const (
	secretToken    = "tok-0f1e2d3c4b5a6978"
	secretPassword = "pw 8a7b6c5d4e3f2a1b"
	secretWebhook  = "whs-1a2b3c4d5e6f7a8b"
	secretWriteKey = "wk-9f8e7d6c5b4a3928"
)

func secretEnv() map[string]string {
	return map[string]string{
		"KNIT_API_TOKEN": secretToken, "KNIT_ADMIN_PASSWORD": secretPassword,
		"KNIT_WEBHOOK_SECRET": secretWebhook, "KNIT_WRITE_KEYS": "other-key," + secretWriteKey,
		"KNIT_LOG_LEVEL": "debug", "KNIT_RATE_LIMIT": "1",
	}
}

// syncOutput is a bytes.Buffer that a server and a test share.
type syncOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncOutput) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncOutput) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// secretRequest is one request that carries secrets, and the status it
// must get.
type secretRequest struct {
	method, path, body string
	header             map[string]string
	user               string // HTTP Basic user name
	status             int
}

// secretRequests carry every secret every way a sender or a browser does,
// rightly and wrongly. At one message a second with a burst of 2,500, the
// first 2,401 messages pass and the batch of 100 after them is refused.
func secretRequests() []secretRequest {
	msg := func(id string) string {
		return `{"type":"track","userId":"u1","event":"E","messageId":"` + id + `"}`
	}
	signed := msg("m-signed")
	bearer := func(s string) map[string]string {
		return map[string]string{"Authorization": "Bearer " + s}
	}
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	profile := "/v1/spaces/s/collections/users/profiles/user_id:u1"
	return []secretRequest{
		{method: "POST", path: "/v1/track", status: 200,
			body: `{"writeKey":"` + secretWriteKey + `","userId":"u1","event":"E"}`},
		{method: "POST", path: "/v1/batch", user: secretWriteKey, status: 200,
			body: `{"writeKey":"` + secretWriteKey + `","batch":[` +
				strings.Repeat(msg("m-1")+",", 2399) + msg("m-1") + `]}`},
		{method: "POST", path: "/v1/track", user: secretToken, status: 401, body: msg("m-2")},
		{method: "POST", path: "/v1/identify", status: 401,
			body: `{"writeKey":"` + secretPassword + `","userId":"u1"}`},
		{method: "POST", path: "/v1/batch", user: secretWriteKey, status: 429,
			body: `{"batch":[` + strings.Repeat(msg("m-3")+",", 99) + msg("m-3") + `]}`},
		{method: "POST", path: "/webhook", body: signed, status: 200,
			header: map[string]string{"X-Signature": webhook.Signature(secretWebhook, []byte(signed))}},
		{method: "POST", path: "/webhook", body: msg("m-4"), status: 401,
			header: map[string]string{"X-Signature": secretWebhook}},
		{method: "POST", path: "/webhook", body: `{"s":"` + secretWebhook + `"}`, status: 401,
			header: map[string]string{"X-Signature": webhook.Signature(secretToken, []byte(signed))}},
		{method: "GET", path: "/audiences", header: bearer(secretToken), status: 200},
		{method: "GET", path: "/audiences", user: secretToken, status: 200},
		{method: "GET", path: "/audiences", header: bearer(secretPassword), status: 401},
		{method: "GET", path: "/audiences", header: bearer(secretWriteKey), status: 401},
		{method: "GET", path: "/audiences?token=" + secretToken, status: 401},
		{method: "GET", path: "/metrics", header: bearer(secretToken), status: 200},
		{method: "GET", path: profile + "/traits", header: bearer(secretToken), status: 200},
		{method: "POST", path: profile + "/unlink", header: bearer(secretToken), status: 200,
			body: `{"reason":"r"}`},
		{method: "DELETE", path: profile, header: bearer(secretToken), status: 200},
		{method: "POST", path: "/login", header: form, status: 303,
			body: url.Values{"token": {secretPassword}}.Encode()},
		{method: "POST", path: "/login", header: form, status: 303,
			body: url.Values{"token": {secretToken}}.Encode()},
		{method: "POST", path: "/login", header: form, status: 401,
			body: url.Values{"token": {secretToken + "x"}}.Encode()},
		{method: "POST", path: "/login?next=" + secretToken, header: form, status: 401,
			body: url.Values{"token": {secretWebhook}}.Encode()},
	}
}

// TestSecretsNeverReachLogsOrTheDatabase runs knit serve at debug level
// with every secret set, sends requests that carry them rightly and
// wrongly, then reads everything the process printed and every row of
// every table: no secret is there. The API token is kept only as a hash.
func TestSecretsNeverReachLogsOrTheDatabase(t *testing.T) {
	dsn := sqltest.MustDSN(t, "secrets.db")
	var out syncOutput
	s := mustServeEnv(t, dsn, secretEnv(), &out)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	for _, r := range secretRequests() {
		req, err := http.NewRequest(r.method, s.base+r.path, strings.NewReader(r.body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range r.header {
			req.Header.Set(k, v)
		}
		if r.user != "" {
			req.SetBasicAuth(r.user, "")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != r.status {
			t.Errorf("%s %s: %d %.200s, want %d", r.method, r.path, resp.StatusCode, body,
				r.status)
		}
	}
	s.stop(t)

	logs := out.String()
	if !strings.Contains(logs, "request refused") || !strings.Contains(logs, "level=DEBUG") {
		t.Fatalf("the server logged too little to tell:\n%s", logs)
	}
	rows := mustDumpDatabase(t, dsn)
	for name, secret := range map[string]string{"API token": secretToken,
		"admin password": secretPassword, "webhook secret": secretWebhook,
		"write key": secretWriteKey} {
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, secret) {
				t.Errorf("the output shows the %s: %s", name, line)
			}
		}
		for _, row := range rows {
			if strings.Contains(row, secret) {
				t.Errorf("the database holds the %s: %s", name, row)
			}
		}
	}
	t.Logf("%d log lines and %d rows read", strings.Count(logs, "\n"), len(rows))
}

// mustDumpDatabase returns every row of every table of the database at
// dsn as text, prefixed with its table's name.
func mustDumpDatabase(t *testing.T, dsn string) []string {
	t.Helper()
	db, err := openDB(t.Context(), dsn, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	query := `SELECT name FROM sqlite_master WHERE type = 'table'`
	if db.Dialect() == sqldb.Postgres {
		query = `SELECT tablename FROM pg_tables WHERE schemaname = current_schema()`
	}
	var tables []string
	if err := db.SelectContext(t.Context(), &tables, query); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, table := range tables {
		out = append(out, mustDumpTable(t, db.DB.DB, table)...)
	}
	if len(tables) < 10 || len(out) == 0 {
		t.Fatalf("read %d tables, %d rows: not the whole schema", len(tables), len(out))
	}
	return out
}

func mustDumpTable(t *testing.T, db *sql.DB, table string) []string {
	t.Helper()
	// The table name comes from the catalog.
	rows, err := db.QueryContext(t.Context(), `SELECT * FROM `+table)
	if err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	defer rows.Close()
	columns, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		values := make([]any, len(columns))
		pointers := make([]any, len(columns))
		for i := range values {
			pointers[i] = &values[i]
		}
		if err := rows.Scan(pointers...); err != nil {
			t.Fatalf("scan %s: %v", table, err)
		}
		var b strings.Builder
		b.WriteString(table)
		for _, v := range values {
			if raw, ok := v.([]byte); ok {
				v = string(raw)
			}
			fmt.Fprintf(&b, " | %v", v)
		}
		out = append(out, b.String())
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// publicRoutes answer without credentials: health and readiness (a load
// balancer asks; readiness says only ready or why not), the sign-in form
// and its assets, and signing out (which ends a session, if any).
var publicRoutes = map[string]bool{
	"GET /healthz": true, "HEAD /healthz": true, "GET /readyz": true, "HEAD /readyz": true,
	"GET /login": true, "POST /login": true, "POST /logout": true,
	"GET /static/*filepath": true, "HEAD /static/*filepath": true,
}

// TestEveryRouteButHealthNeedsCredentials walks the route table of the
// server knit serve builds, with every role, and calls each route
// without credentials: the APIs and ingestion answer 401, the console
// sends the visitor to sign in, and only the public routes answer.
func TestEveryRouteButHealthNeedsCredentials(t *testing.T) {
	ctx := context.Background()
	getenv := func(k string) string { return secretEnv()[k] }
	a, err := openApp(ctx, commonFlags{db: sqltest.MustDSN(t, "routes.db")}, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer a.db.Close()
	taken, _ := parseRoles("")
	limits, err := parseServeLimits(getenv)
	if err != nil {
		t.Fatal(err)
	}
	server, _, err := a.buildServer(ctx, getenv, io.Discard, taken, limits)
	if err != nil {
		t.Fatal(err)
	}
	engine := server.Handler.(*gin.Engine)
	fill := strings.NewReplacer(":name", "cart_abandonment", ":space", "s",
		":id", "1", "*filepath", "style.css")
	checked := 0
	for _, route := range engine.Routes() {
		key := route.Method + " " + route.Path
		path := fill.Replace(route.Path)
		if strings.HasPrefix(route.Path, "/v1/spaces/") {
			path = strings.Replace(path, "/profiles/1", "/profiles/user_id:u1", 1)
		}
		rec := httptest.NewRecorder()
		engine.ServeHTTP(rec, httptest.NewRequest(route.Method, path, strings.NewReader("{}")))
		toLogin := rec.Code == http.StatusSeeOther &&
			strings.HasPrefix(rec.Header().Get("Location"), "/login")
		// A console page or form without a session sends the visitor to sign
		// in and does nothing.
		if !publicRoutes[key] && rec.Code != http.StatusUnauthorized && !toLogin {
			t.Errorf("%s (as %s) without credentials: %d %q %.200s", key, path, rec.Code,
				rec.Header().Get("Location"), rec.Body.String())
		}
		checked++
	}
	if checked < 40 {
		t.Errorf("only %d routes checked", checked)
	}
	t.Logf("%d routes checked", checked)
}
