package web

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/resolver"
)

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

func (c *console) search(ctx *gin.Context) {
	query := strings.TrimSpace(ctx.Query("q"))
	if query == "" {
		ctx.Redirect(http.StatusSeeOther, "/")
		return
	}
	results, err := c.server.profiles.Search(ctx.Request.Context(), query)
	if err != nil {
		c.server.log.Error("search profiles", "error", err)
		ctx.String(http.StatusInternalServerError, "internal error")
		return
	}
	if len(results) == 1 {
		ctx.Redirect(http.StatusSeeOther, fmt.Sprintf("/people/%d", results[0]))
		return
	}
	c.render(ctx, http.StatusOK, "search",
		page{Title: "Search", SignedIn: true, Query: query, Results: results})
}

func (c *console) person(ctx *gin.Context) {
	profile, err := strconv.ParseInt(ctx.Param("id"), 10, 64)
	if err != nil {
		ctx.String(http.StatusNotFound, "no such profile")
		return
	}
	data, err := c.personPage(ctx, profile)
	if err != nil {
		c.server.log.Error("show profile", "profile_id", profile, "error", err)
		ctx.String(http.StatusInternalServerError, "internal error")
		return
	}
	if len(data.Identifiers) == 0 {
		ctx.String(http.StatusNotFound, "no such profile")
		return
	}
	c.render(ctx, http.StatusOK, "person", data)
}

func (c *console) personPage(ctx *gin.Context, profile int64) (page, error) {
	reqCtx := ctx.Request.Context()
	data := page{Title: fmt.Sprintf("Profile %d", profile), SignedIn: true, Profile: profile}
	var err error
	if data.Identifiers, err = c.server.profiles.Identifiers(reqCtx, profile); err != nil {
		return data, err
	}
	if data.Traits, err = c.server.profiles.Traits(reqCtx, profile); err != nil {
		return data, err
	}
	if data.Events, err = c.server.profiles.Events(reqCtx, profile, latestEventsShown); err != nil {
		return data, err
	}
	if data.EventCount, err = c.server.profiles.EventCount(reqCtx, profile); err != nil {
		return data, err
	}
	if data.History, err = c.server.profiles.History(reqCtx, profile); err != nil {
		return data, err
	}

	data.Name = displayName(data.Traits)
	apps := map[string]bool{}
	for _, id := range data.Identifiers {
		if id.App != "" {
			apps[id.App] = true
		}
	}
	for _, e := range data.Events {
		if e.App != "" {
			apps[e.App] = true
		}
	}
	for app := range apps {
		data.Apps = append(data.Apps, app)
	}
	sort.Strings(data.Apps)
	return data, nil
}

// displayName builds "First Last" or the name trait for the page heading.
func displayName(traits []resolver.Trait) string {
	values := map[string]string{}
	for _, t := range traits {
		var text string
		if err := jsonString(t.Value, &text); err == nil {
			values[t.Key] = text
		}
	}
	if name := values["name"]; name != "" {
		return name
	}
	first := firstOf(values["first_name"], values["firstName"])
	last := firstOf(values["last_name"], values["lastName"])
	return strings.TrimSpace(first + " " + last)
}
