package webhook

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/resolver"
)

// trackingFunc handles a tracking API request whose body has been read and
// whose HTTP Basic write key, if any, is valid. It answers by calling
// h.store, or returns an error for tracking to answer. It sets req.source
// once it knows the write key.
type trackingFunc func(c *gin.Context, req *request) error

// tracking wraps fn with what every tracking API endpoint does first, and
// answers and records its refusals.
func (h *Handler) tracking(fn trackingFunc) gin.HandlerFunc {
	return func(c *gin.Context) {
		req := &request{received: h.cfg.Now(), source: trackingSource}
		err := h.authenticateEarly(c, req)
		if err == nil {
			req.body, err = readBody(c.Request)
		}
		if err == nil {
			err = fn(c, req)
		}
		if err != nil {
			h.fail(c, req, err)
		}
	}
}

// trackingCall serves /v1/identify, /v1/track and the other single calls.
// The endpoint decides the message's type, as on Segment's API.
func (h *Handler) trackingCall(kind string) gin.HandlerFunc {
	return h.tracking(func(c *gin.Context, req *request) error {
		// Before decoding, which would turn bad bytes into U+FFFD unseen.
		if err := resolver.CheckUTF8(req.body); err != nil {
			return err
		}
		fields, err := decodeFields(req.body)
		if err != nil {
			return err
		}
		if err := h.authenticate(c, req, fields["writeKey"]); err != nil {
			return err
		}
		if err := h.limiter.allow(req.source, 1); err != nil {
			return err
		}

		// The write key is a secret: it is not kept with the event.
		item := req.body
		_, hasKey := fields["writeKey"]
		if declared, _ := fields["type"].(string); declared != kind || hasKey {
			fields["type"] = kind
			delete(fields, "writeKey")
			if item, err = encodeJSON(fields); err != nil {
				return err
			}
		}
		env := resolver.Envelope{Source: req.source, ReceivedAt: req.received, CorrectSkew: true}
		h.store(c, [][]byte{item}, env)
		return nil
	})
}

// batchBody is the body of /v1/batch and /v1/import.
type batchBody struct {
	Batch        []json.RawMessage `json:"batch"`
	Context      map[string]any    `json:"context"`
	Integrations map[string]any    `json:"integrations"`
	WriteKey     any               `json:"writeKey"`
	SentAt       string            `json:"sentAt"`
}

// trackingBatch serves /v1/batch and /v1/import.
func (h *Handler) trackingBatch(c *gin.Context, req *request) error {
	var batch batchBody
	if err := decodeStrict(req.body, &batch); err != nil {
		return err
	}
	if err := h.authenticate(c, req, batch.WriteKey); err != nil {
		return err
	}
	if err := checkBatchSize(len(batch.Batch)); err != nil {
		return err
	}
	if err := h.limiter.allow(req.source, len(batch.Batch)); err != nil {
		return err
	}

	items := make([][]byte, len(batch.Batch))
	for i, item := range batch.Batch {
		items[i] = withBatchDefaults(item, batch.Context, batch.Integrations)
	}
	env := resolver.Envelope{
		Source: req.source, ReceivedAt: req.received, CorrectSkew: true,
		BatchSentAt: batch.SentAt,
	}
	h.store(c, items, env)
	return nil
}

func decodeFields(body []byte) (map[string]any, error) {
	var fields map[string]any
	if err := decodeStrict(body, &fields); err != nil {
		return nil, err
	}
	if fields == nil {
		return nil, resolver.Errorf(resolver.EInvalid, "body must be a JSON object, not null")
	}
	return fields, nil
}

func decodeStrict(body []byte, dest any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(dest); err != nil {
		return describeJSONError(err)
	}
	if resolver.TrailingData(body, dec.InputOffset()) {
		return resolver.Errorf(resolver.EInvalid, "body has data after its JSON object")
	}
	return nil
}

