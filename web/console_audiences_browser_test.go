package web_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"image/png"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/audiences"
	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
	"github.com/knit-cdp/knit/web"
	"github.com/knit-cdp/knit/web/httpx"
)

// checkAudiencesTable checks the audiences page lists both built-in
// audiences with Jane as their one member, when they ran and run next, a
// size chart, and a CSV link and a Run now button each.
func checkAudiencesTable(t *testing.T, ctx context.Context) {
	t.Helper()
	rows := mustRows(t, ctx, "table.audiences")
	var names []string
	for _, row := range rows {
		if len(row) != 5 {
			t.Fatalf("audience row has %d cells, want 5: %q", len(row), row)
		}
		name, description, _ := strings.Cut(row[0], "\n")
		names = append(names, name)
		if !strings.HasPrefix(description, "People with an email who") {
			t.Errorf("%s: description %q", name, description)
		}
		if size, _, _ := strings.Cut(row[1], "\n"); size != "1" {
			t.Errorf("%s: size %q, want 1 (cell %q)", name, size, row[1])
		}
		if !strings.Contains(row[1], "+1") || !strings.Contains(row[1], "−0") {
			t.Errorf("%s: entered and left %q, want +1 −0", name, row[1])
		}
		if !strings.Contains(row[2], "Members: 1 at the one run so far.") {
			t.Errorf("%s: chart summary %q", name, row[2])
		}
		for _, want := range []string{"Last run", "ok", "Next run in", "every 15 minutes"} {
			if !strings.Contains(row[3], want) {
				t.Errorf("%s: runs cell %q lacks %q", name, row[3], want)
			}
		}
		for _, want := range []string{"Download CSV", "Other CSV layouts", "Run now"} {
			if !strings.Contains(row[4], want) {
				t.Errorf("%s: action cell %q lacks %q", name, row[4], want)
			}
		}
	}
	if want := []string{"cart_abandonment", "shoe_reorder"}; !slices.Equal(names, want) {
		t.Fatalf("audiences listed = %q, want %q", names, want)
	}

	tooltips := mustRun(t, ctx, chromedp.Evaluate[[]string](`Array.from(
		document.querySelectorAll("table.audiences td.runs time"), e => e.title)`))
	if len(tooltips) != 4 || tooltips[0] != "27 Nov 2026 12:00:00 UTC" {
		t.Errorf("exact times of the last and next runs = %q", tooltips)
	}

	links := mustRun(t, ctx, chromedp.Evaluate[[][]string](`Array.from(
		document.querySelectorAll("table.audiences a"),
		a => [a.textContent.trim(), a.getAttribute("href"), String(a.hasAttribute("download"))])`))
	want := [][]string{
		{"cart_abandonment", "/audience/cart_abandonment", "false"},
		{"Download CSV", "/audiences/cart_abandonment.csv", "true"},
		{"shoe_reorder", "/audience/shoe_reorder", "false"},
		{"Download CSV", "/audiences/shoe_reorder.csv", "true"},
	}
	if !slices.EqualFunc(links, want, slices.Equal) {
		t.Errorf("links = %q, want %q", links, want)
	}
}

func TestConsoleAudiencePages(t *testing.T) {
	base := mustConsoleServer(t)
	ctx := mustBrowser(t, base)
	mustVisit(t, ctx, base+"/login")
	if status, at := mustSignIn(t, ctx, browserToken); status != http.StatusOK ||
		at != base+"/" {
		t.Fatalf("sign in: status %d at %s", status, at)
	}
	checkAudiencesTable(t, ctx)
	mustBeAccessible(t, ctx)
	mustScreenshotsAtBothWidths(t, ctx, "audiences")

	status, at := mustLoad(t, ctx, chromedp.Click(chromedp.CSS(
		`a[href="/audience/cart_abandonment"]`)))
	if status != http.StatusOK || at != base+"/audience/cart_abandonment" {
		t.Fatalf("open cart_abandonment: status %d at %s", status, at)
	}
	checkCartPage(t, ctx)
	checkKeyboardReaches(t, ctx, "Skip to content", "Download CSV", "Other CSV layouts",
		"Run now", "The definition as YAML", "#member-q", "janedoe@example.com")
	mustBeAccessible(t, ctx)
	mustScreenshotsAtBothWidths(t, ctx, "audience")

	checkMemberSearch(t, ctx, base)
	checkColumnsDownload(t, ctx)

	status, _ = mustVisit(t, ctx, base+"/audience/no_such_audience")
	if text := mustText(t, ctx, "main h1"); status != http.StatusNotFound ||
		text != "No audience named no_such_audience" {
		t.Errorf("unknown audience: status %d, heading %q", status, text)
	}
}

