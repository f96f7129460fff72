package web_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/audiences"
	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
	"github.com/knit-cdp/knit/web"
	"github.com/knit-cdp/knit/web/httpx"
	"github.com/knit-cdp/knit/webhook"
)

// The secrets of the ingestion test server's edge.
const (
	ingestionSecret   = "whsec-ingestion-test-1234"
	ingestionWriteKey = "wk-ingestion-test-5678"
)

// rateSpec is the chart's JSON as the page embeds it for charts.js.
type rateSpec struct {
	X      []int64 `json:"x"`
	Series []struct {
		Label  string  `json:"label"`
		Values []int64 `json:"values"`
	} `json:"series"`
	Height int `json:"height"`
}

func TestConsoleIngestionOverTheSeedJourney(t *testing.T) {
	base := mustConsoleServer(t)
	ctx := mustBrowser(t, base)
	mustVisit(t, ctx, base+"/login")
	mustSignIn(t, ctx, browserToken)
	status, _ := mustVisit(t, ctx, base+"/ingestion")
	if status != http.StatusOK || mustText(t, ctx, "main h1") != "Ingestion" {
		t.Fatalf("GET /ingestion: status %d, heading %q", status, mustText(t, ctx, "main h1"))
	}
	if current := mustText(t, ctx, `nav a[aria-current="page"]`); current != "Ingestion" {
		t.Errorf("the navigation marks %q as the current section", current)
	}

	byType := seedTypeCounts(t)
	checkRateChart(t, ctx, 69, byType)
	checkTotals(t, ctx, "test", byType, 69)
	if text := mustText(t, ctx, `section[aria-labelledby="rejected-title"]`); !strings.Contains(
		text, "Nothing was refused in the last 7 days") {
		t.Errorf("refusals section without refusals reads %q", text)
	}
	mustBeAccessible(t, ctx)
}

// seedTypeCounts counts the seed journey's messages by type.
func seedTypeCounts(t *testing.T) map[string]int64 {
	t.Helper()
	counts := map[string]int64{}
	for _, m := range mustSeedMessages(t, seedEvaluatedAt()) {
		counts[m.Type]++
	}
	return counts
}

// checkRateChart checks the chart of events a minute: its summary, its
// data, and that uPlot drew it.
func checkRateChart(t *testing.T, ctx context.Context, total int64, byType map[string]int64) {
	t.Helper()
	label := mustRun(t, ctx, chromedp.AttributeValue(chromedp.CSS(
		`.chart[data-chart="ingestion-rate"][role="img"]`), "aria-label")).Value
	if !strings.Contains(label, strconv.FormatInt(total, 10)+" in all") ||
		!strings.Contains(label, "Busiest minute: 27 Nov 2026 12:00 UTC") {
		t.Errorf("chart summary = %q", label)
	}
	var spec rateSpec
	text := mustRun(t, ctx, chromedp.Evaluate[string](
		`document.getElementById("ingestion-rate").textContent`))
	if err := json.Unmarshal([]byte(text), &spec); err != nil {
		t.Fatalf("chart data: %v\n%.200s", err, text)
	}
	last := seedEvaluatedAt().Unix()
	if len(spec.X) != 1440 || spec.X[1439] != last || spec.X[0] != last-1439*60 ||
		len(spec.Series) != 6 || spec.Height != 200 {
		t.Fatalf("chart data: %d minutes to %v, %d series, height %d", len(spec.X),
			spec.X[len(spec.X)-1], len(spec.Series), spec.Height)
	}
	for i, kind := range resolver.EventTypes() {
		s := spec.Series[i]
		if s.Label != kind || len(s.Values) != 1440 || s.Values[1439] != byType[kind] {
			t.Errorf("series %d: %s with %d in the last minute, want %s with %d",
				i, s.Label, s.Values[len(s.Values)-1], kind, byType[kind])
		}
	}
	drawn := mustRun(t, ctx, chromedp.Evaluate[bool](`(() => {
		const c = document.querySelector('.chart[data-chart="ingestion-rate"] canvas');
		return !!c && c.width > 0 && c.height > 0; })()`))
	if !drawn {
		t.Error("uPlot drew no chart")
	}
}

