package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/resolver"
)

// timelinePageSize is how many events a page of a person's timeline shows.
const timelinePageSize = 50

// registerPersonPages adds the console's search and person pages, with
// unlink and delete.
func (c *console) registerPersonPages(signedIn *gin.RouterGroup) {
	signedIn.GET("/people", c.search)
	signedIn.GET("/people/:id", c.person)
	signedIn.GET("/people/:id/unlink", c.confirmUnlink)
	signedIn.POST("/people/:id/unlink", c.unlink)
	signedIn.GET("/people/:id/delete", c.confirmDelete)
	signedIn.POST("/people/:id/delete", c.delete)
}

// searchView is the Data of the search page: who matched the query, or
// which person could not be found.
type searchView struct {
	Query  string
	Found  string // "2 people"
	People []personSummary
	// NotFound says a person page asked for a profile that is not there:
	// Missing, as the address gave it.
	NotFound bool
	Missing  string
}

// personSummary is one candidate in the search results.
type personSummary struct {
	Profile  int64
	Name     string
	Emails   []string
	UserIDs  []string
	Matched  string // the identifier that matched the query, "type value"
	LastSeen time.Time
}

func (c *console) search(ctx *gin.Context) {
	query := strings.TrimSpace(ctx.Query("q"))
	if query == "" {
		ctx.Redirect(http.StatusSeeOther, "/")
		return
	}
	reqCtx := ctx.Request.Context()
	results, err := c.server.profiles.Search(reqCtx, query)
	if err != nil {
		c.personError(ctx, "search profiles", err)
		return
	}
	if len(results) == 1 {
		ctx.Redirect(http.StatusSeeOther, fmt.Sprintf("/people/%d", results[0]))
		return
	}
	summaries, err := c.server.profiles.Summaries(reqCtx, results)
	if err != nil {
		c.personError(ctx, "summarise search results", err)
		return
	}
	view := searchView{Query: query, Found: countNoun(len(summaries), "person", "people")}
	for _, s := range summaries {
		view.People = append(view.People, candidateFrom(s, query))
	}
	c.render(ctx, http.StatusOK, "search", page{Title: "People matching " + query,
		SignedIn: true, Nav: "people", Query: query, Data: view})
}

func (c *console) personError(ctx *gin.Context, what string, err error) {
	c.server.log.ErrorContext(ctx.Request.Context(), what, "error", err)
	ctx.String(http.StatusInternalServerError, "internal error")
}

// candidateFrom turns a profile's summary into a search result row.
func candidateFrom(s resolver.PersonSummary, query string) personSummary {
	out := personSummary{Profile: s.Profile, Name: displayName(s.NameTraits),
		LastSeen: s.LastSeen}
	for _, id := range s.Identifiers {
		switch id.Type {
		case resolver.TypeEmail:
			out.Emails = append(out.Emails, id.Value)
		case resolver.TypeUserID:
			out.UserIDs = append(out.UserIDs, id.Value)
		}
		if out.Matched == "" && namesIdentifier(id, query) {
			out.Matched = id.Type + " " + id.Value
		}
	}
	return out
}

// namesIdentifier tells whether the search box's text names id: its value in any
// case, or type:value.
func namesIdentifier(id resolver.Identifier, query string) bool {
	query = strings.TrimSpace(query)
	return strings.EqualFold(id.Value, query) || strings.EqualFold(id.String(), query)
}

func (c *console) person(ctx *gin.Context) {
	profile, err := strconv.ParseInt(ctx.Param("id"), 10, 64)
	if err != nil || profile < 1 {
		c.missing(ctx)
		return
	}
	current, err := c.server.profiles.CurrentProfile(ctx.Request.Context(), profile)
	if resolver.ErrorCode(err) == resolver.ENotFound {
		c.missing(ctx)
		return
	}
	if err != nil {
		c.personError(ctx, "show profile", err)
		return
	}
	if current != profile {
		ctx.Redirect(http.StatusSeeOther, fmt.Sprintf("/people/%d", current))
		return
	}
	c.showPerson(ctx, profile)
}