// checkCartPage checks cart_abandonment's own page: its definition in
// words and YAML, Jane among the members with her abandoned products, her
// entry, and the run that computed it.
func checkCartPage(t *testing.T, ctx context.Context) {
	t.Helper()
	if h1 := mustText(t, ctx, "main h1"); h1 != "cart_abandonment" {
		t.Errorf("heading %q", h1)
	}
	belongs := mustText(t, ctx, `section[aria-labelledby="definition-h"]`)
	for _, want := range []string{
		"People with an email who performed Product Added between 7 days and 1 hour ago",
		"every 15 minutes", "*/15 * * * *", "UTC time zone",
	} {
		if !strings.Contains(belongs, want) {
			t.Errorf("who belongs:\n%s\nlacks %q", belongs, want)
		}
	}
	yamlText := mustRun(t, ctx, chromedp.TextContent(chromedp.CSS(".definition pre")))
	if !strings.Contains(yamlText, "then_not:") || !strings.Contains(yamlText, "between: [7d, 1h]") {
		t.Errorf("definition YAML:\n%s", yamlText)
	}
	// One run draws no chart: its summary says it all.
	if text := mustText(t, ctx, `section[aria-labelledby="size-h"] .chart-caption`); text !=
		"Members: 1 at the one run so far." {
		t.Errorf("size over time reads %q", text)
	}

	members := mustRows(t, ctx, "table.members")
	if len(members) != 1 || members[0][0] != "janedoe@example.com" ||
		members[0][1] != "abc123def" || members[0][2] != "shoe-c, sock-1" {
		t.Fatalf("members = %q, want Jane with shoe-c, sock-1", members)
	}
	person := mustRun(t, ctx, chromedp.AttributeValue(chromedp.CSS(
		"table.members td a"), "href"))
	if !regexp.MustCompile(`^/people/[0-9]+$`).MatchString(person.Value) {
		t.Errorf("Jane's link goes to %q, want her person page", person.Value)
	}

	changes := mustRows(t, ctx, "table.changes")
	if len(changes) != 1 || changes[0][1] != "Entered" ||
		!strings.HasPrefix(changes[0][2], "janedoe@example.com") ||
		!strings.Contains(changes[0][3], "Abandoned products: shoe-c, sock-1") {
		t.Errorf("recent changes = %q, want Jane's entry", changes)
	}
	runs := mustRows(t, ctx, "table.runs")
	if len(runs) != 1 || runs[0][1] != "ok" || runs[0][2] != "1" || runs[0][3] != "1" ||
		runs[0][4] != "0" {
		t.Errorf("run history = %q, want one ok run that let Jane in", runs)
	}
}

// checkKeyboardReaches presses Tab through the page from its top and
// checks that the focus lands, visibly, on each of wanted: an element's
// text, or #id.
func checkKeyboardReaches(t *testing.T, ctx context.Context, wanted ...string) {
	t.Helper()
	mustRun(t, ctx, chromedp.Evaluate[any](`document.activeElement.blur(); window.scrollTo(0, 0)`))
	reached := map[string]bool{}
	for range 60 {
		mustDo(t, ctx, chromedp.KeyEvent(kb.Tab))
		focused := mustRun(t, ctx, chromedp.Evaluate[[]string](`(() => {
			const e = document.activeElement, box = e.getBoundingClientRect();
			return [e.id ? "#" + e.id : "", e.innerText ? e.innerText.trim() : "",
				String(box.width > 0 && box.height > 0)];
		})()`))
		if focused[2] != "true" {
			t.Errorf("Tab focused an element that cannot be seen: %q", focused)
		}
		reached[focused[0]], reached[focused[1]] = true, true
	}
	for _, want := range wanted {
		if !reached[want] {
			t.Errorf("pressing Tab never reaches %q", want)
		}
	}
}

