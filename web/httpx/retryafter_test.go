package httpx_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/web/httpx"
)

// TestRetryAfterIsWholeSecondsRoundedUp: an error that asks for a wait is
// answered with its status and Retry-After in whole seconds, never 0 for a
// wait shorter than a second; one that asks for none has no header.
func TestRetryAfterIsWholeSecondsRoundedUp(t *testing.T) {
	wait := func(code string, d time.Duration) error {
		return fmt.Errorf("wrapped: %w", &resolver.Error{Code: code, Message: "m", RetryAfter: d})
	}
	cases := []struct {
		name   string
		err    error
		status int
		header string
	}{
		{"rate limited for 1.2 s", wait(resolver.ERateLimited, 1200*time.Millisecond),
			http.StatusTooManyRequests, "2"},
		{"rate limited for 1 ms", wait(resolver.ERateLimited, time.Millisecond),
			http.StatusTooManyRequests, "1"},
		{"rate limited without a wait", wait(resolver.ERateLimited, 0),
			http.StatusTooManyRequests, "1"},
		{"unavailable for 30 s", wait(resolver.EUnavailable, 30*time.Second),
			http.StatusServiceUnavailable, "30"},
		{"unavailable without a wait", wait(resolver.EUnavailable, 0),
			http.StatusServiceUnavailable, "5"},
		{"too slow", wait(resolver.ETimeout, 0), http.StatusRequestTimeout, ""},
		{"invalid", wait(resolver.EInvalid, 0), http.StatusBadRequest, ""},
		{"internal", errors.New("boom"), http.StatusInternalServerError, ""},
	}
	gin.SetMode(gin.ReleaseMode)
	for _, tc := range cases {
		rec := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(rec)
		c.Request = httptest.NewRequest(http.MethodPost, "/v1/batch", nil)
		httpx.Error(c, nil, tc.err)
		if rec.Code != tc.status || rec.Header().Get("Retry-After") != tc.header {
			t.Errorf("%s: %d Retry-After %q, want %d %q", tc.name, rec.Code,
				rec.Header().Get("Retry-After"), tc.status, tc.header)
		}
	}
}