func (c *console) showPerson(ctx *gin.Context, profile int64) {
	before, cursorErr := olderCursor(ctx.Query("older"))
	view, err := c.personView(ctx.Request.Context(), profile, before)
	if err != nil {
		c.personError(ctx, fmt.Sprintf("show profile %d", profile), err)
		return
	}
	if len(view.Groups) == 0 {
		c.missing(ctx)
		return
	}
	if cursorErr != nil {
		view.Notice = "That link to older events is not valid, so the newest are shown."
	}
	c.render(ctx, http.StatusOK, "person", page{Title: view.Heading, SignedIn: true,
		Nav: "people", Data: view})
}

// missing says the person the address names is not there, with what to
// try instead.
func (c *console) missing(ctx *gin.Context) {
	c.render(ctx, http.StatusNotFound, "search", page{Title: "No such person",
		SignedIn: true, Nav: "people",
		Data: searchView{NotFound: true, Missing: ctx.Param("id")}})
}

// olderCursor reads the timeline's "older" cursor; "" is the newest page.
func olderCursor(text string) (*resolver.EventPosition, error) {
	if text == "" {
		return nil, nil
	}
	position, err := decodePosition(text)
	if err != nil {
		return nil, err
	}
	return &position, nil
}

// personView is the Data of the person page.
type personView struct {
	Profile int64
	Heading string // the name, else an email, else "Anonymous person"
	Named   bool   // Heading is a name
	Summary string // "69 events across 2 apps (SegKicks, SegRuns) on 2 devices"
	Notice  string

	FirstSeen, LastSeen time.Time
	Events              int

	Groups     []identifierGroup
	Identities int
	Traits     []resolver.Trait
	Audiences  []audienceView
	NotIn      []string
	History    []resolver.DecisionRecord

	Apps     []appView
	Devices  []deviceView
	Timeline timelineView
}

// personView reads everything the person page shows; no identifiers means
// no such person.
func (c *console) personView(ctx context.Context, profile int64,
	before *resolver.EventPosition) (personView, error) {
	view := personView{Profile: profile}
	sightings, err := c.server.profiles.Sightings(ctx, profile)
	if err != nil || len(sightings) == 0 {
		return view, err
	}
	presences, err := c.server.profiles.Presences(ctx, profile)
	if err != nil {
		return view, err
	}
	apps := newAppPalette(presences, sightings)
	view.Groups, view.Identities = groupIdentifiers(sightings, apps), len(sightings)
	view.Apps, view.Devices = appsAndDevices(presences, apps)
	view.Events, view.FirstSeen, view.LastSeen = personActivity(presences)

	if view.Traits, err = c.server.profiles.Traits(ctx, profile); err != nil {
		return view, err
	}
	if view.Audiences, view.NotIn, err = c.audienceViews(ctx, profile); err != nil {
		return view, err
	}
	if view.History, err = c.server.profiles.PersonHistory(ctx, profile); err != nil {
		return view, err
	}
	if view.Timeline, err = c.timeline(ctx, profile, before, apps); err != nil {
		return view, err
	}
	view.Heading, view.Named = personHeading(view.Traits, sightings)
	view.Summary = personSummaryLine(view)
	return view, nil
}

// personHeading names the person: their name, else their first email, else
// "Anonymous person".
func personHeading(traits []resolver.Trait, sightings []resolver.Sighting) (string, bool) {
	if name := displayName(traits); name != "" {
		return name, true
	}
	for _, s := range sightings {
		if s.Type == resolver.TypeEmail {
			return s.Value, false
		}
	}
	return "Anonymous person", false
}

