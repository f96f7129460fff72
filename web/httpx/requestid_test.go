package httpx_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/web/httpx"
)

func TestEveryRequestHasAnIDThatErrorsName(t *testing.T) {
	gin.SetMode(gin.TestMode)
	router := gin.New()
	router.Use(httpx.RequestID())
	router.GET("/fail", func(c *gin.Context) {
		httpx.Error(c, nil, resolver.Errorf(resolver.EInvalid, "no"))
	})

	for incoming, reused := range map[string]bool{"": false, "abc-123_x.y": true,
		"has space": false, "<script>": false} {
		req := httptest.NewRequest(http.MethodGet, "/fail", nil)
		if incoming != "" {
			req.Header.Set(httpx.RequestIDHeader, incoming)
		}
		rec := httptest.NewRecorder()
		router.ServeHTTP(rec, req)

		id := rec.Header().Get(httpx.RequestIDHeader)
		var body httpx.ErrorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		if id == "" || body.RequestID != id {
			t.Errorf("incoming %q: header %q, body %q; want one id in both", incoming, id,
				body.RequestID)
		}
		if (id == incoming) != reused {
			t.Errorf("incoming %q answered as %q; reused %v, want %v", incoming, id,
				id == incoming, reused)
		}
	}
}