// checkMemberSearch searches the members by keyboard: a part of Jane's
// email in capitals, a wildcard that must match only itself, and back.
func checkMemberSearch(t *testing.T, ctx context.Context, base string) {
	t.Helper()
	search := func(query string) {
		t.Helper()
		mustDo(t, ctx, chromedp.Clear(chromedp.CSS("#member-q")),
			chromedp.SendKeys(chromedp.CSS("#member-q"), query))
		mustLoad(t, ctx, chromedp.KeyEvent(kb.Enter))
	}
	search("JANEDOE@")
	if at := mustRun(t, ctx, chromedp.Location()); at !=
		base+"/audience/cart_abandonment?q=JANEDOE%40#members" {
		t.Errorf("search landed at %s", at)
	}
	if rows := mustRows(t, ctx, "table.members"); len(rows) != 1 ||
		rows[0][0] != "janedoe@example.com" {
		t.Errorf("search JANEDOE@ found %q, want Jane", rows)
	}
	if text := mustText(t, ctx, "#members"); !strings.Contains(text, "Found 1; showing 1–1 of 1.") {
		t.Errorf("search count: %q", text)
	}

	for _, query := range []string{"%", "jane_doe"} {
		search(query)
		text := mustText(t, ctx, "#members")
		if !strings.Contains(text, "No member's email or user_id contains “"+query+"”.") {
			t.Errorf("search %q: %q, want the no-match message", query, text)
		}
	}
	mustLoad(t, ctx, chromedp.Click(chromedp.CSS(
		`#members a[href="/audience/cart_abandonment#members"]`)))
	if rows := mustRows(t, ctx, "table.members"); len(rows) != 1 {
		t.Errorf("show all: %q", rows)
	}
}

// checkColumnsDownload downloads the CSV in the columns layout through the
// page's own control and checks its header.
func checkColumnsDownload(t *testing.T, ctx context.Context) {
	t.Helper()
	mustDo(t, ctx, chromedp.Click(chromedp.CSS(".csv-options summary")),
		chromedp.SetValue(chromedp.CSS("#layout-cart_abandonment"), "columns"),
		chromedp.Click(chromedp.CSS("#bom-cart_abandonment")))
	body := mustDownload(t, ctx, chromedp.Click(chromedp.CSS(".csv-form button")))
	withoutBOM, hadBOM := bytes.CutPrefix(body, []byte("\ufeff"))
	if !hadBOM {
		t.Errorf("the Excel option gave no byte-order mark: %q", body)
	}
	records, err := csv.NewReader(bytes.NewReader(withoutBOM)).ReadAll()
	if err != nil || len(records) != 2 {
		t.Fatalf("columns CSV: %v\n%s", err, body)
	}
	header := records[0]
	if header[0] != "profile_id" || !slices.Contains(header, "email") ||
		!slices.Contains(header, "user_id") || !slices.Contains(header, "anonymous_id") ||
		!slices.Equal(header[len(header)-2:], []string{"abandoned_products", "added_at"}) {
		t.Errorf("columns header = %q", header)
	}
	if row := records[1]; row[slices.Index(header, "email")] != "janedoe@example.com" {
		t.Errorf("columns row = %q", row)
	}
}

// mustDownload runs click and returns the file the browser saved.
func mustDownload(t *testing.T, ctx context.Context, click chromedp.Action[chromedp.Void]) []byte {
	t.Helper()
	dir := t.TempDir()
	_, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior,
		browser.SetDownloadBehaviorParams{
			Behavior:      browser.SetDownloadBehaviorBehaviorAllowAndName,
			DownloadPath:  dir,
			EventsEnabled: new(true),
		})
	if err != nil {
		t.Fatalf("browser: allow downloads: %v", err)
	}
	progress := chromedp.BrowserEvents(ctx, browser.DownloadProgress)
	mustDo(t, ctx, click)
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("browser: wait for download: %v", err)
		}
		switch ev.State {
		case browser.DownloadProgressStateCompleted:
			data, err := os.ReadFile(filepath.Join(dir, ev.GUID))
			if err != nil {
				t.Fatalf("read downloaded file: %v", err)
			}
			return data
		case browser.DownloadProgressStateCanceled:
			t.Fatalf("browser canceled the download")
		}
	}
	t.Fatalf("no download")
	return nil
}

