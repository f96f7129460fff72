package web_test

import (
	"context"
	"fmt"
	"log/slog"
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

// The person page at scale: 100,000 profiles, each with three identifiers,
// three traits, three events and their identity history, and profile 1 with
// 1,000 events (and none of those three) from two apps on two devices and a
// place in both audiences.

const (
	personBenchProfiles = 100_000
	personBenchEvents   = 1_000 // profile 1's
	personBenchStartMS  = int64(1_780_000_000_000)
)

// personBenchSeries begins a statement over n(i) for i from 1 to the count
// given, as BIGINT so arithmetic on times never overflows on PostgreSQL.
const personBenchSeries = `WITH RECURSIVE n(i) AS (SELECT CAST(1 AS BIGINT)
	UNION ALL SELECT i + 1 FROM n WHERE i < ?) `

// personBenchSeed is the seeding SQL, run in one transaction. Every statement
// takes the profile count and the start time.
func personBenchSeed() []string {
	series := personBenchSeries
	return []string{
		series + `INSERT INTO profiles (id, created_ms, updated_ms)
			SELECT i, ? + i, ? + i FROM n`,
		series + `INSERT INTO identities (type, value, profile_id, first_seen_ms,
			last_seen_ms, first_message_id, source, app, device)
			SELECT k.type, k.prefix || i, i, ? + i, ? + i + 2, 'p' || i || '-0', 'bench',
			       'SegKicks', 'ios dev-' || i
			FROM n, (SELECT 'email' AS type, 'person' AS prefix UNION ALL
			         SELECT 'anonymous_id', 'anon-' UNION ALL
			         SELECT 'user_id', 'user-') k`,
		series + `INSERT INTO traits (profile_id, key, value, ts_ms, message_id)
			SELECT i, k.key, '"' || k.prefix || i || '"', ? + i, 'p' || i || '-0'
			FROM n, (SELECT 'first_name' AS key, 'First' AS prefix UNION ALL
			         SELECT 'last_name', 'Last' UNION ALL
			         SELECT 'email', 'person') k`,
		series + `INSERT INTO events (message_id, source, type, event, user_id,
			anonymous_id, profile_id, ts_ms, received_ms, app, device_type, device_id,
			properties, raw)
			SELECT 'p' || i || '-' || j, 'bench', 'track', 'Product Viewed', 'user-' || i,
			       'anon-' || i, i, ? + i + j, ? + i + j, 'SegKicks', 'ios', 'dev-' || i,
			       '{"product_id":"p-' || j || '","name":"Product ' || j || '"}', '{}'
			FROM n, (SELECT 0 AS j UNION ALL SELECT 1 UNION ALL SELECT 2) k WHERE i > 1`,
		personBenchLinks("p%"),
		series + `INSERT INTO identity_decisions (profile_id, kind, message_id,
			identifier, rule, detail, event_ms, at_ms)
			SELECT i, k.kind, 'p' || i || '-0', k.identifier, '', 'bench', ? + i, ? + i
			FROM n, (SELECT 'created' AS kind, '' AS identifier UNION ALL
			         SELECT 'attached', 'user_id:user' UNION ALL
			         SELECT 'attached', 'email:person') k`,
	}
}

// personBenchLinks links each event whose messageId is like pattern to the
// user and anonymous ids it names.
func personBenchLinks(pattern string) string {
	return `INSERT INTO identity_links (event_id, type, value, message_id)
		SELECT id, 'anonymous_id', anonymous_id, message_id FROM events
		WHERE message_id LIKE '` + pattern + `'
		UNION ALL SELECT id, 'user_id', user_id, message_id FROM events
		WHERE message_id LIKE '` + pattern + `'`
}

// personBenchJane gives profile 1 her 1,000 events: SegKicks on an iPhone and an
// Android phone, SegRuns on the Android phone; and her identifiers.
func personBenchJane() []string {
	series := personBenchSeries
	return []string{
		series + `INSERT INTO events (message_id, source, type, event, user_id,
			anonymous_id, profile_id, ts_ms, received_ms, app, device_type, device_id,
			properties, raw)
			SELECT 'jane-' || i, 'bench', 'track',
			       CASE i % 3 WHEN 0 THEN 'Workout Completed' ELSE 'Product Added' END,
			       'jane', 'jane-anon-' || (i % 3), 1, ? + 3600000 * i, ? + 3600000 * i,
			       CASE i % 3 WHEN 0 THEN 'SegRuns' ELSE 'SegKicks' END,
			       CASE i % 3 WHEN 1 THEN 'ios' ELSE 'android' END,
			       CASE i % 3 WHEN 1 THEN 'iphone-1' ELSE 'android-1' END,
			       CASE i % 3 WHEN 0 THEN '{"distance":6.2,"duration_s":3300}'
			            ELSE '{"product_id":"shoe-c","name":"ShoeC","price":150}' END,
			       '{}'
			FROM n`,
		personBenchLinks("jane-%"),
		`INSERT INTO identities (type, value, profile_id, first_seen_ms, last_seen_ms,
			first_message_id, source, app, device) VALUES
			('user_id', 'jane', 1, CAST(? AS BIGINT) + 3600000,
			 CAST(? AS BIGINT) + 3600000000, 'jane-1', 'bench', 'SegKicks', 'ios iphone-1'),
			('anonymous_id', 'jane-anon-0', 1, CAST(? AS BIGINT) + 3600000 * 3,
			 CAST(? AS BIGINT) + 3596400000, 'jane-3', 'bench', 'SegRuns',
			 'android android-1')`,
	}
}

// personBenchAudiences puts every other profile in cart_abandonment and every
// fifth in shoe_reorder, profile 1 among them.
func personBenchAudiences() []string {
	series := personBenchSeries
	member := `SELECT %s, i, %d, 'user-' || i, 'person' || i, '[]', %s FROM n WHERE i %% %d = 1`
	return []string{
		`INSERT INTO audience_runs (id, audience, started_ms, finished_ms, evaluated_ms,
			status) VALUES (1, 'cart_abandonment', ?, ?, ?, 'ok'),
			(2, 'shoe_reorder', ?, ?, ?, 'ok')`,
		series + `INSERT INTO audience_members (audience, profile_id, run_id, user_id,
			email, identifiers, attributes) ` +
			fmt.Sprintf(member, `'cart_abandonment'`, 1, `'{"abandoned_products":`+
				`["shoe-c","p-1"],"added_at":"2026-06-01T00:00:00.000Z"}'`, 2) +
			` UNION ALL ` + fmt.Sprintf(member, `'shoe_reorder'`, 2,
			`'{"shoe":"shoe-c","miles_since_purchase":336.4}'`, 5),
	}
}

// mustSeedPersonBench fills db in one transaction.
func mustSeedPersonBench(b *testing.B, db *sqldb.DB) {
	b.Helper()
	err := db.WithTx(b.Context(), func(tx *sqlx.Tx) error {
		stmts := append(append(personBenchSeed(), personBenchJane()...),
			personBenchAudiences()...)
		for _, stmt := range stmts {
			if _, err := tx.Exec(tx.Rebind(stmt), personBenchArgs(stmt)...); err != nil {
				return fmt.Errorf("%s: %w", stmt[:min(len(stmt), 120)], err)
			}
		}
		return nil
	})
	if err != nil {
		b.Fatalf("seed: %v", err)
	}
}

// personBenchArgs fills a seeding statement's placeholders: the profile or event
// count for the series first, then the start time.
func personBenchArgs(stmt string) []any {
	n := strings.Count(stmt, "?")
	var args []any
	if strings.HasPrefix(stmt, "WITH RECURSIVE") {
		count := personBenchProfiles
		if strings.Contains(stmt, "'jane-' || i") {
			count = personBenchEvents
		}
		args, n = append(args, count), n-1
	}
	for range n {
		args = append(args, personBenchStartMS)
	}
	return args
}

// mustPersonBenchRouter serves the console over db and returns it with a signed-in
// session cookie.
func mustPersonBenchRouter(b *testing.B, db *sqldb.DB) (http.Handler, *http.Cookie) {
	b.Helper()
	log := slog.New(slog.DiscardHandler)
	start := time.UnixMilli(personBenchStartMS)
	clock := func() time.Time { return start.Add(60 * 24 * time.Hour) }
	runner := audiences.NewRunner(db, audiences.WithBuiltins(nil), clock, log)
	auth, _, err := web.EnsureToken(b.Context(), db, browserToken, time.Now)
	if err != nil {
		b.Fatalf("ensure token: %v", err)
	}
	gin.SetMode(gin.ReleaseMode)
	router := gin.New()
	web.NewServer(runner, resolver.NewProfiles(db), auth, "", log).Register(router)

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

// mustRenderPage renders path with the session and returns the page.
func mustRenderPage(b *testing.B, router http.Handler, session *http.Cookie, path string) string {
	req := httptest.NewRequestWithContext(context.Background(), http.MethodGet, path, nil)
	req.AddCookie(session)
	rec := httptest.NewRecorder()
	router.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body.String()[:min(rec.Body.Len(), 300)])
	}
	return rec.Body.String()
}

