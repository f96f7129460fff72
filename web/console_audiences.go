package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/audiences"
	"github.com/knit-cdp/knit/resolver"
)

// What the audience pages show at most.
const (
	chartRuns      = 30 // runs in a size-over-time chart
	runsShown      = 30 // runs in an audience's run history
	changesShown   = 20 // entries and exits on an audience's page
	membersPerPage = 50
	maxMemberPage  = 1_000_000
)

// registerAudiencePages adds the audience pages of the console.
func (c *console) registerAudiencePages(signedIn *gin.RouterGroup) {
	signedIn.GET("/", c.audiences)
	signedIn.GET("/audience/:name", c.audience)
	signedIn.POST("/run/:name", c.runNow)
}

// audiencesData is what the audiences list shows: every audience.
type audiencesData struct {
	Audiences []audienceCard
}

// audienceCard is one audience as the list shows it, and as its own page
// starts.
type audienceCard struct {
	Name         string
	Description  string
	Schedule     string
	ScheduleText string
	// Computed is false before the first successful run; Current is then
	// the zero Run.
	Computed bool
	Current  audiences.Run
	// LastRun is the latest run whatever its outcome; nil when it never ran.
	LastRun *audiences.Run
	NextRun time.Time
	Chart   sizeChart
	// CSRF is the token the Run now form posts.
	CSRF string
	// Back is the page Run now returns to; empty returns to the list.
	Back string
}

// Failing reports whether the latest run did not produce the result shown.
func (a audienceCard) Failing() bool {
	return a.LastRun != nil && (a.LastRun.Status == audiences.StatusFailed ||
		a.LastRun.Status == audiences.StatusAborted)
}

func (c *console) audiences(ctx *gin.Context) {
	var data audiencesData
	for _, def := range c.server.runner.Definitions() {
		card, err := c.audienceCard(ctx.Request.Context(), def, 120)
		if err != nil {
			c.pageFailed(ctx, "list audiences", err)
			return
		}
		card.CSRF = csrfToken(ctx)
		data.Audiences = append(data.Audiences, card)
	}
	c.render(ctx, http.StatusOK, "audiences", page{Title: "Audiences", SignedIn: true,
		Nav: "audiences", Data: data})
}

// audienceCard reads what the list shows of one audience; chartHeight is
// the height of its size chart in pixels.
func (c *console) audienceCard(ctx context.Context, def audiences.Definition,
	chartHeight int) (audienceCard, error) {
	card := audienceCard{Name: def.Name, Description: def.Description,
		Schedule: def.Schedule, ScheduleText: def.ScheduleSummary()}
	if card.Schedule == "" {
		card.Schedule = audiences.DefaultSchedule
	}
	if err := c.readRuns(ctx, &card); err != nil {
		return card, fmt.Errorf("audience %s: %w", def.Name, err)
	}
	next, err := def.NextRun(c.server.now())
	if err != nil {
		return card, err
	}
	history, err := c.server.runner.SizeHistory(ctx, def.Name, chartRuns)
	if err != nil {
		return card, fmt.Errorf("audience %s: %w", def.Name, err)
	}
	card.NextRun = next
	card.Chart = newSizeChart("size-"+def.Name, history, chartHeight)
	return card, nil
}

// readRuns fills in the card's current result and latest run, each left
// unset when there is none yet.
func (c *console) readRuns(ctx context.Context, card *audienceCard) error {
	current, err := c.server.runner.CurrentRun(ctx, card.Name)
	switch {
	case err == nil:
		card.Computed, card.Current = true, current
	case resolver.ErrorCode(err) != resolver.ENotFound:
		return err
	}
	last, err := c.server.runner.LastRun(ctx, card.Name)
	switch {
	case err == nil:
		card.LastRun = &last
	case resolver.ErrorCode(err) != resolver.ENotFound:
		return err
	}
	return nil
}

func (c *console) pageFailed(ctx *gin.Context, what string, err error) {
	c.server.log.ErrorContext(ctx.Request.Context(), what, "path", ctx.Request.URL.Path, "error", err)
	ctx.String(http.StatusInternalServerError, "internal error")
}

// audienceData is what one audience's page shows.
type audienceData struct {
	audienceCard
	// Missing is true when no audience has the name asked for.
	Missing  bool
	Summary  string
	TimeZone string
	YAML     string
	// AttrLabels head the member list's attribute columns.
	AttrLabels []string
	Members    memberList
	Changes    []changeView
	Runs       []runView
}

func (c *console) audience(ctx *gin.Context) {
	name := ctx.Param("name")
	def, err := c.server.runner.Definition(name)
	if err != nil {
		c.render(ctx, http.StatusNotFound, "audience", page{Title: "No such audience",
			SignedIn: true, Nav: "audiences",
			Data: audienceData{Missing: true, audienceCard: audienceCard{Name: name}}})
		return
	}
	data, err := c.audienceData(ctx, def)
	if err != nil {
		c.pageFailed(ctx, "show audience", err)
		return
	}
	c.render(ctx, http.StatusOK, "audience", page{Title: def.Name, SignedIn: true,
		Nav: "audiences", Data: data})
}

