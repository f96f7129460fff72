package web_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/audiences"
	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
	"github.com/knit-cdp/knit/web"
	"github.com/knit-cdp/knit/web/httpx"
)

// The person pages' browser tests: Jane's profile page read as one story,
// paging through her timeline, and the search results for a value that
// more than one person holds.

// twoMoreMessages adds two people to the seed journey who both hold the
// value "1001": Alex Kim as a user id, Sam Lee as an anonymous id.
func twoMoreMessages() []string {
	return []string{
		`{"messageId":"alex-1","type":"identify","userId":"1001",` +
			`"timestamp":"2026-10-01T10:00:00Z","context":{"app":"SegKicks"},` +
			`"traits":{"email":"alex.kim@example.com","first_name":"Alex","last_name":"Kim"}}`,
		`{"messageId":"sam-1","type":"track","event":"App Opened","anonymousId":"1001",` +
			`"timestamp":"2026-10-02T11:30:00Z","context":{"app":"SegRuns"}}`,
	}
}

// mergedMessages make two people who turn out to be one: Robin's phone and
// Robin's account, tied by a sign-in.
func mergedMessages() []string {
	return []string{
		`{"messageId":"robin-1","type":"track","event":"App Opened","anonymousId":"robin-a",` +
			`"timestamp":"2026-10-03T08:00:00Z","context":{"app":"SegRuns"}}`,
		`{"messageId":"robin-2","type":"identify","userId":"robin",` +
			`"timestamp":"2026-10-03T08:05:00Z","traits":{"name":"Robin Roe"}}`,
		`{"messageId":"robin-3","type":"identify","userId":"robin","anonymousId":"robin-a",` +
			`"timestamp":"2026-10-03T08:10:00Z","context":{"app":"SegRuns"}}`,
	}
}

// mustPeopleServer serves the console over the seed journey plus extra
// messages and returns its base URL, as mustConsoleServer does.
func mustPeopleServer(t *testing.T, extra []string) string {
	t.Helper()
	ctx := t.Context()
	db := sqltest.MustOpen(t)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	clock := seedEvaluatedAt

	messages := mustSeedMessages(t, clock())
	env := resolver.Envelope{Source: "test", ReceivedAt: clock()}
	for i, line := range extra {
		m, err := resolver.ParseMessage([]byte(line), env)
		if err != nil {
			t.Fatalf("parse extra message %d: %v", i+1, err)
		}
		messages = append(messages, m)
	}
	store := resolver.NewStore(db, resolver.DefaultRules(), clock, log)
	if _, err := store.Ingest(ctx, messages); err != nil {
		t.Fatalf("ingest: %v", err)
	}
	runner := audiences.NewRunner(db, audiences.WithBuiltins(nil), clock, log)
	for _, def := range runner.Definitions() {
		if run, err := runner.Run(ctx, def.Name); err != nil || run.Status != audiences.StatusOK {
			t.Fatalf("run audience %s: status %q, error %v", def.Name, run.Status, err)
		}
	}
	auth, _, err := web.EnsureToken(ctx, db, browserToken, time.Now)
	if err != nil {
		t.Fatalf("ensure token: %v", err)
	}
	site := web.NewServer(runner, resolver.NewProfiles(db), auth, "", log)
	site.SetAdmin(store)

	gin.SetMode(gin.ReleaseMode)
	router := gin.New()
	router.Use(httpx.Recover(log))
	site.Register(router)
	server := httptest.NewServer(router) // listens on 127.0.0.1 only
	t.Cleanup(server.Close)
	return server.URL
}

// mustJanesPage signs in at base and opens Jane's page by her email.
func mustJanesPage(t *testing.T, ctx context.Context, base string) string {
	t.Helper()
	mustVisit(t, ctx, base+"/login")
	mustSignIn(t, ctx, browserToken)
	status, at := mustSearch(t, ctx, "janedoe@example.com")
	if status != http.StatusOK || !regexp.MustCompile(`/people/[0-9]+$`).MatchString(at) {
		t.Fatalf("search Jane: status %d at %s", status, at)
	}
	return at
}

