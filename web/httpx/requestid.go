package httpx

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/resolver"
)

// RequestIDHeader carries a request's id, from a proxy that set one and
// back to the caller.
const RequestIDHeader = "X-Request-Id"

// requestIDKey is where RequestID keeps the id in the gin context.
const requestIDKey = "knit.request_id"

// RequestID gives every request an id: the caller's X-Request-Id when it
// is a short plain token (letters, digits, '-', '_', '.'), a new random one
// otherwise. The id is answered in X-Request-Id; error responses and log
// lines about the request name it, the deeper ones through the request's
// context (resolver.WithRequestID).
func RequestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader(RequestIDHeader)
		if !plainID(id) {
			id = newRequestID()
		}
		c.Set(requestIDKey, id)
		c.Request = c.Request.WithContext(resolver.WithRequestID(c.Request.Context(), id))
		c.Header(RequestIDHeader, id)
		c.Next()
	}
}

// RequestIDOf returns the id RequestID gave the request, or "".
func RequestIDOf(c *gin.Context) string { return c.GetString(requestIDKey) }

func plainID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func newRequestID() string {
	buf := make([]byte, 8)
	_, _ = rand.Read(buf) // crypto/rand never fails on supported systems
	return hex.EncodeToString(buf)
}
