package main

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

func TestRolesAndRetentionAreReadOrRefusedByName(t *testing.T) {
	all, err := parseRoles("")
	if err != nil || all.String() != "ingest,scheduler,web" {
		t.Errorf("no roles = %v (%v), want all three", all, err)
	}
	some, err := parseRoles(" Ingest , web")
	if err != nil || some.String() != "ingest,web" {
		t.Errorf("ingest,web = %v (%v)", some, err)
	}
	if _, err := parseRoles("ingest,cron"); !errors.Is(err, errUsage) {
		t.Errorf("an unknown role: %v, want a usage error naming it", err)
	}
	for text, want := range map[string]int{"": 0, "0": 0, " 6 ": 6} {
		if got, err := parseRetention(text); err != nil || got != want {
			t.Errorf("retention %q = %d (%v), want %d", text, got, err, want)
		}
	}
	for _, bad := range []string{"-1", "six", "1.5"} {
		if _, err := parseRetention(bad); !errors.Is(err, errUsage) {
			t.Errorf("retention %q: %v, want a usage error", bad, err)
		}
	}
}

func TestADatabaseURLHidesOnlyAPassword(t *testing.T) {
	for dsn, want := range map[string]string{
		"postgres://knit:s3cret@db:5432/knit": "postgres://knit:***@db:5432/knit",
		"postgres://postgres@127.0.0.1/test":  "postgres://postgres@127.0.0.1/test",
		"/var/lib/knit/knit.db":               "/var/lib/knit/knit.db",
	} {
		if got := redactDSN(dsn); got != want {
			t.Errorf("redactDSN(%q) = %q, want %q", dsn, got, want)
		}
	}
}

func TestAProcessWithoutTheWebRoleAnswersJSON(t *testing.T) {
	router := gin.New()
	registerHealth(router, slog.New(slog.DiscardHandler))
	for path, want := range map[string]int{"/healthz": 200, "/audiences": 404} {
		rec := httptest.NewRecorder()
		router.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != want || !strings.HasPrefix(rec.Header().Get("Content-Type"),
			"application/json") {
			t.Errorf("GET %s: %d %q, want %d in JSON", path, rec.Code,
				rec.Header().Get("Content-Type"), want)
		}
	}
}

func TestReadyzSaysWhetherTheDatabaseIsReady(t *testing.T) {
	get := func(a *app) (int, string) {
		router := gin.New()
		a.registerReady(router)
		rec := httptest.NewRecorder()
		router.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code, rec.Body.String()
	}
	log := slog.New(slog.DiscardHandler)

	migrated := &app{db: sqltest.MustOpen(t), log: log}
	if code, body := get(migrated); code != http.StatusOK ||
		!strings.Contains(body, "ready") {
		t.Errorf("a migrated database: %d %s, want 200 ready", code, body)
	}

	fresh, err := sqldb.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "new.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fresh.Close() })
	if code, body := get(&app{db: fresh, log: log}); code != http.StatusServiceUnavailable ||
		!strings.Contains(body, "migrations are pending") {
		t.Errorf("an unmigrated database: %d %s, want 503 naming the migrations", code, body)
	}

	_ = migrated.db.Close()
	if code, body := get(migrated); code != http.StatusServiceUnavailable ||
		!strings.Contains(body, "does not answer") {
		t.Errorf("a closed database: %d %s, want 503", code, body)
	}
}