// checkJanesProfile checks the profile page the tab shows is Jane's, across
// both phones and both apps.
func checkJanesProfile(t *testing.T, ctx context.Context) {
	t.Helper()
	if h1 := mustText(t, ctx, "main h1"); h1 != "Jane Doe" {
		t.Errorf("profile heading = %q, want Jane Doe", h1)
	}
	want := "69 events across 2 apps (SegKicks, SegRuns) on 2 devices"
	if summary := mustText(t, ctx, ".person-summary"); summary != want {
		t.Errorf("profile summary = %q, want %q", summary, want)
	}
	checkJanesIdentifiers(t, ctx)
	checkJanesTraits(t, ctx)
	checkJanesAudiences(t, ctx)
	checkJanesTimeline(t, ctx)
	checkJanesHistory(t, ctx)
}

// identifierGroup is one row group of the identifiers table as the tab
// shows it.
type identifierGroup struct {
	Label string     `json:"label"`
	Rows  [][]string `json:"rows"`
}

func mustIdentifierGroups(t *testing.T, ctx context.Context) []identifierGroup {
	t.Helper()
	return mustRun(t, ctx, chromedp.Evaluate[[]identifierGroup](`Array.from(
		document.querySelectorAll("#identifiers tbody"), body => ({
			label: body.querySelector("tr.group th").firstChild.textContent.trim(),
			rows: Array.from(body.querySelectorAll("tr:not(.group)"),
				row => Array.from(row.cells, cell => cell.innerText.replace(/\s+/g, " ").trim())),
		}))`))
}

func checkJanesIdentifiers(t *testing.T, ctx context.Context) {
	t.Helper()
	groups := mustIdentifierGroups(t, ctx)
	var labels []string
	values := map[string][]string{}
	first := map[string]string{}
	for _, g := range groups {
		labels = append(labels, g.Label)
		for _, row := range g.Rows {
			values[row[0]] = append(values[row[0]], row[1])
			first[row[1]] = row[2]
		}
	}
	wantLabels := []string{"Emails", "User ids", "Anonymous ids", "Device ids"}
	if !slices.Equal(labels, wantLabels) {
		t.Errorf("identifier groups = %q, want %q", labels, wantLabels)
	}
	wantValues := map[string][]string{
		"user_id": {"abc123def"}, "email": {"janedoe@example.com"},
		"anonymous_id": {"anon_123", "anon_456", "anon_789"},
		"ios.id":       {"ios_abc123"}, "android.id": {"and_1a2b3c4d"},
	}
	for kind, want := range wantValues {
		if !slices.Equal(values[kind], want) {
			t.Errorf("identifiers %s = %q, want %q", kind, values[kind], want)
		}
	}
	for value, where := range map[string]string{
		"anon_123": "SegKicks on iOS ios_abc123", "anon_456": "SegKicks on Android and_1a2b3c4d",
		"anon_789": "SegRuns on Android and_1a2b3c4d", "abc123def": "SegKicks on iOS ios_abc123",
	} {
		if !strings.HasSuffix(first[value], where) || !strings.Contains(first[value], "ago") {
			t.Errorf("%s first seen %q, want a time and %q", value, first[value], where)
		}
	}
}

func checkJanesTraits(t *testing.T, ctx context.Context) {
	t.Helper()
	traits := map[string]string{}
	for _, row := range mustRows(t, ctx, "#traits") {
		traits[row[0]] = row[1]
	}
	for key, value := range map[string]string{
		"email": "janedoe@example.com", "first_name": "Jane", "last_name": "Doe",
	} {
		if traits[key] != value {
			t.Errorf("trait %s shows %q, want %q", key, traits[key], value)
		}
	}
}

// membership is one audience card as the tab shows it.
type membership struct {
	Name       string            `json:"name"`
	Link       string            `json:"link"`
	Attributes map[string]string `json:"attributes"`
}

