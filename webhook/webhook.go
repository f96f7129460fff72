// Package webhook is knit's HTTP ingestion edge: Segment's Webhooks
// destination (classic and Actions, single and batched) at /webhook, and the
// Segment tracking API at /v1/* for libraries pointed straight at knit. It
// parses and authenticates requests and hands messages to the resolver;
// a 2xx is sent only after they are committed.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/web/httpx"
)

// Ingester stores parsed messages; *resolver.Store is one.
type Ingester interface {
	Ingest(ctx context.Context, messages []*resolver.Message) ([]resolver.Outcome, error)
}

// Config holds the edge's secrets, clock and record of refusals.
type Config struct {
	// Secret is Segment's shared secret; when set, /webhook requires a valid
	// X-Signature.
	Secret string
	// WriteKeys are the keys the tracking API accepts; none disables it.
	WriteKeys []string
	// Now is the receive clock, injectable for tests.
	Now func() time.Time
	// Rejections, when set, records every refusal: whole requests and
	// single messages of a batch, without secrets.
	Rejections RejectionRecorder
	// Limits bound the messages a source sends and the requests in flight;
	// the zero Limits limits nothing.
	Limits Limits
}

// Handler serves the ingestion endpoints.
type Handler struct {
	ingester Ingester
	cfg      Config
	log      *slog.Logger
	secrets  []string // blanked from records of refusals, longest first
	limiter  *limiter
}

// New returns a Handler that stores into store.
func New(store Ingester, cfg Config, log *slog.Logger) *Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Handler{ingester: store, cfg: cfg, log: log, secrets: secretsOf(cfg),
		limiter: newLimiter(cfg.Limits, log)}
}

// Register adds the ingestion routes to router.
// Every route is behind the cap on requests and bytes in flight.
func (h *Handler) Register(router gin.IRouter) {
	admit := h.limiter.admit
	router.POST("/webhook", admit, h.webhook)
	for _, kind := range []string{"identify", "track", "page", "screen", "group", "alias"} {
		router.POST("/v1/"+kind, admit, h.trackingCall(kind))
	}
	router.POST("/v1/batch", admit, h.tracking(h.trackingBatch))
	router.POST("/v1/import", admit, h.tracking(h.trackingBatch))
}

// Rejection reports one message of a batch that was not stored.
type Rejection struct {
	Index int               `json:"index"`
	Error httpx.ErrorDetail `json:"error"`
}

// response is the body of a successful ingestion.
type response struct {
	Success  bool        `json:"success"`
	Rejected []Rejection `json:"rejected,omitempty"`
}

// failure is the body when the whole request is refused.
type failure struct {
	httpx.ErrorBody
	Rejected []Rejection `json:"rejected,omitempty"`
}

func (h *Handler) webhook(c *gin.Context) {
	req := &request{received: h.cfg.Now(), source: "webhook"}
	var err error
	if req.body, err = readBody(c.Request); err != nil {
		h.fail(c, req, err)
		return
	}

	items, signed, err := splitWebhookBody(req.body)
	if err != nil {
		h.fail(c, req, err)
		return
	}
	if h.cfg.Secret != "" {
		array := bytes.HasPrefix(bytes.TrimSpace(req.body), []byte("["))
		err := verifySignature(h.cfg.Secret, c.GetHeader("X-Signature"), signed, array)
		if err != nil {
			h.fail(c, req, err)
			return
		}
	}
	if err := h.limiter.allow(req.source, len(items)); err != nil {
		h.fail(c, req, err)
		return
	}

	env := resolver.Envelope{Source: req.source, ReceivedAt: req.received, AllowDelete: true,
		RequestID: httpx.RequestIDOf(c)}
	h.store(c, items, env)
}

