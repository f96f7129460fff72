package web

import (
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/web/httpx"
)

// requireText refuses a request whose path or query holds bytes that are
// not UTF-8 text, or a NUL: no identifier, search or cursor is made of
// them, and PostgreSQL refuses them in a query instead of finding nothing.
func (s *Server) requireText(c *gin.Context) {
	values, err := url.ParseQuery(c.Request.URL.RawQuery)
	ok := err == nil && isText(c.Request.URL.Path)
	for key, list := range values {
		ok = ok && isText(key)
		for _, v := range list {
			ok = ok && isText(v)
		}
	}
	if !ok {
		httpx.Error(c, s.log, resolver.Errorf(resolver.EInvalid,
			"the address holds bytes that are not UTF-8 text, or a NUL; "+
				"percent-encode UTF-8 text only"))
		c.Abort()
		return
	}
	c.Next()
}

func isText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}
