package webhook_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
	"github.com/knit-cdp/knit/web/httpx"
	"github.com/knit-cdp/knit/webhook"
)

// faultKey is the write key of the fault tests' tracking API.
const faultKey = "fault-key"

// sqliteFile is a migrated SQLite file that the test opens again through
// handles it degrades; db is a healthy handle for counting.
type sqliteFile struct {
	path string
	db   *sqldb.DB
}

func mustSQLiteFile(t *testing.T) sqliteFile {
	t.Helper()
	db := sqltest.MustOpenSQLite(t)
	var path string
	if err := db.Get(&path,
		`SELECT file FROM pragma_database_list WHERE name = 'main'`); err != nil {
		t.Fatal(err)
	}
	return sqliteFile{path: path, db: db}
}

// open opens the file again; query holds extra DSN settings, such as
// "?mode=ro" (the first of a setting wins over knit's own).
func (f sqliteFile) open(t *testing.T, query string) *sqldb.DB {
	t.Helper()
	db, err := sqldb.OpenSQLite(context.Background(), f.path+query)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// mustEdgeOver builds the ingestion edge as cmd/knit does over db.
func mustEdgeOver(db *sqldb.DB) *gin.Engine {
	store := resolver.NewStore(db, resolver.DefaultRules(), receiveClock, nil)
	router := gin.New()
	router.Use(httpx.Recover(nil))
	webhook.New(store, webhook.Config{Now: receiveClock, WriteKeys: []string{faultKey},
		Rejections: store}, nil).Register(router)
	return router
}

// faultCalls are one webhook and one tracking API delivery of new messages,
// each with a 20 KB property so that storing them needs new pages.
func faultCalls(prefix string) []call {
	msg := func(id string) string {
		return fmt.Sprintf(`{"type":"track","userId":"u-%s","event":"Order Completed",`+
			`"messageId":%q,"properties":{"note":%q}}`, id, id, strings.Repeat("n", 20000))
	}
	return []call{
		{path: "/webhook", body: []byte(msg(prefix + "-webhook"))},
		{path: "/v1/batch", user: faultKey,
			body: batchBody(msg(prefix+"-batch-1"), msg(prefix+"-batch-2"))},
	}
}

// mustAnswerUnavailable posts each call and requires 503 with a
// Retry-After of whole seconds and the code "unavailable".
func mustAnswerUnavailable(t *testing.T, router *gin.Engine, calls []call) {
	t.Helper()
	for _, c := range calls {
		rec := post(router, c)
		mustFail(t, rec, http.StatusServiceUnavailable, resolver.EUnavailable,
			"database is unavailable")
		wait, err := strconv.Atoi(rec.Header().Get("Retry-After"))
		if err != nil || wait < 1 || wait > 60 {
			t.Errorf("%s: Retry-After %q, want a few seconds", c.path,
				rec.Header().Get("Retry-After"))
		}
	}
}

func mustAnswerOK(t *testing.T, router *gin.Engine, calls []call) {
	t.Helper()
	for _, c := range calls {
		mustSucceed(t, post(router, c))
	}
}

func post(router *gin.Engine, c call) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, c.path, strings.NewReader(string(c.body)))
	if c.user != "" {
		req.SetBasicAuth(c.user, "")
	}
	rec := httptest.NewRecorder()
	router.ServeHTTP(rec, req)
	return rec
}

func mustStored(t *testing.T, f sqliteFile, want int) {
	t.Helper()
	var n int
	if err := f.db.Get(&n, `SELECT COUNT(*) FROM events`); err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Errorf("%d events stored, want %d", n, want)
	}
}

func TestReadOnlyDatabaseAnswers503(t *testing.T) {
	f := mustSQLiteFile(t)
	mustAnswerUnavailable(t, mustEdgeOver(f.open(t, "?mode=ro")), faultCalls("ro"))
	mustStored(t, f, 0)
}

func TestFullDatabaseAnswers503UntilThereIsRoom(t *testing.T) {
	f := mustSQLiteFile(t)
	db := f.open(t, "")
	// PRAGMA max_page_count holds for one connection: keep just that one.
	db.SetMaxOpenConns(1)
	var pages int
	if err := db.Get(&pages, `PRAGMA page_count`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)); err != nil {
		t.Fatal(err)
	}
	router := mustEdgeOver(db)
	calls := faultCalls("full")
	mustAnswerUnavailable(t, router, calls)
	mustStored(t, f, 0)

	// Room again: the same edge, unrestarted, takes the same deliveries.
	if _, err := db.Exec(`PRAGMA max_page_count = 1073741823`); err != nil {
		t.Fatal(err)
	}
	mustAnswerOK(t, router, calls)
	mustStored(t, f, 3)
}

func TestLockedDatabaseAnswers503UntilTheLockEnds(t *testing.T) {
	f := mustSQLiteFile(t)
	router := mustEdgeOver(f.open(t, "?_busy_timeout=50"))
	holder, err := f.db.Beginx() // immediate: holds the write lock
	if err != nil {
		t.Fatal(err)
	}
	_, err = holder.Exec(`INSERT INTO settings (key, value) VALUES ('held', '1')`)
	if err != nil {
		t.Fatal(err)
	}
	calls := faultCalls("locked")
	mustAnswerUnavailable(t, router, calls)
	if err := holder.Rollback(); err != nil {
		t.Fatal(err)
	}
	mustStored(t, f, 0)
	mustAnswerOK(t, router, calls)
	mustStored(t, f, 3)
}