// withBatchDefaults merges a batch's context and integrations into one of
// its messages, the message's own keys winning at every level, and drops a
// writeKey from the message, since the key is a secret knit does not keep.
// It returns the item untouched when there is nothing to change or the item
// is not an object or not valid UTF-8 (parsing will name that problem).
func withBatchDefaults(item json.RawMessage, context, integrations map[string]any) []byte {
	hasKey := bytes.Contains(item, []byte(`"writeKey"`))
	if !utf8.Valid(item) || len(context) == 0 && len(integrations) == 0 && !hasKey {
		return item
	}
	var fields map[string]any
	dec := json.NewDecoder(bytes.NewReader(item))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return item
	}
	delete(fields, "writeKey")

	for key, defaults := range map[string]map[string]any{
		"context": context, "integrations": integrations,
	} {
		if len(defaults) == 0 {
			continue
		}
		own, isObject := fields[key].(map[string]any)
		if fields[key] != nil && !isObject {
			continue
		}
		fields[key] = deepMerge(defaults, own)
	}
	merged, err := encodeJSON(fields)
	if err != nil {
		return item
	}
	return merged
}

// deepMerge returns base overlaid with top: top's values win, and objects
// present in both merge recursively.
func deepMerge(base, top map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(top))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range top {
		baseObject, baseIs := out[k].(map[string]any)
		topObject, topIs := v.(map[string]any)
		if baseIs && topIs {
			out[k] = deepMerge(baseObject, topObject)
			continue
		}
		out[k] = v
	}
	return out
}

// authenticate checks the write key, given as the HTTP Basic user name or
// as writeKey in the body, and sets req.source to the source label events
// keep: a short hash of the key, never the key itself.
func (h *Handler) authenticate(c *gin.Context, req *request, bodyKey any) error {
	if len(h.cfg.WriteKeys) == 0 {
		return resolver.Errorf(resolver.EUnauthorized,
			"the tracking API is off: no write keys are configured (KNIT_WRITE_KEYS)")
	}
	key, _, ok := c.Request.BasicAuth()
	if !ok || key == "" {
		key, _ = bodyKey.(string)
	}
	if key == "" {
		return resolver.Errorf(resolver.EUnauthorized, "a write key is required: "+
			"send it as the HTTP Basic user name or as writeKey in the body")
	}

	// Hashes have one length, so the time taken tells nothing of a key's
	// length either, and every key is compared.
	given := sha256.Sum256([]byte(key))
	match := 0
	for _, allowed := range h.cfg.WriteKeys {
		want := sha256.Sum256([]byte(allowed))
		match |= subtle.ConstantTimeCompare(given[:], want[:])
	}
	if match == 1 {
		req.source = WriteKeySource(key)
		return nil
	}
	return resolver.Errorf(resolver.EUnauthorized, "write key is not valid")
}

// authenticateEarly refuses a request before its body is read when the
// tracking API is off or the HTTP Basic write key is wrong, so callers
// without a valid key learn that first and cost no parsing. A key in the
// body is checked once the body is read.
func (h *Handler) authenticateEarly(c *gin.Context, req *request) error {
	if key, _, ok := c.Request.BasicAuth(); ok && key != "" || len(h.cfg.WriteKeys) == 0 {
		return h.authenticate(c, req, nil)
	}
	return nil
}

// WriteKeySource is the label stored with events from a write key: "wk_"
// and the first 12 hex digits of its SHA-256, enough to tell sources apart
// without keeping the secret.
func WriteKeySource(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "wk_" + hex.EncodeToString(sum[:6])
}

// encodeJSON encodes a message knit had to change without Go's HTML
// escaping, so "<" stays one byte and the 32 KB limit measures what the
// sender sent.
func encodeJSON(fields map[string]any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(fields); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// describeJSONError explains why a body did not decode in the caller's
// terms, without Go type names.
func describeJSONError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		field := typeErr.Field
		if field == "" {
			field = "body"
		}
		return resolver.Errorf(resolver.EInvalid, "%s must be %s, not %s",
			field, jsonKind(typeErr.Type), typeErr.Value)
	}
	return resolver.Errorf(resolver.EInvalid, "body is not valid JSON: %v", err)
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.String:
		return "a string"
	default:
		return "a " + t.Kind().String()
	}
}