// splitWebhookBody returns the messages of a webhook body (one object, or an
// array of them from Actions batching) as raw bytes, and the bytes Segment
// signed: the whole body, or the first element exactly as it stands.
func splitWebhookBody(body []byte) (items [][]byte, signed []byte, err error) {
	trimmed := bytes.TrimSpace(body)
	if bytes.HasPrefix(trimmed, []byte(`{"batch"`)) {
		return nil, nil, resolver.Errorf(resolver.EInvalid, "this is a tracking API "+
			"batch; send {\"batch\": [...]} bodies to /v1/batch with a write key")
	}
	if len(trimmed) == 0 || trimmed[0] != '[' {
		return [][]byte{body}, body, nil
	}

	var raw []json.RawMessage
	if err := json.Unmarshal(trimmed, &raw); err != nil {
		return nil, nil, resolver.Errorf(resolver.EInvalid, "body is not a valid "+
			"JSON array of messages: %v", err)
	}
	if err := checkBatchSize(len(raw)); err != nil {
		return nil, nil, err
	}
	items = make([][]byte, len(raw))
	for i, item := range raw {
		items[i] = item
	}
	return items, raw[0], nil
}

func checkBatchSize(n int) error {
	if n == 0 {
		return resolver.Errorf(resolver.EInvalid, "batch is empty")
	}
	if n > MaxBatchMessages {
		return resolver.Errorf(resolver.ETooLarge,
			"batch has %d messages; the limit is %d", n, MaxBatchMessages)
	}
	return nil
}

// store parses every item, stores the valid ones in one transaction and
// answers: 200 when anything was stored (listing rejected items by index),
// 4xx when nothing in the request was valid, 5xx only when knit failed.
// Rejected items are recorded unless knit failed, since the sender retries
// those. Once the body is read, storing goes on if the sender hangs up or
// half-closes its connection (net/http then cancels the request's
// context): a sender that still waits gets its answer instead of a 500,
// and one that left finds its messages stored when it retries.
func (h *Handler) store(c *gin.Context, items [][]byte, env resolver.Envelope) {
	var messages []*resolver.Message
	var rejected []Rejection
	var records []resolver.Rejection
	var firstErr error
	for i, item := range items {
		m, err := resolver.ParseMessage(item, env)
		if err != nil {
			rejected = append(rejected, Rejection{Index: i, Error: httpx.Detail(err)})
			records = append(records, h.rejection(c, env.ReceivedAt, env.Source, err, item))
			firstErr = firstOf(firstErr, err)
			continue
		}
		messages = append(messages, m)
	}

	if len(messages) == 0 {
		h.record(c, records)
		h.refuse(c, items, rejected, firstErr)
		return
	}
	ctx := context.WithoutCancel(c.Request.Context())
	if _, err := h.ingester.Ingest(ctx, messages); err != nil {
		httpx.Error(c, h.log, err)
		return
	}
	h.record(c, records)
	if len(rejected) > 0 && h.log != nil {
		h.log.WarnContext(c.Request.Context(), "batch partly rejected", "source", env.Source,
			"stored", len(messages), "rejected", len(rejected))
	}
	c.JSON(http.StatusOK, response{Success: true, Rejected: rejected})
}

func (h *Handler) refuse(c *gin.Context, items [][]byte, rejected []Rejection, err error) {
	if len(items) == 1 {
		httpx.Error(c, h.log, err)
		return
	}
	whole := resolver.Errorf(resolver.ErrorCode(err),
		"none of the %d messages is valid; see rejected", len(items))
	if h.log != nil {
		h.log.WarnContext(c.Request.Context(), "request refused",
			"method", c.Request.Method, "path", c.Request.URL.Path,
			"status", httpx.Status(whole), "code", resolver.ErrorCode(whole),
			"reason", resolver.ErrorMessage(whole), "first_error", resolver.ErrorMessage(err))
	}
	c.AbortWithStatusPureJSON(httpx.Status(whole), failure{
		ErrorBody: httpx.ErrorBody{Error: httpx.Detail(whole),
			RequestID: httpx.RequestIDOf(c)},
		Rejected: rejected,
	})
}

func firstOf(current, next error) error {
	if current != nil {
		return current
	}
	return next
}