// mustScreenshotsAtBothWidths saves full-page screenshots of the tab at a
// phone's width (375 px) and a large screen's (1280 px) into the test's
// artifact folder, and fails if the page is wider than a phone's screen.
// Each check runs at both widths too, before the screenshot.
func mustScreenshotsAtBothWidths(t *testing.T, ctx context.Context, name string,
	checks ...func()) {
	t.Helper()
	dir := t.ArtifactDir()
	for _, width := range []int64{375, 1280} {
		mustDo(t, ctx, chromedp.EmulateViewport(width, 800))
		overflow := mustRun(t, ctx, chromedp.Evaluate[int](
			`document.documentElement.scrollWidth - window.innerWidth`))
		if overflow > 0 {
			t.Errorf("%s at %d px is %d px too wide: it scrolls sideways", name, width, overflow)
		}
		for _, check := range checks {
			check()
		}
		shot := mustRun(t, ctx, chromedp.FullScreenshot(100))
		config, err := png.DecodeConfig(bytes.NewReader(shot))
		if err != nil || int64(config.Width) != width || config.Height < 300 {
			t.Errorf("%s at %d px: a %dx%d screenshot (%v)", name, width, config.Width,
				config.Height, err)
		}
		file := filepath.Join(dir, name+"-"+strconv.FormatInt(width, 10)+".png")
		if err := os.WriteFile(file, shot, 0o644); err != nil {
			t.Fatalf("save screenshot: %v", err)
		}
	}
	mustDo(t, ctx, chromedp.EmulateViewport(1280, 800))
}

func TestConsoleAudiencesBeforeTheFirstRun(t *testing.T) {
	base := mustUncomputedConsoleServer(t)
	ctx := mustBrowser(t, base)
	mustVisit(t, ctx, base+"/login")
	mustSignIn(t, ctx, browserToken)

	for _, row := range mustRows(t, ctx, "table.audiences") {
		if !strings.Contains(row[1], "not computed yet") || !strings.Contains(row[3],
			"Never run yet.") || strings.Contains(row[4], "Download CSV") {
			t.Errorf("an audience never run reads %q", row)
		}
	}
	mustBeAccessible(t, ctx)

	mustVisit(t, ctx, base+"/audience/shoe_reorder")
	for selector, want := range map[string]string{
		"#members":                             "Not computed yet: it runs in ",
		`section[aria-labelledby="changes-h"]`: "No one has entered or left yet.",
		`section[aria-labelledby="runs-h"]`:    "It has not run yet: it runs in ",
	} {
		if text := mustText(t, ctx, selector); !strings.Contains(text, want) ||
			!strings.Contains(mustText(t, ctx, "main"), "Run now") {
			t.Errorf("%s reads %q, want %q and a Run now button", selector, text, want)
		}
	}
	mustBeAccessible(t, ctx)
}

// mustUncomputedConsoleServer serves the console over an empty database
// whose audiences never ran, with the server's clock at the seed journey's
// time, and returns its base URL.
func mustUncomputedConsoleServer(t *testing.T) string {
	t.Helper()
	db := sqltest.MustOpen(t)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	runner := audiences.NewRunner(db, audiences.WithBuiltins(nil), seedEvaluatedAt, log)
	auth, _, err := web.EnsureToken(t.Context(), db, browserToken, time.Now)
	if err != nil {
		t.Fatalf("ensure token: %v", err)
	}
	site := web.NewServer(runner, resolver.NewProfiles(db), auth, "", log)
	site.SetClock(seedEvaluatedAt)

	gin.SetMode(gin.ReleaseMode)
	router := gin.New()
	router.Use(httpx.Recover(log))
	site.Register(router)
	server := httptest.NewServer(router) // listens on 127.0.0.1 only
	t.Cleanup(server.Close)
	return server.URL
}
