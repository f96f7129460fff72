package web

import (
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/resolver"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

const latestEventsShown = 50

// page is what every console template receives: the common fields, and
// in Data what the page itself shows.
type page struct {
	Title    string
	SignedIn bool
	// Nav names the section the page belongs to, for the navigation bar:
	// audiences, people, ingestion or settings.
	Nav   string
	Data  any
	Query string
	Error string
	// Next is where signing in leads: the page that sent the visitor to
	// the sign-in form.
	Next string

	Audiences   []audienceSummary
	Results     []int64
	Profile     int64
	Name        string
	EventCount  int
	Apps        []string
	Identifiers []resolver.IdentityRecord
	Traits      []resolver.Trait
	Events      []resolver.EventRecord
	History     []resolver.DecisionRecord

	// The confirmation page of unlink and delete.
	Message   string
	Action    string
	Button    string
	CSRF      string
	AskReason bool
}

// parseTemplates compiles every page in templates/ with the layout and the
// shared pieces; each file but layout.html and partials.html is a page
// named after it.
func parseTemplates(now func() time.Time) (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"iso":   func(t any) string { return asTime(t).Format(time.RFC3339) },
		"when":  func(t any) string { return asTime(t).Format("2 Jan 2006 15:04 MST") },
		"trait": traitText,
		"ms":    func(ms int64) time.Time { return time.UnixMilli(ms).UTC() },
	}
	for name, fn := range formatFuncs(now) {
		funcs[name] = fn
	}

	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("list templates: %w", err)
	}
	pages := map[string]*template.Template{}
	for _, file := range names {
		name := strings.TrimSuffix(path.Base(file), ".html")
		if name == "layout" || name == "partials" {
			continue
		}
		tmpl, err := template.New(name).Funcs(funcs).ParseFS(templateFiles,
			"templates/layout.html", "templates/partials.html", file)
		if err != nil {
			return nil, fmt.Errorf("parse template %s: %w", name, err)
		}
		pages[name] = tmpl
	}
	return pages, nil
}

func asTime(v any) time.Time {
	switch t := v.(type) {
	case time.Time:
		return t.UTC()
	case *time.Time:
		if t != nil {
			return t.UTC()
		}
	case *string:
		if t != nil {
			parsed, _ := resolver.ParseTime(*t)
			return parsed
		}
	}
	return time.Time{}
}

// registerConsole adds the console's pages. Templates are compiled in, so a
// failure to parse them is a build defect caught by tests.
func (s *Server) registerConsole(router *gin.Engine) {
	pages, err := parseTemplates(func() time.Time { return s.now() })
	if err != nil {
		panic(err)
	}
	static, _ := fs.Sub(staticFiles, "static")
	router.StaticFS("/static", http.FS(filesOnly{static}))

	c := &console{server: s, pages: pages,
		signIns: newSignInThrottle(func() time.Time { return s.now() })}
	router.GET("/login", c.loginForm)
	router.POST("/login", c.login)
	router.POST("/logout", c.logout)

	signedIn := router.Group("/", c.requireSession)
	c.registerAudiencePages(signedIn)
	c.registerPersonPages(signedIn)
	c.registerIngestionPages(signedIn)
	c.registerSettingsPages(signedIn)
}

type console struct {
	server  *Server
	pages   map[string]*template.Template
	signIns *signInThrottle
}

func (c *console) render(ctx *gin.Context, status int, name string, data page) {
	if data.SignedIn && data.CSRF == "" {
		data.CSRF = csrfToken(ctx)
	}
	ctx.Header("Content-Type", "text/html; charset=utf-8")
	// Pages show personal data: the browser keeps no copy to show again
	// after signing out.
	ctx.Header("Cache-Control", "no-store")
	ctx.Header("X-Content-Type-Options", "nosniff")
	ctx.Header("X-Frame-Options", "DENY")
	ctx.Header("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
	ctx.Status(status)
	if err := c.pages[name].ExecuteTemplate(ctx.Writer, "layout", data); err != nil {
		c.server.log.ErrorContext(ctx.Request.Context(), "render page", "page", name, "error", err)
	}
}

func (c *console) requireSession(ctx *gin.Context) {
	if openedWith, ok := c.server.auth.session(ctx); ok {
		actAs(ctx, "console:"+openedWith)
		ctx.Next()
		return
	}
	ctx.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(ctx.Request.URL.RequestURI()))
	ctx.Abort()
}

func (c *console) loginForm(ctx *gin.Context) {
	c.render(ctx, http.StatusOK, "login", page{Title: "Sign in", Next: ctx.Query("next"),
		Data: c.loginView()})
}