func personSummaryLine(v personView) string {
	names := make([]string, len(v.Apps))
	for i, a := range v.Apps {
		names[i] = a.Name
	}
	text := countNoun(v.Events, "event", "events")
	if len(v.Apps) > 0 {
		text += " across " + countNoun(len(v.Apps), "app", "apps") +
			" (" + strings.Join(names, ", ") + ")"
	}
	if len(v.Devices) > 0 {
		text += " on " + countNoun(len(v.Devices), "device", "devices")
	}
	return text
}

// countNoun writes n with its noun for people: "1 event", "1,204 events".
func countNoun(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return groupDigits(n) + " " + many
}

// personActivity totals the events and finds when the first and latest happened.
func personActivity(presences []resolver.Presence) (int, time.Time, time.Time) {
	var events int
	var first, last time.Time
	for _, p := range presences {
		events += p.Events
		if first.IsZero() || p.First().Before(first) {
			first = p.First()
		}
		if p.Last().After(last) {
			last = p.Last()
		}
	}
	return events, first, last
}

// displayName builds "First Last" or the name trait for the page heading.
func displayName(traits []resolver.Trait) string {
	values := map[string]string{}
	for _, t := range traits {
		var text string
		if err := jsonString(t.Value, &text); err == nil {
			values[t.Key] = strings.TrimSpace(text)
		}
	}
	if name := values["name"]; name != "" {
		return name
	}
	first := firstOf(values["first_name"], values["firstName"])
	last := firstOf(values["last_name"], values["lastName"])
	return strings.TrimSpace(first + " " + last)
}

// identifierGroup is the identifiers of one kind: emails, user ids,
// anonymous ids, device ids or others.
type identifierGroup struct {
	Label string
	Rows  []identifierRow
}

// identifierRow is one identifier with where and when it was first and
// last seen.
type identifierRow struct {
	Type, Value string
	First, Last sightingView
}

// sightingView is when and where an identifier was seen.
type sightingView struct {
	At    time.Time
	Place placeView
}

// placeView is an app on a device, as a sighting or an event names it.
type placeView struct {
	App      string
	AppClass string // the app's colour class, as in the timeline's legend
	Device   string // "iOS ios_abc123"
}

// identifierKinds orders the groups of identifiers and names them.
func identifierKinds() []string {
	return []string{"Emails", "User ids", "Anonymous ids", "Device ids",
		"Other identifiers"}
}

// identifierKind tells which group an identifier type belongs to.
func identifierKind(kind string) string {
	switch {
	case kind == resolver.TypeEmail:
		return "Emails"
	case kind == resolver.TypeUserID:
		return "User ids"
	case kind == resolver.TypeAnonymousID:
		return "Anonymous ids"
	case strings.HasPrefix(kind, "ios."), strings.HasPrefix(kind, "android."):
		return "Device ids"
	}
	return "Other identifiers"
}

// groupIdentifiers sorts sightings (ordered by type and value) into their
// groups, leaving out empty groups.
func groupIdentifiers(sightings []resolver.Sighting, apps appPalette) []identifierGroup {
	byKind := map[string][]identifierRow{}
	for _, s := range sightings {
		byKind[identifierKind(s.Type)] = append(byKind[identifierKind(s.Type)], identifierRow{
			Type: s.Type, Value: s.Value,
			First: sightingView{At: s.FirstSeen, Place: apps.place(s.App, s.Device)},
			Last: sightingView{At: s.LastSeen,
				Place: apps.place(s.LastApp, s.LastDevice)},
		})
	}
	var groups []identifierGroup
	for _, kind := range identifierKinds() {
		if rows := byKind[kind]; len(rows) > 0 {
			groups = append(groups, identifierGroup{Label: kind, Rows: rows})
		}
	}
	return groups
}