func checkJanesAudiences(t *testing.T, ctx context.Context) {
	t.Helper()
	cards := mustRun(t, ctx, chromedp.Evaluate[[]membership](`Array.from(
		document.querySelectorAll("#audiences .membership"), card => ({
			name: card.querySelector("h3").innerText.trim(),
			link: card.querySelector("h3 a").getAttribute("href"),
			attributes: Object.fromEntries(Array.from(card.querySelectorAll("dt"),
				dt => [dt.innerText.trim(), dt.nextElementSibling.innerText.trim()])),
		}))`))
	if len(cards) != 2 || cards[0].Name != "cart_abandonment" || cards[1].Name != "shoe_reorder" {
		t.Fatalf("audiences = %+v, want cart_abandonment and shoe_reorder", cards)
	}
	for _, card := range cards {
		if card.Link != "/audience/"+card.Name {
			t.Errorf("%s links to %q", card.Name, card.Link)
		}
	}
	if got := cards[0].Attributes["Abandoned products"]; got !=
		"ShoeC (shoe-c), Running Socks (sock-1)" {
		t.Errorf("abandoned products = %q, want ShoeC and the socks", got)
	}
	if got := cards[0].Attributes["Added at"]; !strings.Contains(got, "26 Nov 2026 20:03 UTC") {
		t.Errorf("added at = %q, want a time with its zone", got)
	}
	if got := cards[1].Attributes; got["Shoe"] != "ShoeD (shoe-d)" ||
		got["Miles since purchase"] != "336.4" {
		t.Errorf("shoe reorder attributes = %v, want ShoeD and 336.4 miles", got)
	}
}

// timelineEvent is one event of the timeline as the tab shows it.
type timelineEvent struct {
	Day    string `json:"day"`
	When   string `json:"when"`
	Name   string `json:"name"`
	App    string `json:"app"`
	Device string `json:"device"`
	Props  string `json:"props"`
}

func mustTimeline(t *testing.T, ctx context.Context) []timelineEvent {
	t.Helper()
	return mustRun(t, ctx, chromedp.Evaluate[[]timelineEvent](`Array.from(
		document.querySelectorAll("#timeline li.event"), li => {
			const text = sel => (li.querySelector(sel) || {innerText: ""}).innerText
				.replace(/\s+/g, " ").trim();
			return {
				day: li.parentElement.previousElementSibling.querySelector("time")
					.getAttribute("datetime"),
				when: li.querySelector(".event-time time").getAttribute("datetime"),
				name: text(".event-name"), app: text(".app-tag"), device: text(".device"),
				props: text(".props"),
			};
		})`))
}

func checkJanesTimeline(t *testing.T, ctx context.Context) {
	t.Helper()
	events := mustTimeline(t, ctx)
	if len(events) != 50 {
		t.Fatalf("the timeline's first page shows %d events, want 50", len(events))
	}
	seen := map[string]bool{}
	for i, e := range events {
		seen[e.Name+" in "+e.App+" on "+e.Device] = true
		if !strings.HasPrefix(e.When, e.Day) {
			t.Errorf("event at %s is under the day %s", e.When, e.Day)
		}
		if i > 0 && e.When > events[i-1].When {
			t.Errorf("event %d at %s is newer than the one above it", i, e.When)
		}
	}
	for _, want := range []string{
		"Product Added in SegKicks on iOS ios_abc123",
		"Order Completed in SegKicks on Android and_1a2b3c4d",
		"Workout Completed in SegRuns on Android and_1a2b3c4d",
	} {
		if !seen[want] {
			t.Errorf("the timeline lacks %s; it shows %v", want, seen)
		}
	}
	if e := events[0]; e.Name != "Order Completed" ||
		e.Props != "Product ShoeC Revenue $150.00" {
		t.Errorf("newest event = %+v, want the ShoeC order with its revenue", e)
	}
	if e := events[4]; e.Name != "Workout Completed" ||
		e.Props != "Distance 9.7 km Duration 55 min" {
		t.Errorf("fifth event = %+v, want the 9.7 km run", e)
	}
	legend := mustText(t, ctx, "#timeline .legend")
	for _, want := range []string{"SegKicks", "SegRuns"} {
		if !strings.Contains(legend, want) {
			t.Errorf("the legend %q lacks %s", legend, want)
		}
	}
}

