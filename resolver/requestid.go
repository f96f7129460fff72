package resolver

import "context"

// requestIDKey is the context key of the id of the request being served.
type requestIDKey struct{}

// WithRequestID returns ctx carrying id, the id the HTTP edge gave the
// request being served; log lines written with ctx name it.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestIDFrom returns the request id ctx carries, or "".
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