// deviceText writes a device label ("ios ios_abc123") for people: "iOS
// ios_abc123".
func deviceText(label string) string {
	kind, id, _ := strings.Cut(strings.TrimSpace(label), " ")
	switch strings.ToLower(kind) {
	case "ios":
		kind = "iOS"
	case "android":
		kind = "Android"
	case "ipados":
		kind = "iPadOS"
	case "macos":
		kind = "macOS"
	}
	return strings.TrimSpace(kind + " " + id)
}

// appPalette gives each of a person's apps a colour class, the same on
// every page of the timeline: apps in the order they were first used.
type appPalette struct {
	classes map[string]string
	names   []string
}

// paletteSize is how many distinct app colours person.css defines.
const paletteSize = 8

func newAppPalette(presences []resolver.Presence, sightings []resolver.Sighting) appPalette {
	p := appPalette{classes: map[string]string{}}
	add := func(app string) {
		if _, known := p.classes[app]; app != "" && !known {
			p.classes[app] = "app-" + strconv.Itoa(len(p.names)%paletteSize)
			p.names = append(p.names, app)
		}
	}
	for _, pr := range presences {
		add(pr.App)
	}
	for _, s := range sightings {
		add(s.App)
	}
	return p
}

// class is the colour class of app; events without an app are grey.
func (p appPalette) class(app string) string {
	if class, ok := p.classes[app]; ok {
		return class
	}
	return "app-none"
}

func (p appPalette) place(app, device string) placeView {
	return placeView{App: app, AppClass: p.class(app), Device: deviceText(device)}
}

// appView is one app in the timeline's legend.
type appView struct {
	Name    string
	Class   string
	Events  string // "40 events"
	Devices []string
}

// deviceView is one device with the apps used on it.
type deviceView struct {
	Label    string
	Apps     []string
	LastSeen time.Time
}

// appsAndDevices builds the legend of apps and the list of devices from
// where the events came from; events without an app or device are left
// out of each.
func appsAndDevices(presences []resolver.Presence, palette appPalette) ([]appView,
	[]deviceView) {
	apps := map[string]*appView{}
	counts := map[string]int{}
	devices := map[string]*deviceView{}
	var deviceOrder []string
	for _, p := range presences {
		device := deviceText(p.DeviceType + " " + p.DeviceID)
		if p.App != "" {
			a := apps[p.App]
			if a == nil {
				a = &appView{Name: p.App, Class: palette.class(p.App)}
				apps[p.App] = a
			}
			counts[p.App] += p.Events
			if device != "" && !slices.Contains(a.Devices, device) {
				a.Devices = append(a.Devices, device)
			}
		}
		if device == "" {
			continue
		}
		d := devices[device]
		if d == nil {
			d = &deviceView{Label: device}
			devices[device], deviceOrder = d, append(deviceOrder, device)
		}
		if p.App != "" && !slices.Contains(d.Apps, p.App) {
			d.Apps = append(d.Apps, p.App)
		}
		d.LastSeen = laterOf(d.LastSeen, p.Last())
	}
	return orderedApps(apps, counts, palette), orderedDevices(devices, deviceOrder)
}

func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func orderedApps(apps map[string]*appView, counts map[string]int,
	palette appPalette) []appView {
	var out []appView
	for _, name := range palette.names {
		if a := apps[name]; a != nil {
			a.Events = countNoun(counts[name], "event", "events")
			out = append(out, *a)
		}
	}
	return out
}

func orderedDevices(devices map[string]*deviceView, order []string) []deviceView {
	out := make([]deviceView, len(order))
	for i, label := range order {
		out[i] = *devices[label]
	}
	return out
}

// audienceView is one audience the person is in now, with what it says of
// them.
type audienceView struct {
	Name        string
	Description string
	Attributes  []attributeView
	EvaluatedAt time.Time
}

// attributeView is one member attribute: a time, or text.
type attributeView struct {
	Label string
	Text  string
	Time  time.Time
}

