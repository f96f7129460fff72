package web

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/resolver"
)

// What the ingestion page shows.
const (
	rejectionsShown  = 50  // the latest refusals listed
	excerptPreview   = 120 // bytes of an excerpt shown before it is opened
	rateChartID      = "ingestion-rate"
	rateChartHeight  = 200
	rateChartSummary = "Events a minute over the last 24 hours, by type"
)

// registerIngestionPages adds the console's ingestion page.
func (c *console) registerIngestionPages(signedIn *gin.RouterGroup) {
	signedIn.GET("/ingestion", c.ingestion)
}

// ingestionView is what the ingestion page shows: the events of the last
// day and the latest refusals.
type ingestionView struct {
	Since, Until time.Time
	Total        int64
	// LastMinute is the start of the latest minute with events; zero when
	// the day had none.
	LastMinute time.Time
	Chart      rateChart
	// Types are the totals table's columns, Sources its rows, TypeTotals
	// its last row.
	Types      []string
	Sources    []sourceTotals
	TypeTotals []int64
	Rejections []rejectionRow
	// MoreRejections is true when older refusals than those listed exist.
	MoreRejections bool
	RetentionDays  int
	WebhookURL     string
	TrackingURL    string
	// WriteKeys is how many write keys the tracking API takes; with none it
	// refuses every request, which the empty page then says.
	WriteKeys int
}

// rateChart is the chart of events a minute, with its summary in words.
type rateChart struct {
	ID, Label string
	Spec      chartSpec
}

// sourceTotals is one source's row of the totals table.
type sourceTotals struct {
	Source string
	Counts []int64 // per type, in the order of ingestionView.Types
	Total  int64
}

// rejectionRow is one refusal as the page lists it.
type rejectionRow struct {
	resolver.Rejection
	// Preview is the start of a long excerpt, shown before it is opened;
	// "" when the excerpt is short enough to show whole.
	Preview string
}

func (c *console) ingestion(ctx *gin.Context) {
	view, err := c.ingestionView(ctx)
	if err != nil {
		c.server.log.ErrorContext(ctx.Request.Context(), "show ingestion",
			"path", ctx.Request.URL.Path, "error", err)
		ctx.String(http.StatusInternalServerError, "internal error")
		return
	}
	c.render(ctx, http.StatusOK, "ingestion", page{Title: "Ingestion", SignedIn: true,
		Nav: "ingestion", Data: view})
}

// ingestionView reads the last day's events and the latest refusals, as
// of the server's clock.
func (c *console) ingestionView(ctx *gin.Context) (ingestionView, error) {
	now := c.server.now()
	rates, err := c.server.profiles.EventRates(ctx.Request.Context(), now)
	if err != nil {
		return ingestionView{}, err
	}
	rejections, err := c.server.profiles.RecentRejections(ctx.Request.Context(), now,
		rejectionsShown+1)
	if err != nil {
		return ingestionView{}, err
	}
	view := newIngestionView(rates)
	view.MoreRejections = len(rejections) > rejectionsShown
	for _, r := range rejections[:min(len(rejections), rejectionsShown)] {
		view.Rejections = append(view.Rejections, newRejectionRow(r))
	}
	base := externalBase(ctx.Request)
	view.WebhookURL, view.TrackingURL = base+"/webhook", base+"/v1/batch"
	view.WriteKeys = c.server.settings.WriteKeys
	return view, nil
}

// newIngestionView lays out a day's counts as the chart and the totals.
func newIngestionView(rates resolver.EventRates) ingestionView {
	view := ingestionView{
		Since: rates.Start, Until: rates.End, Total: rates.Total,
		Types:         rateTypes(rates),
		RetentionDays: int(resolver.RejectionRetention / (24 * time.Hour)),
	}
	view.Chart = newRateChart(rates, view.Types)
	view.Sources, view.TypeTotals = sourceTable(rates, view.Types)
	if last := lastBusyMinute(rates); last >= 0 {
		view.LastMinute = rates.Start.Add(time.Duration(last) * time.Minute)
	}
	return view
}

