package web

import "github.com/gin-gonic/gin"

// registerSettingsPages adds the console's read-only settings page.
func (c *console) registerSettingsPages(signedIn *gin.RouterGroup) {
	// TODO(console): the settings page (#5) is being built.
	_ = signedIn
}