func checkJanesHistory(t *testing.T, ctx context.Context) {
	t.Helper()
	history := mustText(t, ctx, "#history")
	for _, want := range []string{"created for message jane-001",
		"Added user_id abc123def from message jane-006"} {
		if !strings.Contains(history, want) {
			t.Errorf("identity history lacks %q:\n%s", want, history)
		}
	}
}

func TestConsolePersonPageReadsAsOnePerson(t *testing.T) {
	base := mustConsoleServer(t)
	ctx := mustBrowser(t, base)
	jane := mustJanesPage(t, ctx, base)
	for _, query := range []string{"anon_456", "and_1a2b3c4d", "ios_abc123", "ABC123DEF"} {
		if _, at := mustSearch(t, ctx, query); at != jane {
			t.Errorf("search %q lands at %s, want Jane's page %s", query, at, jane)
		}
	}
	checkJanesProfile(t, ctx)
	mustBeAccessible(t, ctx)
}

func TestConsolePersonTimelinePagesToOlderEvents(t *testing.T) {
	base := mustConsoleServer(t)
	ctx := mustBrowser(t, base)
	jane := mustJanesPage(t, ctx, base)
	newest := mustTimeline(t, ctx)

	// The "Older events" link is reached and followed with the keyboard.
	mustTabTo(t, ctx, "Older events")
	status, at := mustLoad(t, ctx, chromedp.KeyEvent("\r"))
	if status != http.StatusOK || !strings.HasPrefix(at, jane+"?older=") {
		t.Fatalf("older events: status %d at %s", status, at)
	}
	older := mustTimeline(t, ctx)
	if len(older) != 19 {
		t.Fatalf("the older page shows %d events, want 19", len(older))
	}
	if older[0].When >= newest[len(newest)-1].When {
		t.Errorf("the older page starts at %s, not before %s", older[0].When,
			newest[len(newest)-1].When)
	}
	last := older[len(older)-1]
	if last.Name != "App Opened" || last.App != "SegKicks" || last.Device != "iOS ios_abc123" ||
		last.When != "2026-08-03T09:00:00Z" {
		t.Errorf("the oldest event = %+v, want Jane opening SegKicks on her iPhone", last)
	}
	if n := mustRun(t, ctx, chromedp.Evaluate[int](
		`document.querySelectorAll("a[rel=next]").length`)); n != 0 {
		t.Errorf("the last page still links to older events")
	}
	mustBeAccessible(t, ctx)

	mustLoad(t, ctx, chromedp.Click(chromedp.CSS(`a[href$="#timeline"].back`)))
	if got := mustTimeline(t, ctx); len(got) != 50 || got[0] != newest[0] {
		t.Errorf("back to the newest: %d events starting %+v", len(got), got)
	}

	mustVisit(t, ctx, jane+"?older=not-a-cursor")
	if notice := mustText(t, ctx, ".notice"); !strings.Contains(notice, "not valid") {
		t.Errorf("a broken cursor's notice = %q", notice)
	}
}

// mustTabTo presses Tab until the focused element reads text.
func mustTabTo(t *testing.T, ctx context.Context, text string) {
	t.Helper()
	for range 200 {
		mustDo(t, ctx, chromedp.KeyEvent("\t"))
		focused := mustRun(t, ctx, chromedp.Evaluate[string](
			`document.activeElement ? document.activeElement.innerText.trim() : ""`))
		if focused == text {
			return
		}
	}
	t.Fatalf("Tab never reached %q", text)
}