// checkTotals checks the totals table's row of source holds its events by
// type, and its All sources row the total of every source.
func checkTotals(t *testing.T, ctx context.Context, source string, byType map[string]int64,
	total int64) {
	t.Helper()
	want := []string{source}
	var sourceTotal int64
	for _, kind := range resolver.EventTypes() {
		want = append(want, strconv.FormatInt(byType[kind], 10))
		sourceTotal += byType[kind]
	}
	want = append(want, strconv.FormatInt(sourceTotal, 10))
	found := false
	for _, row := range mustTableRows(t, ctx, "table.totals tbody tr") {
		if row[0] == source {
			found = true
			if strings.Join(row, "|") != strings.Join(want, "|") {
				t.Errorf("totals of %s = %q, want %q", source, row, want)
			}
		}
	}
	if !found {
		t.Errorf("no totals row for source %s", source)
	}
	foot := mustTableRows(t, ctx, "table.totals tfoot tr")
	if len(foot) != 1 || foot[0][len(foot[0])-1] != strconv.FormatInt(total, 10) ||
		foot[0][0] != "All sources" {
		t.Errorf("totals footer = %q, want All sources with %d", foot, total)
	}
}

// mustTableRows returns the text of every header and data cell of the
// rows matched by selector.
func mustTableRows(t *testing.T, ctx context.Context, selector string) [][]string {
	t.Helper()
	quoted, _ := json.Marshal(selector)
	return mustRun(t, ctx, chromedp.Evaluate[[][]string](`Array.from(
		document.querySelectorAll(`+string(quoted)+`),
		row => Array.from(row.cells, cell => cell.innerText.trim()))`))
}

func TestConsoleIngestionListsRefusals(t *testing.T) {
	base := mustIngestionServer(t, true)
	ctx := mustBrowser(t, base)
	mustVisit(t, ctx, base+"/login")
	mustSignIn(t, ctx, browserToken)

	postRefusals(t, base)
	mustVisit(t, ctx, base+"/ingestion")
	rows := mustRows(t, ctx, "table.rejections")
	want := [][]string{ // newest first: received, source, endpoint, reason, message
		{"just now", "tracking", "/v1/batch", "write key is not valid", "no messageId"},
		{"just now", "webhook", "/webhook", "X-Signature does not match", "refused-2"},
		{"just now", "webhook", "/webhook", "event is required", "refused-1"},
	}
	if len(rows) != len(want) {
		t.Fatalf("refusals listed: %q, want %d", rows, len(want))
	}
	for i, w := range want {
		if rows[i][0] != w[0] || rows[i][1] != w[1] || rows[i][2] != w[2] ||
			!strings.Contains(rows[i][3], w[3]) || rows[i][4] != w[4] {
			t.Errorf("refusal %d = %q, want %q", i, rows[i][:5], w)
		}
	}
	if page := mustText(t, ctx, "main"); strings.Contains(page, ingestionSecret) ||
		strings.Contains(page, ingestionWriteKey) {
		t.Error("the page shows a secret")
	}

	// The one valid message of the refused batch's request was stored.
	byType := seedTypeCounts(t)
	checkTotals(t, ctx, "webhook", map[string]int64{"track": 1}, 70)
	byType["track"]++
	checkRateChart(t, ctx, 70, byType)

	checkExcerptByKeyboard(t, ctx)
	mustIngestionShots(t, ctx, "ingestion")
}

// postRefusals sends the ingestion test server's edge three requests it
// refuses, wholly or in part, and checks its answers.
func postRefusals(t *testing.T, base string) {
	t.Helper()
	long := `{"type":"track","userId":"u-1","messageId":"refused-1","properties":` +
		`{"note":"` + strings.Repeat("long property ", 20) + `"}}`
	first := `{"type":"track","userId":"u-1","event":"Signed Up","messageId":"stored-1"}`
	for _, p := range []struct {
		path, body, signature, user string
		status                      int
	}{
		{"/webhook", "[" + first + "," + long + "]",
			webhook.Signature(ingestionSecret, []byte(first)), "", http.StatusOK},
		{"/webhook", `{"type":"track","event":"E","userId":"u","messageId":"refused-2"}`,
			"00ff", "", http.StatusUnauthorized},
		{"/v1/batch", `{"batch":[]}`, "", "not-" + ingestionWriteKey, http.StatusUnauthorized},
	} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+p.path,
			strings.NewReader(p.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if p.signature != "" {
			req.Header.Set("X-Signature", p.signature)
		}
		if p.user != "" {
			req.SetBasicAuth(p.user, "")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", p.path, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != p.status {
			t.Fatalf("POST %s: status %d, want %d", p.path, resp.StatusCode, p.status)
		}
	}
}

