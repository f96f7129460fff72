// Package web serves what people and tools read from knit: the export API
// for audiences, Segment's Profile API, and the marketer's console.
package web

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/audiences"
	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/web/httpx"
)

// Server holds what the read side needs.
type Server struct {
	runner   *audiences.Runner
	profiles *resolver.Profiles
	auth     *Auth
	log      *slog.Logger
	// spaceID, when set, is the only Profile API space accepted.
	spaceID string
	// admin undoes and erases; nil leaves those endpoints out.
	admin IdentityAdmin
	// now is the clock the console counts relative times from.
	now func() time.Time
	// settings is what the console's settings page shows.
	settings Settings
	// audit reads the audit log; nil leaves it out.
	audit *resolver.AuditLog
}

// IdentityAdmin changes the identity graph on request; *resolver.Store is
// one.
type IdentityAdmin interface {
	Unlink(ctx context.Context, id resolver.Identifier, reason string) (resolver.UnlinkResult, error)
	Delete(ctx context.Context, id resolver.Identifier, by string) (resolver.DeleteResult, error)
}

// SetAdmin enables unlink and delete through the API.
func (s *Server) SetAdmin(admin IdentityAdmin) { s.admin = admin }

// NewServer returns a Server over the given parts.
func NewServer(runner *audiences.Runner, profiles *resolver.Profiles, auth *Auth,
	spaceID string, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{runner: runner, profiles: profiles, auth: auth, spaceID: spaceID, log: log,
		now: time.Now}
}

// SetClock sets the clock the console counts relative times ("3 hours
// ago") from; a server replaying data at another time passes its own.
func (s *Server) SetClock(now func() time.Time) { s.now = now }

// Register adds the API and console routes to router.
func (s *Server) Register(router *gin.Engine) {
	healthy := func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) }
	router.GET("/healthz", healthy)
	router.HEAD("/healthz", healthy)
	router.Use(s.requireText)

	api := router.Group("/", s.auth.Require)
	api.GET("/audiences", s.listAudiences)
	api.GET("/audiences/:name", s.getAudience)
	api.POST("/audiences/:name/runs", s.runAudience)
	api.GET("/audiences/:name/changes", s.audienceChanges)
	api.POST("/audience-previews", s.previewAudience)
	api.GET("/audit", s.listAudit)

	profiles := api.Group("/v1/spaces/:space/collections/users/profiles/:id")
	profiles.GET("/traits", s.profileEndpoint(s.profileTraits))
	profiles.GET("/external_ids", s.profileEndpoint(s.profileExternalIDs))
	profiles.GET("/merges", s.profileEndpoint(s.profileHistory))
	profiles.GET("/events", s.profileEndpoint(s.profileEvents))
	profiles.GET("/metadata", s.profileEndpoint(s.profileMetadata))
	profiles.GET("/links", s.profileEndpoint(s.profileLinks))
	profiles.POST("/unlink", s.unlinkIdentifier)
	profiles.DELETE("", s.deleteProfile)

	s.registerConsole(router)
	router.HandleMethodNotAllowed = true
	router.NoMethod(func(c *gin.Context) {
		httpx.Error(c, s.log, resolver.Errorf(resolver.EMethod,
			"%s is not allowed on %s", c.Request.Method, c.Request.URL.Path))
	})
	router.NoRoute(func(c *gin.Context) {
		httpx.Error(c, s.log, resolver.Errorf(resolver.ENotFound,
			"no endpoint %s %s; see README for the list", c.Request.Method, c.Request.URL.Path))
	})
}