func (c *console) audienceData(ctx *gin.Context, def audiences.Definition) (audienceData,
	error) {
	reqCtx := ctx.Request.Context()
	card, err := c.audienceCard(reqCtx, def, 200)
	if err != nil {
		return audienceData{}, err
	}
	card.CSRF = csrfToken(ctx)
	card.Back = "/audience/" + def.Name
	data := audienceData{audienceCard: card, Summary: def.Summary(),
		TimeZone: def.TimeZone()}
	for _, name := range def.Attributes() {
		data.AttrLabels = append(data.AttrLabels, attrLabel(name))
	}
	if data.YAML, err = def.DisplayYAML(); err != nil {
		return data, fmt.Errorf("audience %s: %w", def.Name, err)
	}
	if data.Members, err = c.memberList(ctx, def, card.Computed); err != nil {
		return data, err
	}
	if data.Changes, err = c.recentChanges(reqCtx, def); err != nil {
		return data, err
	}
	runs, err := c.server.runner.Runs(reqCtx, def.Name, runsShown)
	if err != nil {
		return data, fmt.Errorf("audience %s: %w", def.Name, err)
	}
	for _, run := range runs {
		data.Runs = append(data.Runs, runView{Run: run, Took: tookText(run)})
	}
	return data, nil
}

// memberList is one page of an audience's members, maybe of a search.
type memberList struct {
	Query   string
	Members []memberView
	Total   int
	// From and To number the members of this page, from 1.
	From, To int
	// Page counts from 1; Pages is 0 when nothing is found.
	Page, Pages       int
	PrevURL, NextURL  string
	FirstURL, AllURL  string
	Searching, Beyond bool
}

// memberView is one member as the member list shows them.
type memberView struct {
	ProfileID  int64
	Email      string
	UserID     string
	Attributes []attrView
}

// maxQuery bounds a member search, in bytes.
const maxQuery = 200

func (c *console) memberList(ctx *gin.Context, def audiences.Definition,
	computed bool) (memberList, error) {
	query := strings.TrimSpace(ctx.Query("q"))
	if len(query) > maxQuery {
		query = strings.ToValidUTF8(query[:maxQuery], "")
	}
	list := memberList{Query: query, Searching: query != "",
		Page: pageNumber(ctx.Query("page"))}
	base := "/audience/" + url.PathEscape(def.Name)
	list.AllURL = base + "#members"
	if !computed {
		return list, nil
	}
	offset := (list.Page - 1) * membersPerPage
	found, err := c.server.runner.SearchMembers(ctx.Request.Context(), def.Name,
		list.Query, offset, membersPerPage)
	if err != nil {
		return list, fmt.Errorf("audience %s: %w", def.Name, err)
	}
	for _, m := range found.Members {
		list.Members = append(list.Members, newMemberView(m, def.Attributes()))
	}
	list.paginate(base, offset, found.Total)
	return list, nil
}

// paginate sets the counts and links of a page that starts at offset, out
// of total members found.
func (l *memberList) paginate(base string, offset, total int) {
	l.Total = total
	l.Pages = (total + membersPerPage - 1) / membersPerPage
	l.Beyond = l.Page > l.Pages && total > 0
	l.From, l.To = offset+1, offset+len(l.Members)
	link := func(n int) string { return memberPageURL(base, l.Query, n) }
	l.FirstURL = link(1)
	if l.Page > 1 && !l.Beyond {
		l.PrevURL = link(l.Page - 1)
	}
	if l.Page < l.Pages {
		l.NextURL = link(l.Page + 1)
	}
}

// pageNumber reads a page number from a query; anything else is page 1.
func pageNumber(text string) int {
	n, err := strconv.Atoi(text)
	if err != nil || n < 1 {
		return 1
	}
	return min(n, maxMemberPage)
}

func memberPageURL(base, query string, page int) string {
	values := url.Values{}
	if query != "" {
		values.Set("q", query)
	}
	if page > 1 {
		values.Set("page", strconv.Itoa(page))
	}
	if len(values) == 0 {
		return base + "#members"
	}
	return base + "?" + values.Encode() + "#members"
}

// Label names the member for a link: their email, else their user_id,
// else their profile.
func (m memberView) Label() string {
	switch {
	case m.Email != "":
		return m.Email
	case m.UserID != "":
		return m.UserID
	}
	return fmt.Sprintf("Profile %d", m.ProfileID)
}

func newMemberView(m audiences.Member, attrs []string) memberView {
	view := memberView{ProfileID: m.ProfileID, Email: m.Email, UserID: m.UserID}
	for _, name := range attrs {
		view.Attributes = append(view.Attributes, newAttrView(name, m.Attributes[name]))
	}
	return view
}

// changeView is one entry or exit as an audience's page lists it.
type changeView struct {
	Entered bool
	At      time.Time
	memberView
}

