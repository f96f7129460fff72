package web

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/web/httpx"
)

// pathIdentifier reads the {type}:{value} of a profile path, normalised.
func pathIdentifier(c *gin.Context) (resolver.Identifier, error) {
	kind, value, ok := strings.Cut(c.Param("id"), ":")
	if !ok || kind == "" || value == "" {
		return resolver.Identifier{}, resolver.Errorf(resolver.EInvalid,
			"profile id must be type:value, such as email:jane@example.com")
	}
	return resolver.NormaliseIdentifier(kind, value), nil
}

// unlinkIdentifier blocks the identifier in the path for good and rebuilds
// the profile that held it; the JSON body may give a "reason".
func (s *Server) unlinkIdentifier(c *gin.Context) {
	id, err := s.adminIdentifier(c)
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	var body struct {
		Reason string `json:"reason"`
	}
	_ = c.ShouldBindJSON(&body) // the body is optional
	result, err := s.admin.Unlink(c.Request.Context(), id, body.Reason)
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	s.log.InfoContext(c.Request.Context(), "identifier unlinked", "identifier_type", id.Type,
		"profile_id", result.Profile, "profiles", len(result.Profiles))
	c.JSON(http.StatusOK, gin.H{"unlinked": id.String(), "retired_profile_id": result.Profile,
		"profile_ids": result.Profiles, "events_reresolved": result.Events})
}

// deleteProfile erases the person holding the identifier in the path.
func (s *Server) deleteProfile(c *gin.Context) {
	id, err := s.adminIdentifier(c)
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	result, err := s.admin.Delete(c.Request.Context(), id, "api")
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	s.log.InfoContext(c.Request.Context(), "profile deleted", "profile_id", result.Profile,
		"events_deleted", result.Events, "identifiers_deleted", result.Identifiers)
	c.JSON(http.StatusOK, gin.H{"deleted_profile_id": result.Profile,
		"events_deleted": result.Events, "identifiers_deleted": result.Identifiers})
}

func (s *Server) adminIdentifier(c *gin.Context) (resolver.Identifier, error) {
	if s.admin == nil {
		return resolver.Identifier{}, resolver.Errorf(resolver.ENotFound,
			"unlink and delete are not enabled on this server")
	}
	if s.spaceID != "" && c.Param("space") != s.spaceID {
		return resolver.Identifier{}, resolver.Errorf(resolver.ENotFound,
			"space %q was not found", c.Param("space"))
	}
	return pathIdentifier(c)
}
