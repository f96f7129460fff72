package resolver

import (
	"errors"
	"fmt"
	"time"

	"github.com/knit-cdp/knit/resolver/sqldb"
)

// Error codes shared by every knit package. The HTTP edge maps each code to
// one status in one place; core packages never choose statuses.
const (
	EInvalid      = "invalid"            // the caller sent something wrong
	ETooLarge     = "too_large"          // a size or count limit was passed
	ENotFound     = "not_found"          // the thing asked for does not exist
	EUnauthorized = "unauthorized"       // missing or wrong credentials
	EConflict     = "conflict"           // the request clashes with current state
	EGone         = "gone"               // a cursor or handle no longer applies
	EUnsupported  = "unsupported"        // a content type or encoding knit does not take
	EMethod       = "method_not_allowed" // the path exists, the method does not
	ERateLimited  = "rate_limited"       // a source sent more than its rate; retry later
	EUnavailable  = "unavailable"        // knit cannot take this now; retry later
	ETimeout      = "timeout"            // the caller sent its request too slowly
	EInternal     = "internal"           // knit itself failed
)

// Error is a failure with a code from the list above and a message that is
// safe to show to the caller.
type Error struct {
	Code    string
	Message string
	// RetryAfter, when positive, is how long the caller should wait before
	// trying again; the HTTP edge sends it as Retry-After.
	RetryAfter time.Duration
}

// Error implements the error interface.
func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Errorf builds an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// RetryAfterOf returns the RetryAfter of the first *Error in err's chain,
// and 0 when there is none.
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// ErrorCode returns the code of the first *Error in err's chain,
// EUnavailable for a database that cannot work now (sqldb.Unavailable:
// down, read-only, full, locked), EInternal for any other non-nil error,
// and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if sqldb.Unavailable(err) {
		return EUnavailable
	}
	return EInternal
}

// ErrorMessage returns the caller-safe message of the first *Error in err's
// chain, or a generic text for internal failures whose details stay in logs.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	if sqldb.Unavailable(err) {
		return "the database is unavailable; retry later"
	}
	return "internal error"
}
