package web

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/resolver"
)

// csrfToken binds a form to the session that showed it: the hash of the
// session id under a fixed label, so a page on another site cannot post it.
func csrfToken(ctx *gin.Context) string {
	cookie, err := ctx.Request.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256([]byte("knit-csrf\x00" + cookie.Value))
	return hex.EncodeToString(sum[:])
}

func validCSRF(ctx *gin.Context) bool {
	want := csrfToken(ctx)
	got := ctx.PostForm("csrf")
	return want != "" && subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}

// profileParam reads the :id of a person's address as a profile number;
// anything else is answered 404 and reports false, so that no form ever
// posts to an address built from something else.
func (c *console) profileParam(ctx *gin.Context) (string, bool) {
	id, err := strconv.ParseInt(ctx.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		ctx.String(http.StatusNotFound, "no such profile")
		return "", false
	}
	return strconv.FormatInt(id, 10), true
}

func (c *console) confirmUnlink(ctx *gin.Context) {
	profile, ok := c.profileParam(ctx)
	if !ok {
		return
	}
	identifier := ctx.Query("identifier")
	c.render(ctx, http.StatusOK, "confirm", page{
		Title: "Unlink " + identifier, SignedIn: true, Query: identifier,
		Profile: atoi(profile), CSRF: csrfToken(ctx), AskReason: true,
		Action: "/people/" + profile + "/unlink", Button: "Unlink and rebuild",
		Message: fmt.Sprintf("%s will never again tie messages to a person. Profile %s "+
			"is rebuilt from its stored messages, which may split it into several "+
			"people. Audiences follow on their next run.", identifier, profile),
	})
}

func (c *console) confirmDelete(ctx *gin.Context) {
	profile, ok := c.profileParam(ctx)
	if !ok {
		return
	}
	c.render(ctx, http.StatusOK, "confirm", page{
		Title: "Delete profile " + profile, SignedIn: true, Profile: atoi(profile),
		CSRF: csrfToken(ctx), Action: "/people/" + profile + "/delete",
		Button: "Delete for good",
		Message: "Every identifier, trait, event and audience membership of this " +
			"person is erased. This cannot be undone.",
	})
}

func (c *console) unlink(ctx *gin.Context) {
	id, ok := c.adminRequest(ctx, ctx.PostForm("identifier"))
	if !ok {
		return
	}
	result, err := c.server.admin.Unlink(ctx.Request.Context(), id,
		strings.TrimSpace(ctx.PostForm("reason")))
	if err != nil {
		c.adminFailed(ctx, err)
		return
	}
	c.server.log.InfoContext(ctx.Request.Context(), "identifier unlinked", "via", "console",
		"identifier_type", id.Type, "profile_id", result.Profile,
		"profiles", len(result.Profiles))
	next := "/"
	if len(result.Profiles) > 0 {
		next = fmt.Sprintf("/people/%d", result.Profiles[0])
	}
	ctx.Redirect(http.StatusSeeOther, next)
}

func (c *console) delete(ctx *gin.Context) {
	ids, err := c.server.profiles.Identifiers(ctx.Request.Context(), atoi(ctx.Param("id")))
	if err != nil || len(ids) == 0 {
		ctx.String(http.StatusNotFound, "no such profile")
		return
	}
	id, ok := c.adminRequest(ctx, ids[0].Type+":"+ids[0].Value)
	if !ok {
		return
	}
	result, err := c.server.admin.Delete(ctx.Request.Context(), id, "console")
	if err != nil {
		c.adminFailed(ctx, err)
		return
	}
	c.server.log.InfoContext(ctx.Request.Context(), "profile deleted", "via", "console",
		"profile_id", result.Profile, "events_deleted", result.Events)
	ctx.Redirect(http.StatusSeeOther, "/")
}

// adminRequest checks the form's CSRF token and that unlink and delete are
// enabled, and parses the identifier.
func (c *console) adminRequest(ctx *gin.Context, identifier string) (resolver.Identifier, bool) {
	if !validCSRF(ctx) {
		ctx.String(http.StatusForbidden, "this form has expired; go back and try again")
		return resolver.Identifier{}, false
	}
	kind, value, ok := strings.Cut(identifier, ":")
	if c.server.admin == nil || !ok {
		ctx.String(http.StatusBadRequest, "cannot do that here")
		return resolver.Identifier{}, false
	}
	return resolver.NormaliseIdentifier(kind, value), true
}

func (c *console) adminFailed(ctx *gin.Context, err error) {
	if resolver.ErrorCode(err) == resolver.ENotFound {
		ctx.String(http.StatusNotFound, resolver.ErrorMessage(err))
		return
	}
	c.server.log.ErrorContext(ctx.Request.Context(), "console change failed", "error", err)
	ctx.String(http.StatusInternalServerError, "internal error")
}

func atoi(text string) int64 {
	n, _ := strconv.ParseInt(text, 10, 64)
	return n
}

// runNow computes an audience at once from the console and returns to the
// audiences page, where the new run shows.
func (c *console) runNow(ctx *gin.Context) {
	if !validCSRF(ctx) {
		ctx.String(http.StatusForbidden, "this form has expired; go back and try again")
		return
	}
	run, err := c.server.runner.Run(ctx.Request.Context(), ctx.Param("name"))
	if err != nil && run.ID == 0 {
		c.adminFailed(ctx, err)
		return
	}
	c.server.log.InfoContext(ctx.Request.Context(), "audience run from the console",
		"audience", run.Audience, "status", run.Status, "size", run.Size)
	// Back to the page the button was on; only a local path is followed.
	ctx.Redirect(http.StatusSeeOther, safeNext(firstOf(ctx.PostForm("back"), "/")))
}