func TestConsoleSearchListsEveryoneWhoHoldsAValue(t *testing.T) {
	base := mustPeopleServer(t, append(twoMoreMessages(), mergedMessages()...))
	ctx := mustBrowser(t, base)
	mustVisit(t, ctx, base+"/login")
	mustSignIn(t, ctx, browserToken)

	status, at := mustSearch(t, ctx, "1001")
	if status != http.StatusOK || at != base+"/people?q=1001" {
		t.Fatalf("search 1001: status %d at %s, want the results", status, at)
	}
	rows := mustRows(t, ctx, "table.candidates")
	if len(rows) != 2 {
		t.Fatalf("results = %q, want Alex and Sam", rows)
	}
	alex, sam := rows[0], rows[1]
	if !strings.HasPrefix(alex[0], "Alex Kim") || alex[1] != "alex.kim@example.com" ||
		alex[2] != "1001" || alex[3] != "user_id 1001" ||
		!strings.Contains(alex[4], "1 Oct 2026") {
		t.Errorf("Alex's row = %q", alex)
	}
	if !strings.HasPrefix(sam[0], "Unnamed person") || sam[1] != "none" ||
		sam[3] != "anonymous_id 1001" || !strings.Contains(sam[4], "2 Oct 2026 11:30 UTC") {
		t.Errorf("Sam's row = %q", sam)
	}
	mustBeAccessible(t, ctx)

	status, at = mustLoad(t, ctx, chromedp.Click(chromedp.CSS("table.candidates a")))
	if h1 := mustText(t, ctx, "main h1"); status != http.StatusOK || h1 != "Alex Kim" {
		t.Errorf("the first result opens %s: status %d, heading %q", at, status, h1)
	}
	if text := mustText(t, ctx, "#audiences"); !strings.Contains(text, "Not in any audience") {
		t.Errorf("Alex's audiences say %q, want the empty state", text)
	}

	mustSearch(t, ctx, "nobody@example.com")
	if text := mustText(t, ctx, "main"); !strings.Contains(text, "ios.id:ios_abc123") {
		t.Errorf("the empty search page gives no example: %q", text)
	}
	mustBeAccessible(t, ctx)

	status, _ = mustVisit(t, ctx, base+"/people/987654")
	h1 := mustText(t, ctx, "main h1")
	if status != http.StatusNotFound || h1 != "No person 987654" {
		t.Errorf("a missing person: status %d, heading %q", status, h1)
	}
	mustBeAccessible(t, ctx)
	status, _ = mustVisit(t, ctx, base+"/people/robin")
	h1 = mustText(t, ctx, "main h1")
	if status != http.StatusNotFound || h1 != "No person robin" {
		t.Errorf("a person page by name: status %d, heading %q", status, h1)
	}

	// Robin's two profiles became one: both addresses open the one left.
	_, robin := mustSearch(t, ctx, "robin")
	for _, id := range []string{"4", "5"} {
		if _, at := mustVisit(t, ctx, base+"/people/"+id); at != robin {
			t.Errorf("profile %s opens %s, want Robin's %s", id, at, robin)
		}
	}
	if h1 := mustText(t, ctx, "main h1"); h1 != "Robin Roe" {
		t.Errorf("Robin's heading = %q", h1)
	}
}

func TestConsolePersonPagesAtPhoneAndDesktopWidths(t *testing.T) {
	base := mustPeopleServer(t, twoMoreMessages())
	ctx := mustBrowser(t, base)
	jane := mustJanesPage(t, ctx, base)
	dir := t.ArtifactDir()
	t.Logf("screenshots in %s (keep them with go test -artifacts)", dir)

	for _, width := range []int64{375, 1280} {
		scale := 1.0
		if width < 800 {
			scale = 3 // a phone's pixel density, as an iPhone's
		}
		mustDo(t, ctx, chromedp.EmulateViewport(width, 812, chromedp.EmulateScale(scale)))
		for name, address := range map[string]string{
			"person": jane, "search": base + "/people?q=1001",
		} {
			mustVisit(t, ctx, address)
			if over := mustRun(t, ctx, chromedp.Evaluate[int64](
				`document.documentElement.scrollWidth - window.innerWidth`)); over > 0 {
				t.Errorf("%s at %d px scrolls sideways by %d px", name, width, over)
			}
			mustBeAccessible(t, ctx)
			mustScreenshot(t, ctx, filepath.Join(dir, fmt.Sprintf("%s-%d.png", name, width)))
		}
	}
}