// rateTypes returns the six call types, and after them in name order any
// other type the day holds.
func rateTypes(rates resolver.EventRates) []string {
	types := resolver.EventTypes()
	var others []string
	for kind := range rates.PerMinute {
		if !slices.Contains(types, kind) {
			others = append(others, kind)
		}
	}
	slices.Sort(others)
	return append(types, others...)
}

// newRateChart draws a line a type, every type always, so each keeps its
// colour from day to day.
func newRateChart(rates resolver.EventRates, types []string) rateChart {
	spec := chartSpec{X: make([]int64, resolver.RateMinutes), Height: rateChartHeight}
	for i := range spec.X {
		spec.X[i] = rates.Start.Add(time.Duration(i) * time.Minute).Unix()
	}
	for _, kind := range types {
		values := rates.PerMinute[kind]
		if values == nil {
			values = make([]int64, resolver.RateMinutes)
		}
		spec.Series = append(spec.Series, chartSeries{Label: kind, Values: values})
	}
	return rateChart{ID: rateChartID, Label: rateSummary(rates, types), Spec: spec}
}

// rateSummary says in words what the chart shows.
func rateSummary(rates resolver.EventRates, types []string) string {
	if rates.Total == 0 {
		return rateChartSummary + ": none."
	}
	var parts []string
	for _, kind := range types {
		if n := sumCounts(rates.PerMinute[kind]); n > 0 {
			parts = append(parts, groupDigits(n)+" "+kind)
		}
	}
	busiest, count := busiestMinute(rates)
	return fmt.Sprintf("%s: %s in all (%s). Busiest minute: %s, with %s.",
		rateChartSummary, groupDigits(rates.Total), strings.Join(parts, ", "),
		rates.Start.Add(time.Duration(busiest)*time.Minute).Format("2 Jan 2006 15:04 MST"),
		pluralEvents(count))
}

func pluralEvents(n int64) string {
	if n == 1 {
		return "1 event"
	}
	return groupDigits(n) + " events"
}

// busiestMinute returns the index of the minute with the most events of
// any type, the earliest on a tie, and its count.
func busiestMinute(rates resolver.EventRates) (int, int64) {
	totals := minuteTotals(rates)
	best := 0
	for i, n := range totals {
		if n > totals[best] {
			best = i
		}
	}
	return best, totals[best]
}

// lastBusyMinute returns the index of the latest minute with events, -1
// when none has.
func lastBusyMinute(rates resolver.EventRates) int {
	totals := minuteTotals(rates)
	for i := len(totals) - 1; i >= 0; i-- {
		if totals[i] > 0 {
			return i
		}
	}
	return -1
}

func minuteTotals(rates resolver.EventRates) []int64 {
	totals := make([]int64, resolver.RateMinutes)
	for _, counts := range rates.PerMinute {
		for i, n := range counts {
			totals[i] += n
		}
	}
	return totals
}

// sourceTable returns a row a source, the busiest first, and the total of
// each type.
func sourceTable(rates resolver.EventRates, types []string) ([]sourceTotals, []int64) {
	var rows []sourceTotals
	totals := make([]int64, len(types))
	for source, byType := range rates.BySource {
		row := sourceTotals{Source: source, Counts: make([]int64, len(types))}
		for i, kind := range types {
			row.Counts[i] = byType[kind]
			row.Total += byType[kind]
			totals[i] += byType[kind]
		}
		rows = append(rows, row)
	}
	slices.SortFunc(rows, func(a, b sourceTotals) int {
		return cmp.Or(cmp.Compare(b.Total, a.Total), strings.Compare(a.Source, b.Source))
	})
	return rows, totals
}

func newRejectionRow(r resolver.Rejection) rejectionRow {
	row := rejectionRow{Rejection: r}
	if len(r.Excerpt) > excerptPreview {
		cut := excerptPreview
		for cut > 0 && !utf8.RuneStart(r.Excerpt[cut]) {
			cut--
		}
		row.Preview = r.Excerpt[:cut] + "…"
	}
	return row
}

func sumCounts(values []int64) int64 {
	var total int64
	for _, v := range values {
		total += v
	}
	return total
}
