// Package httpx is knit's one mapping from errors to HTTP responses, shared
// by the ingestion edge, the APIs and the console.
package httpx

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/resolver"
)

// statusByCode maps knit's error codes to HTTP statuses.
var statusByCode = map[string]int{
	resolver.EInvalid:      http.StatusBadRequest,
	resolver.ETooLarge:     http.StatusBadRequest, // Segment's API answers 400
	resolver.ENotFound:     http.StatusNotFound,
	resolver.EUnauthorized: http.StatusUnauthorized,
	resolver.EConflict:     http.StatusConflict,
	resolver.EGone:         http.StatusGone,
	resolver.EUnsupported:  http.StatusUnsupportedMediaType,
	resolver.EMethod:       http.StatusMethodNotAllowed,
	resolver.ERateLimited:  http.StatusTooManyRequests,
	resolver.EUnavailable:  http.StatusServiceUnavailable,
	resolver.ETimeout:      http.StatusRequestTimeout, // Segment retries 408
	resolver.EInternal:     http.StatusInternalServerError,
}

// Status returns the HTTP status for err.
func Status(err error) int {
	if status, ok := statusByCode[resolver.ErrorCode(err)]; ok {
		return status
	}
	return http.StatusInternalServerError
}

// defaultRetryAfter is the Retry-After of a code whose error names none:
// Segment retries 429 and 503, and the header tells it when.
var defaultRetryAfter = map[string]time.Duration{
	resolver.ERateLimited: time.Second,
	resolver.EUnavailable: 5 * time.Second,
}

// RetryAfter returns the whole seconds a caller should wait before trying
// again after err, rounded up, or 0 when err does not ask for a wait.
func RetryAfter(err error) int {
	wait := resolver.RetryAfterOf(err)
	if wait <= 0 {
		wait = defaultRetryAfter[resolver.ErrorCode(err)]
	}
	return int((wait + time.Second - 1) / time.Second)
}

// ErrorBody is the JSON shape of every error knit answers, the same as
// Segment's Profile API: {"error": {"code": ..., "message": ...}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
	// RequestID names the request in knit's logs, for a support question.
	RequestID string `json:"request_id,omitempty"`
}

// ErrorDetail names what went wrong.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Detail returns the caller-safe code and message for err.
func Detail(err error) ErrorDetail {
	return ErrorDetail{Code: resolver.ErrorCode(err), Message: resolver.ErrorMessage(err)}
}

// Error answers err as JSON with its mapped status, and Retry-After when
// err asks the caller to wait. Internal errors are logged with their cause
// and shown to the caller only as "internal error"; refusals are logged
// with the reason the caller was given, so an operator can see why
// deliveries fail.
func Error(c *gin.Context, log *slog.Logger, err error) {
	status := Status(err)
	detail := Detail(err)
	if wait := RetryAfter(err); wait > 0 {
		c.Header("Retry-After", strconv.Itoa(wait))
	}
	switch {
	case log == nil:
	case status >= http.StatusInternalServerError:
		log.Error("request failed", "method", c.Request.Method,
			"path", c.Request.URL.Path, "status", status, "error", err,
			"request_id", RequestIDOf(c))
	default:
		log.Warn("request refused", "method", c.Request.Method,
			"path", c.Request.URL.Path, "status", status,
			"code", detail.Code, "reason", detail.Message, "request_id", RequestIDOf(c))
	}
	c.AbortWithStatusPureJSON(status, ErrorBody{Error: detail, RequestID: RequestIDOf(c)})
}

// Recover turns a panic in a handler into a logged 500. A handler that
// panics with http.ErrAbortHandler (a download cut short on purpose) is let
// through so net/http drops the connection and the client sees the failure.
func Recover(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			recovered := recover()
			if recovered == nil {
				return
			}
			if recovered == http.ErrAbortHandler {
				panic(recovered)
			}
			if log != nil {
				log.Error("handler panicked", "path", c.FullPath(), "panic", recovered,
					"request_id", RequestIDOf(c))
			}
			if !c.Writer.Written() {
				c.AbortWithStatusPureJSON(http.StatusInternalServerError, ErrorBody{
					Error: ErrorDetail{Code: resolver.EInternal, Message: "internal error"},
				})
			}
		}()
		c.Next()
	}
}