// loginView tells the sign-in page whether an admin password is set.
type loginView struct{ PasswordSet bool }

func (c *console) loginView() loginView {
	return loginView{PasswordSet: c.server.auth.adminPassword != nil}
}

func (c *console) login(ctx *gin.Context) {
	next := firstOf(ctx.PostForm("next"), ctx.Query("next"))
	client := clientAddress(ctx.Request)
	if c.throttled(ctx, client, next) {
		return
	}
	secret := strings.TrimSpace(ctx.PostForm("token"))
	openedWith := openedWithToken
	if !c.server.auth.ValidToken(ctx.Request.Context(), secret) {
		openedWith = openedWithAdmin
	}
	if openedWith == openedWithAdmin && !c.server.auth.validPassword(secret) {
		c.noteFailedSignIn(ctx, client)
		message := "That token is not valid."
		if c.server.auth.adminPassword != nil {
			message = "That is neither the API token nor the admin password."
		}
		c.render(ctx, http.StatusUnauthorized, "login",
			page{Title: "Sign in", Error: message, Next: next, Data: c.loginView()})
		return
	}
	if err := c.server.auth.startSession(ctx, openedWith); err != nil {
		c.server.log.ErrorContext(ctx.Request.Context(), "start session", "error", err)
		c.render(ctx, http.StatusInternalServerError, "login", page{Title: "Sign in",
			Error: "Could not start a session; try again.", Next: next, Data: c.loginView()})
		return
	}
	ctx.Redirect(http.StatusSeeOther, safeNext(next))
}

// noteFailedSignIn counts a failed sign-in and logs it (never what was
// typed), and once more when the client has used up its tries.
func (c *console) noteFailedSignIn(ctx *gin.Context, client string) {
	exhausted := c.signIns.failed(client)
	log := c.server.log
	if log == nil {
		return
	}
	log.WarnContext(ctx.Request.Context(), "sign-in failed", "client", client)
	if exhausted {
		log.WarnContext(ctx.Request.Context(), "sign-in throttled: too many failures",
			"client", client, "tries", signInBurst)
	}
}

// throttled answers 429 with Retry-After, and reports true, when client
// has used up its failed sign-ins.
func (c *console) throttled(ctx *gin.Context, client, next string) bool {
	wait := c.signIns.wait(client)
	if wait <= 0 {
		return false
	}
	ctx.Header("Retry-After", retryAfterSeconds(wait))
	c.render(ctx, http.StatusTooManyRequests, "login", page{Title: "Sign in",
		Error: "Too many failed sign-ins from this address; try again in " +
			retryAfterSeconds(wait) + " seconds.", Next: next, Data: c.loginView()})
	return true
}

// safeNext allows only local paths, so the login form cannot redirect to
// another site. Browsers drop tabs, newlines and other control characters
// from URLs ("/\t/evil.example" becomes "//evil.example"), so any of them, a
// backslash, or anything that parses with a scheme or host sends the visitor
// home instead.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.ContainsAny(next, "\\") ||
		strings.ContainsFunc(next, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
		return "/"
	}
	parsed, err := url.Parse(next)
	if err != nil || parsed.Scheme != "" || parsed.Host != "" {
		return "/"
	}
	return next
}

func (c *console) logout(ctx *gin.Context) {
	if !validCSRF(ctx) && c.server.auth.validSession(ctx) {
		// A signed-in visitor is signed out only from the console's own
		// form, never by another site's.
		ctx.String(http.StatusForbidden, "This form has expired: reload the page "+
			"and sign out again.")
		return
	}
	c.server.auth.endSession(ctx)
	ctx.Redirect(http.StatusSeeOther, "/login")
}

// traitText shows a trait value as a marketer reads it: text without its
// JSON quotes, anything else (numbers, booleans, lists, objects) as JSON.
func traitText(raw json.RawMessage) string {
	var text string
	if err := jsonString(raw, &text); err == nil {
		return text
	}
	return string(raw)
}

func firstOf(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

func jsonString(raw []byte, dest *string) error {
	return json.Unmarshal(raw, dest)
}

// filesOnly serves the files of an fs.FS and no folder listings.
type filesOnly struct{ fs.FS }

// Open opens a file; a folder reads as not found.
func (f filesOnly) Open(name string) (fs.File, error) {
	file, err := f.FS.Open(name)
	if err != nil {
		return nil, err
	}
	info, err := file.Stat()
	if err != nil || info.IsDir() {
		_ = file.Close()
		return nil, fs.ErrNotExist
	}
	return file, nil
}
