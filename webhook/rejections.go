package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/web/httpx"
)

// RejectionRecorder keeps what the edge refuses, so the console can show
// why an event is missing; *resolver.Store is one.
type RejectionRecorder interface {
	RecordRejections(ctx context.Context, rejections []resolver.Rejection) error
}

const (
	// recordTimeout bounds how long a refusal waits for its record.
	recordTimeout = 2 * time.Second
	// redacted stands in an excerpt for a secret.
	redacted = "[redacted]"
	// trackingSource labels tracking API refusals without a valid write key.
	trackingSource = "tracking"
)

// request is what the edge knows of a request so far, for the record of
// its refusal.
type request struct {
	received time.Time
	source   string
	body     []byte // as read so far, decompressed; nil before reading
}

// fail answers a refused request with err and records the refusal; an
// error that asks the sender to retry (knit failing, a limit, a slow body)
// is answered without being recorded, as the message is on its way again,
// and a limit's refusals are logged only now and then.
func (h *Handler) fail(c *gin.Context, req *request, err error) {
	if resolver.ErrorCode(err) == resolver.ERateLimited {
		h.limiter.refusals.note("ingestion limit reached", "limit", "rate",
			"source", req.source, "request_id", httpx.RequestIDOf(c))
		httpx.Error(c, nil, err)
		return
	}
	if !isRetryLater(err) {
		body := req.body
		if body == nil {
			body = peekBody(c.Request)
		}
		h.record(c, []resolver.Rejection{h.rejection(c, req.received, req.source, err, body)})
	}
	httpx.Error(c, h.log, err)
}

// rejection describes one refused element or body, without secrets.
func (h *Handler) rejection(c *gin.Context, received time.Time, source string, err error,
	data []byte) resolver.Rejection {
	endpoint := c.FullPath()
	if endpoint == "" {
		endpoint = c.Request.URL.Path
	}
	return resolver.Rejection{
		ReceivedMS: received.UnixMilli(),
		Source:     source,
		Endpoint:   endpoint,
		Reason:     h.withoutSecrets(resolver.ErrorMessage(err)),
		MessageID:  h.withoutSecrets(messageIDOf(data)),
		Excerpt:    h.excerpt(data),
	}
}

// record stores rejections when a recorder is set. It never fails the
// request: a failure to record is logged, and the refusal answered as
// before. It outlives a sender that hangs up, up to recordTimeout.
func (h *Handler) record(c *gin.Context, rejections []resolver.Rejection) {
	if h.cfg.Rejections == nil || len(rejections) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()),
		recordTimeout)
	defer cancel()
	err := h.cfg.Rejections.RecordRejections(ctx, rejections)
	if err != nil && h.log != nil {
		h.log.ErrorContext(c.Request.Context(), "record rejections", "endpoint", rejections[0].Endpoint,
			"rejections", len(rejections), "error", err)
	}
}

// peekBody reads the start of a body the edge refused before reading it
// (a wrong content type, a wrong write key), when it is not compressed.
func peekBody(r *http.Request) []byte {
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	if r.Body == nil || (enc != "" && enc != "identity") {
		return nil
	}
	data, _ := io.ReadAll(io.LimitReader(r.Body, resolver.MaxExcerptBytes+1))
	return data
}

// messageIDOf returns the messageId of a message when data is one object
// that names one, "" otherwise.
func messageIDOf(data []byte) string {
	if !bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		return ""
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) != nil {
		return ""
	}
	raw := fields["messageId"]
	var id string
	if json.Unmarshal(raw, &id) == nil {
		return strings.TrimSpace(id)
	}
	var number json.Number
	if json.Unmarshal(raw, &number) == nil {
		return number.String()
	}
	return ""
}

// excerpt returns the first resolver.MaxExcerptBytes of data with every
// secret of the edge (the webhook secret, the write keys) and the value of
// any writeKey field blanked. A secret cut off by the excerpt's end is
// dropped with the rest.
func (h *Handler) excerpt(data []byte) string {
	text := string(data[:min(len(data), resolver.MaxExcerptBytes)])
	if len(data) > resolver.MaxExcerptBytes {
		// Before replacing whole secrets, which could hide the start of a
		// longer secret that holds a shorter one.
		text = h.withoutSecretStart(text)
	}
	return withoutWriteKeyValues(h.withoutSecrets(text))
}

// withoutSecrets replaces every whole secret of the edge in text.
func (h *Handler) withoutSecrets(text string) string {
	for _, secret := range h.secrets {
		text = strings.ReplaceAll(text, secret, redacted)
	}
	return text
}

// withoutSecretStart cuts from text an ending that starts a secret: what
// is left of a secret the excerpt's end cut through.
func (h *Handler) withoutSecretStart(text string) string {
	for _, secret := range h.secrets {
		for n := min(len(secret)-1, len(text)); n > 0; n-- {
			if strings.HasSuffix(text, secret[:n]) {
				text = text[:len(text)-n]
				break
			}
		}
	}
	return text
}

// withoutWriteKeyValues blanks the string value of every field named
// writeKey (in any case or escape, as encoding/json matches keys), to its
// closing quote or to the end of text when the excerpt cut it. It looks at
// every quote, not only at well-formed JSON, so broken bodies are covered.
func withoutWriteKeyValues(text string) string {
	var out strings.Builder
	done := 0 // text[:done] is written or blanked
	for i := 0; i < len(text); {
		q := strings.IndexByte(text[i:], '"')
		if q < 0 {
			break
		}
		start := i + q
		value, ok := writeKeyValue(text, start)
		if !ok {
			i = start + 1
			continue
		}
		out.WriteString(text[done:value])
		out.WriteString(`"` + redacted + `"`)
		done = value + stringEnd(text[value:])
		i = done
	}
	out.WriteString(text[done:])
	return out.String()
}

// writeKeyValue reports where the string value starts of the field whose
// key is the JSON string at text[start:], when that key is writeKey.
func writeKeyValue(text string, start int) (int, bool) {
	const space = " \t\r\n"
	end := start + stringEnd(text[start:])
	var key string
	if end-start > 64 || json.Unmarshal([]byte(text[start:end]), &key) != nil ||
		!strings.EqualFold(key, "writeKey") {
		return 0, false
	}
	rest := strings.TrimLeft(text[end:], space)
	if !strings.HasPrefix(rest, ":") {
		return 0, false
	}
	rest = strings.TrimLeft(rest[1:], space)
	if !strings.HasPrefix(rest, `"`) {
		return 0, false
	}
	return len(text) - len(rest), true
}

// stringEnd returns the index just past the JSON string that text starts
// with, or len(text) when it does not end.
func stringEnd(text string) int {
	for i := 1; i < len(text); i++ {
		switch text[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(text)
}

// secretsOf returns the non-empty secrets of cfg, longest first, so that a
// secret holding another is replaced whole.
func secretsOf(cfg Config) []string {
	var secrets []string
	for _, s := range append([]string{cfg.Secret}, cfg.WriteKeys...) {
		if s != "" {
			secrets = append(secrets, s)
		}
	}
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	return secrets
}
