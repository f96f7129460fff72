package web

import "github.com/gin-gonic/gin"

// registerIngestionPages adds the console's ingestion page.
func (c *console) registerIngestionPages(signedIn *gin.RouterGroup) {
	// TODO(console): the ingestion page (#5) is being built.
	_ = signedIn
}