// checkExcerptByKeyboard tabs to the long excerpt's summary, opens it with
// Enter, and checks the whole excerpt shows.
func checkExcerptByKeyboard(t *testing.T, ctx context.Context) {
	t.Helper()
	mustRun(t, ctx, chromedp.Evaluate[any](`document.activeElement.blur(); window.scrollTo(0, 0)`))
	for range 40 {
		mustDo(t, ctx, chromedp.KeyEvent(kb.Tab))
		if mustRun(t, ctx, chromedp.Evaluate[bool](
			`document.activeElement.matches("td.excerpt summary")`)) {
			mustDo(t, ctx, chromedp.KeyEvent(kb.Enter))
			text := mustText(t, ctx, "td.excerpt details[open] pre")
			if !strings.Contains(text, `"messageId":"refused-1"`) ||
				!strings.HasSuffix(text, `"}}`) {
				t.Errorf("the opened excerpt reads %q", text)
			}
			return
		}
	}
	t.Error("pressing Tab never reaches the excerpt's summary")
}

// mustIngestionShots checks the page at a phone's width (375 px) and a
// large screen's (1280 px): no sideways scrolling, the accessibility
// check, and a full-page screenshot into the test's artifact folder.
func mustIngestionShots(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	mustScreenshotsAtBothWidths(t, ctx, name, func() { mustBeAccessible(t, ctx) })
}

func TestConsoleIngestionOfAnEmptyDay(t *testing.T) {
	base := mustIngestionServer(t, false)
	ctx := mustBrowser(t, base)
	mustVisit(t, ctx, base+"/login")
	mustSignIn(t, ctx, browserToken)
	mustVisit(t, ctx, base+"/ingestion")

	text := mustText(t, ctx, `section[aria-labelledby="rate-title"]`)
	if want := "No events in the last 24 hours: point Segment at " + base +
		"/webhook"; !strings.Contains(text, want) {
		t.Errorf("empty day reads %q, want %q", text, want)
	}
	if n := mustRun(t, ctx, chromedp.Evaluate[int](
		`document.querySelectorAll("[data-chart], table.totals").length`)); n != 0 {
		t.Errorf("an empty day shows %d charts or tables", n)
	}
	mustIngestionShots(t, ctx, "ingestion-empty")
}

// mustIngestionServer serves the console and the ingestion edge (with a
// shared secret and a write key, recording refusals) on one router, over
// the seed journey when seed is set, with every clock at the seed
// journey's time but sessions'; it returns the base URL.
func mustIngestionServer(t *testing.T, seed bool) string {
	t.Helper()
	db := sqltest.MustOpen(t)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
	clock := seedEvaluatedAt
	store := resolver.NewStore(db, resolver.DefaultRules(), clock, log)
	if seed {
		if _, err := store.Ingest(t.Context(), mustSeedMessages(t, clock())); err != nil {
			t.Fatalf("ingest seed journey: %v", err)
		}
	}
	auth, _, err := web.EnsureToken(t.Context(), db, browserToken, time.Now)
	if err != nil {
		t.Fatalf("ensure token: %v", err)
	}
	runner := audiences.NewRunner(db, audiences.WithBuiltins(nil), clock, log)
	site := web.NewServer(runner, resolver.NewProfiles(db), auth, "", log)
	site.SetClock(clock)
	edge := webhook.New(store, webhook.Config{Secret: ingestionSecret,
		WriteKeys: []string{ingestionWriteKey}, Now: clock, Rejections: store}, log)

	gin.SetMode(gin.ReleaseMode)
	router := gin.New()
	router.UseRawPath = true
	router.UnescapePathValues = true
	router.Use(httpx.Recover(log))
	edge.Register(router)
	site.Register(router)

	server := httptest.NewServer(router) // listens on 127.0.0.1 only
	t.Cleanup(server.Close)
	return server.URL
}