func (c *console) recentChanges(ctx context.Context,
	def audiences.Definition) ([]changeView, error) {
	changes, err := c.server.runner.RecentChanges(ctx, def.Name, changesShown)
	if err != nil {
		return nil, fmt.Errorf("audience %s: %w", def.Name, err)
	}
	views := make([]changeView, 0, len(changes))
	for _, change := range changes {
		at, err := time.Parse(time.RFC3339, change.At)
		if err != nil {
			return nil, fmt.Errorf("read time of change %s: %w", change.Cursor, err)
		}
		views = append(views, changeView{Entered: change.Change == audiences.Entered,
			At: at, memberView: newMemberView(change.Member, def.Attributes())})
	}
	return views, nil
}

// runView is one run as an audience's run history lists it.
type runView struct {
	audiences.Run
	// Took says how long the run took; "" while it runs.
	Took string
}

// Saved reports whether the run saved a result, whose size and changes
// it then counted.
func (r runView) Saved() bool { return r.Status == audiences.StatusOK }

// tookText says how long a run took: "35 ms", "2.4 s", "12 s", "3 min 5 s".
func tookText(run audiences.Run) string {
	if run.FinishedAt.IsZero() {
		return ""
	}
	d := run.FinishedAt.Sub(run.StartedAt)
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + " ms"
	case d < 10*time.Second:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + " s"
	}
	return fmt.Sprintf("%d min %d s", int(d.Minutes()), int(d.Seconds())%60)
}

// attrView is one attribute of a member, ready to show: a time (shown
// relative, exact in its tooltip) or text.
type attrView struct {
	Name  string
	Label string
	Text  string
	Time  time.Time
}

func newAttrView(name string, value any) attrView {
	view := attrView{Name: name, Label: attrLabel(name)}
	if text, ok := value.(string); ok {
		if at, err := time.Parse(time.RFC3339, text); err == nil {
			view.Time = at
			return view
		}
	}
	view.Text = attrText(value)
	return view
}

// attrLabel turns an attribute name into a column heading:
// abandoned_products reads "Abandoned products".
func attrLabel(name string) string {
	words := strings.NewReplacer("_", " ", "-", " ").Replace(name)
	if words == "" {
		return words
	}
	return strings.ToUpper(words[:1]) + words[1:]
}

// attrText writes an attribute value for people: lists joined with
// commas, numbers grouped in thousands, objects as JSON.
func attrText(value any) string {
	switch v := value.(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return groupNumber(v.String())
	case float64:
		return groupNumber(strconv.FormatFloat(v, 'f', -1, 64))
	case []any:
		parts := make([]string, len(v))
		for i, item := range v {
			parts[i] = attrText(item)
		}
		return strings.Join(parts, ", ")
	case map[string]any:
		encoded, _ := json.Marshal(v)
		return string(encoded)
	}
	return fmt.Sprint(value)
}

// groupNumber groups the whole part of a decimal number in thousands:
// 12345.5 reads 12,345.5. Text that is no plain decimal stays as it is.
func groupNumber(text string) string {
	whole, fraction, hasFraction := strings.Cut(text, ".")
	n, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return text
	}
	grouped := groupDigits(n)
	if whole == "-0" {
		grouped = "-0"
	}
	if hasFraction {
		return grouped + "." + fraction
	}
	return grouped
}

// sizeChart is a chart of an audience's size over its latest runs, for
// charts.js, with a text summary for people who cannot see it.
type sizeChart struct {
	ID    string
	Label string
	Spec  chartSpec
	// Drawable is true once runs span two different times; before, the
	// summary says it all.
	Drawable bool
}

// newSizeChart draws runs, oldest first, as a line of members over the
// times they were evaluated at, in time order: a run evaluated at a clock
// someone chose (--clock) can come before the run made ahead of it, and the
// chart library draws a line only over rising times, and an axis only
// between two different ones.
func newSizeChart(id string, runs []audiences.Run, height int) sizeChart {
	points := slices.Clone(runs)
	slices.SortStableFunc(points, func(a, b audiences.Run) int {
		return a.EvaluatedAt.Compare(b.EvaluatedAt)
	})

	spec := chartSpec{X: make([]int64, len(points)), Height: height,
		Series: []chartSeries{{Label: "Members", Values: make([]int64, len(points))}}}
	for i, run := range points {
		spec.X[i], spec.Series[0].Values[i] = run.EvaluatedAt.Unix(), int64(run.Size)
	}
	drawable := len(spec.X) > 1 && spec.X[0] != spec.X[len(spec.X)-1]
	return sizeChart{ID: id, Label: sizeSummary(runs), Spec: spec, Drawable: drawable}
}

// sizeSummary says in words what the size chart shows.
func sizeSummary(runs []audiences.Run) string {
	switch len(runs) {
	case 0:
		return "No size history yet: the chart fills in as the audience runs."
	case 1:
		return fmt.Sprintf("Members: %s at the one run so far.", groupDigits(runs[0].Size))
	}
	low, high := runs[0].Size, runs[0].Size
	for _, run := range runs {
		low, high = min(low, run.Size), max(high, run.Size)
	}
	return fmt.Sprintf("Members over the last %d runs: from %s to %s; lowest %s, "+
		"highest %s.", len(runs), groupDigits(runs[0].Size),
		groupDigits(runs[len(runs)-1].Size), groupDigits(low), groupDigits(high))
}
