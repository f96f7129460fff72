package web

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// registerAudiencePages adds the audience pages of the console.
func (c *console) registerAudiencePages(signedIn *gin.RouterGroup) {
	signedIn.GET("/", c.audiences)
	signedIn.POST("/run/:name", c.runNow)
}

func (c *console) audiences(ctx *gin.Context) {
	summaries, err := c.server.summaries(ctx)
	if err != nil {
		c.server.log.Error("list audiences", "error", err)
		ctx.String(http.StatusInternalServerError, "internal error")
		return
	}
	c.render(ctx, http.StatusOK, "audiences", page{Title: "Audiences", SignedIn: true,
		Nav: "audiences", Audiences: summaries})
}
