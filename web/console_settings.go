package web

import (
	"net/http"
	"net/url"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/audiences"
	"github.com/knit-cdp/knit/resolver"
)

// Settings is what the console's read-only settings page shows about how
// the server was configured. It holds no secret: only whether each is set.
type Settings struct {
	Rules            resolver.Rules
	WebhookSecretSet bool
	WriteKeys        int
	SpaceID          string
	AdminPasswordSet bool
	// Database names the engine, such as "SQLite (knit.db)"; never a URL
	// that could hold a password.
	Database string
}

// SetSettings gives the settings page what to show.
func (s *Server) SetSettings(settings Settings) { s.settings = settings }

// settingsView is the settings page's data.
type settingsView struct {
	Settings
	WebhookURL   string
	TrackingURL  string
	TypeRules    []resolver.TypeRule
	GlobalBlocks []string
	Audiences    []audienceSchedule
}

// audienceSchedule is one audience's line on the settings page.
type audienceSchedule struct {
	Name, Schedule, Timezone string
	NextRun                  time.Time
	RequireEmail             bool
	IncludeAnonymous         bool
	Destinations             []string
}

// registerSettingsPages adds the console's read-only settings page.
func (c *console) registerSettingsPages(signedIn *gin.RouterGroup) {
	signedIn.GET("/settings", c.settingsPage)
	signedIn.GET("/audit-log", c.auditPage)
}

func (c *console) settingsPage(ctx *gin.Context) {
	s := c.server.settings
	base := externalBase(ctx.Request)
	view := settingsView{Settings: s, WebhookURL: base + "/webhook",
		TrackingURL: base + "/v1/batch", TypeRules: s.Rules.TypeRules(),
		GlobalBlocks: s.Rules.GlobalBlocks()}
	now := c.server.now()
	for _, def := range c.server.runner.Definitions() {
		view.Audiences = append(view.Audiences, scheduleOf(def, now))
	}
	c.render(ctx, http.StatusOK, "settings", page{Title: "Settings", SignedIn: true,
		Nav: "settings", Data: view})
}

func scheduleOf(def audiences.Definition, now time.Time) audienceSchedule {
	line := audienceSchedule{Name: def.Name, Schedule: def.Schedule, Timezone: def.Timezone,
		RequireEmail: def.NeedsEmail(), IncludeAnonymous: def.IncludeAnonymous}
	if line.Schedule == "" {
		line.Schedule = audiences.DefaultSchedule
	}
	if line.Timezone == "" {
		line.Timezone = "UTC"
	}
	line.NextRun, _ = def.NextRun(now)
	for _, dest := range def.Destinations {
		line.Destinations = append(line.Destinations, publicURL(dest.URL)+" ("+
			orDefault(dest.Style, "identify")+")")
	}
	return line
}

// externalBase is the scheme and host the visitor reached the server by,
// which is where Segment must send its requests too.
func externalBase(r *http.Request) string {
	scheme := "http"
	if isHTTPS(r) {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// publicURL drops what a URL may hide a secret in: user information and
// the query.
func publicURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(not a URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

func orDefault(value, fallback string) string {
	if value == "" {
		return fallback
	}
	return value
}