// audienceViews reads the audiences the person is in now, and names the
// ones they are not in.
func (c *console) audienceViews(ctx context.Context, profile int64) ([]audienceView,
	[]string, error) {
	if c.server.runner == nil {
		return nil, nil, nil
	}
	defs := c.server.runner.Definitions()
	names := make([]string, len(defs))
	for i, def := range defs {
		names[i] = def.Name
	}
	memberships, err := c.server.profiles.AudienceMemberships(ctx, profile, names)
	if err != nil {
		return nil, nil, err
	}
	attrs := make([]map[string]any, len(memberships))
	var values []string
	for i, m := range memberships {
		attrs[i] = decodePropsJSON(m.Attributes)
		values = append(values, attributeStrings(attrs[i])...)
	}
	products, err := c.server.profiles.ProductNames(ctx, profile, values)
	if err != nil {
		return nil, nil, err
	}
	var views []audienceView
	in := map[string]bool{}
	for i, m := range memberships {
		in[m.Audience] = true
		views = append(views, c.audienceView(m, attrs[i], products))
	}
	var notIn []string
	for _, name := range names {
		if !in[name] {
			notIn = append(notIn, name)
		}
	}
	return views, notIn, nil
}

func (c *console) audienceView(m resolver.AudienceMembership, attrs map[string]any,
	products map[string]string) audienceView {
	view := audienceView{Name: m.Audience, EvaluatedAt: m.EvaluatedAt}
	var order []string
	if def, err := c.server.runner.Definition(m.Audience); err == nil {
		view.Description, order = def.Description, def.Attributes()
	}
	for _, key := range attributeOrder(attrs, order) {
		view.Attributes = append(view.Attributes, attributeFor(key, attrs[key], products))
	}
	return view
}

// attributeOrder lists the keys of attrs in the definition's order, then
// any others sorted.
func attributeOrder(attrs map[string]any, order []string) []string {
	var keys []string
	for _, key := range order {
		if _, ok := attrs[key]; ok && !slices.Contains(keys, key) {
			keys = append(keys, key)
		}
	}
	var rest []string
	for key := range attrs {
		if !slices.Contains(keys, key) {
			rest = append(rest, key)
		}
	}
	slices.Sort(rest)
	return append(keys, rest...)
}

// attributeStrings lists the strings in attrs' values and lists, which may be
// product ids.
func attributeStrings(attrs map[string]any) []string {
	var out []string
	for _, v := range attrs {
		items, isList := v.([]any)
		if !isList {
			items = []any{v}
		}
		for _, item := range items {
			if text, ok := item.(string); ok {
				out = append(out, text)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// attributeFor writes one member attribute: times as times, product ids
// with their names, lists joined.
func attributeFor(key string, v any, products map[string]string) attributeView {
	view := attributeView{Label: attributeLabel(key)}
	if text, ok := v.(string); ok && strings.HasSuffix(key, "_at") {
		if t, ok := resolver.ParseTime(text); ok {
			view.Time = t
			return view
		}
	}
	items, isList := v.([]any)
	if !isList {
		items = []any{v}
	}
	parts := make([]string, 0, len(items))
	for _, item := range items {
		parts = append(parts, attributeValueText(item, products))
	}
	view.Text = strings.Join(parts, ", ")
	if view.Text == "" {
		view.Text = "none"
	}
	return view
}

func attributeValueText(v any, products map[string]string) string {
	if text, ok := v.(string); ok {
		if name := products[text]; name != "" && name != text {
			return name + " (" + text + ")"
		}
	}
	if text := propText(v); text != "" || v == nil {
		return text
	}
	encoded, _ := json.Marshal(v)
	return string(encoded)
}

// attributeLabel writes an attribute key for people: "abandoned_products" reads
// "Abandoned products".
func attributeLabel(key string) string {
	text := strings.TrimSpace(strings.ReplaceAll(key, "_", " "))
	if text == "" {
		return key
	}
	return strings.ToUpper(text[:1]) + text[1:]
}