// BenchmarkPersonPage renders profile 1's page, newest events and an older
// page, among 100,000 profiles, on SQLite, or on PostgreSQL when
// KNIT_TEST_POSTGRES is set (straight after the bulk load, before any
// ANALYZE, so no plan leans on table statistics):
//
//	go test -run '^$' -bench BenchmarkPersonPage -benchtime 200x ./web/
func BenchmarkPersonPage(b *testing.B) {
	db := sqltest.MustOpen(b)
	mustSeedPersonBench(b, db)
	router, session := mustPersonBenchRouter(b, db)

	first := mustRenderPage(b, router, session, "/people/1")
	for _, want := range []string{"ShoeC (shoe-c)", "SegRuns", "Older events",
		"1,000 events across 2 apps (SegKicks, SegRuns) on 2 devices"} {
		if !strings.Contains(first, want) {
			b.Fatalf("the person page lacks %q", want)
		}
	}
	older := olderEventsLink(first)
	if older == "" {
		b.Fatal("no link to older events")
	}
	b.Run("newest", func(b *testing.B) {
		for b.Loop() {
			mustRenderPage(b, router, session, "/people/1")
		}
	})
	b.Run("older", func(b *testing.B) {
		for b.Loop() {
			mustRenderPage(b, router, session, older)
		}
	})
	b.Run("search", func(b *testing.B) {
		for b.Loop() {
			mustRenderPage(b, router, session, "/people?q=no-one-holds-this")
		}
	})
}

// olderEventsLink finds the page's link to older events.
func olderEventsLink(page string) string {
	_, rest, ok := strings.Cut(page, `href="/people/1?older=`)
	if !ok {
		return ""
	}
	cursor, _, _ := strings.Cut(rest, `"`)
	return "/people/1?older=" + strings.ReplaceAll(cursor, "&amp;", "&")
}
