package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/audiences"
	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
	"github.com/knit-cdp/knit/web"
)

// benchProfiles is how many people the audience page benchmarks hold: all
// of them in cart_abandonment, every other one in shoe_reorder.
const benchProfiles = 100_000

// BenchmarkConsoleAudiencePages renders the audiences list and
// cart_abandonment's page (its first page of members, a search, and the
// last page) over 100,000 profiles, 30 runs of each audience and 100,000
// recorded entries; ns/op is one page, served and rendered.
func BenchmarkConsoleAudiencePages(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchAudiencePages(b, sqltest.MustOpen(b)) })
	b.Run("postgres", func(b *testing.B) {
		benchAudiencePages(b, sqltest.MustOpenPostgres(b))
	})
}

func benchAudiencePages(b *testing.B, db *sqldb.DB) {
	mustSeedAudiences(b, db, benchProfiles)
	router, cookie := mustBenchConsole(b, db)
	lastPage := (benchProfiles + 49) / 50
	for _, bench := range []struct{ name, path, want string }{
		{"list", "/", "100,000"},
		{"audience", "/audience/cart_abandonment", "person-1@example.com"},
		{"search", "/audience/cart_abandonment?q=" + url.QueryEscape("PERSON-4242@"),
			"Found 1;"},
		{"search_broad", "/audience/cart_abandonment?q=example.com", "Found 100,000;"},
		{"last_page", fmt.Sprintf("/audience/cart_abandonment?page=%d", lastPage),
			"person-100000@example.com"},
	} {
		b.Run(bench.name, func(b *testing.B) {
			for b.Loop() {
				body := mustServe(b, router, cookie, bench.path)
				if !strings.Contains(body, bench.want) {
					b.Fatalf("%s lacks %q:\n%s", bench.path, bench.want, body)
				}
			}
		})
	}
}

// mustBenchConsole serves the console over db and signs in.
func mustBenchConsole(b testing.TB, db *sqldb.DB) (http.Handler, *http.Cookie) {
	b.Helper()
	now := func() time.Time { return time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC) }
	runner := audiences.NewRunner(db, audiences.WithBuiltins(nil), now, nil)
	auth, _, err := web.EnsureToken(context.Background(), db, browserToken, time.Now)
	if err != nil {
		b.Fatalf("ensure token: %v", err)
	}
	site := web.NewServer(runner, resolver.NewProfiles(db), auth, "", nil)
	site.SetClock(now)
	gin.SetMode(gin.ReleaseMode)
	router := gin.New()
	site.Register(router)

	form := url.Values{"token": {browserToken}}
	req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	router.ServeHTTP(rec, req)
	for _, c := range rec.Result().Cookies() {
		if c.Name == sessionCookie {
			return router, c
		}
	}
	b.Fatalf("sign in: %d, no session cookie", rec.Code)
	return nil, nil
}

func mustServe(b *testing.B, router http.Handler, cookie *http.Cookie, path string) string {
	b.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.AddCookie(cookie)
	rec := httptest.NewRecorder()
	router.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// mustSeedAudiences writes n profiles with an email and a user_id, 30
// successful runs of each built-in audience, their current members (all n
// in cart_abandonment, every other one in shoe_reorder), and an entry for
// each cart member, straight into the tables and in one transaction.
func mustSeedAudiences(b testing.TB, db *sqldb.DB, n int) {
	b.Helper()
	err := db.WithTx(context.Background(), func(tx *sqlx.Tx) error {
		for _, step := range seedSteps(n) {
			if _, err := tx.Exec(tx.Rebind(step.query), step.args...); err != nil {
				return fmt.Errorf("%s: %w", step.query, err)
			}
		}
		return nil
	})
	if err != nil {
		b.Fatalf("seed %d profiles: %v", n, err)
	}
	if db.Dialect() == sqldb.Postgres {
		// What autovacuum does soon after: statistics for the planner.
		if _, err := db.Exec(`VACUUM ANALYZE`); err != nil {
			b.Fatalf("vacuum: %v", err)
		}
	}
}

type seedStep struct {
	query string
	args  []any
}

// seq numbers the rows of a seeding statement from 1 to its argument.
const seq = `WITH RECURSIVE seq (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq
	WHERE i < ?) `

func seedSteps(n int) []seedStep {
	at := time.Date(2026, 12, 4, 11, 45, 0, 0, time.UTC).UnixMilli()
	steps := []seedStep{
		{`INSERT INTO profiles (id, created_ms, updated_ms) ` + seq +
			`SELECT i, 0, 0 FROM seq`, []any{n}},
		{`INSERT INTO identities (type, value, profile_id, first_seen_ms,
			first_message_id, source) ` + seq + `SELECT 'email',
			'person-' || i || '@example.com', i, 0, 'm', 'bench' FROM seq`, []any{n}},
		{`INSERT INTO identities (type, value, profile_id, first_seen_ms,
			first_message_id, source) ` + seq + `SELECT 'user_id', 'user-' || i, i, 0, 'm',
			'bench' FROM seq`, []any{n}},
	}
	for _, audience := range []struct {
		name, attrs string
		size        int
	}{
		{"cart_abandonment", `'{"abandoned_products":["shoe-' || (i % 50) ||
			'","sock-1"],"added_at":"2026-12-04T10:00:00.000Z"}'`, n},
		{"shoe_reorder", `'{"shoe":"shoe-d","purchased_at":"2026-09-01T08:00:00.000Z",
			"miles_since_purchase":312.5}'`, n / 2},
	} {
		steps = append(steps, runSteps(audience.name, audience.size, at)...)
		steps = append(steps, seedStep{`INSERT INTO audience_members (audience, profile_id,
			run_id, user_id, email, identifiers, attributes) ` + seq + `SELECT CAST(? AS TEXT), i * ?,
			(SELECT MAX(id) FROM audience_runs WHERE audience = ?), 'user-' || (i * ?),
			'person-' || (i * ?) || '@example.com',
			'{"email":["person-' || (i * ?) || '@example.com"],"user_id":["user-' ||
			(i * ?) || '"]}', ` + audience.attrs + ` FROM seq`, []any{audience.size,
			audience.name, n / audience.size, audience.name, n / audience.size,
			n / audience.size, n / audience.size, n / audience.size}})
	}
	return append(steps, seedStep{`INSERT INTO audience_changes (audience, run_id, change,
		profile_id, user_id, email, identifiers, attributes, at_ms) ` + seq + `SELECT
		'cart_abandonment', (SELECT MIN(id) FROM audience_runs), 'entered', i,
		'user-' || i, 'person-' || i || '@example.com', '{}', '{}', CAST(? AS BIGINT)
		FROM seq`,
		[]any{n, at}})
}

// runSteps records 30 successful runs of the audience 15 minutes apart up
// to at, growing to size.
func runSteps(name string, size int, at int64) []seedStep {
	var steps []seedStep
	for i := range 30 {
		ms := at - int64(29-i)*15*60*1000
		steps = append(steps, seedStep{`INSERT INTO audience_runs (audience, started_ms,
			finished_ms, evaluated_ms, size, entered, exited, status)
			VALUES (?, ?, ?, ?, ?, ?, ?, 'ok')`,
			[]any{name, ms, ms + 2000, ms, size - (29-i)*size/100, size / 100, i % 3}})
	}
	return steps
}
