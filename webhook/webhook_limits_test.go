package webhook_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/webhook"
)

// mustPadded returns a valid track message of exactly size bytes.
func mustPadded(t *testing.T, id string, size int) string {
	t.Helper()

	base := fmt.Sprintf(`{"type":"track","userId":"u-big","event":"Big","messageId":%q,`+
		`"properties":{"pad":""}}`, id)
	if size < len(base) {
		t.Fatalf("size %d is below the %d-byte skeleton", size, len(base))
	}
	pad := strings.Repeat("x", size-len(base))
	msg := strings.Replace(base, `"pad":""`, `"pad":"`+pad+`"`, 1)
	if len(msg) != size {
		t.Fatalf("padded message is %d bytes, want %d", len(msg), size)
	}
	return msg
}

// mustBodyOfSize returns a JSON array of count 30,000-byte messages,
// padded with whitespace to exactly size bytes.
func mustBodyOfSize(t *testing.T, count, size int) []byte {
	t.Helper()

	items := make([]string, count)
	for i := range items {
		items[i] = mustPadded(t, fmt.Sprintf("m%02d", i), 30000)
	}
	body := "[" + strings.Join(items, ",")
	if len(body)+1 > size {
		t.Fatalf("%d messages already take %d bytes, over %d", count, len(body)+1, size)
	}
	body += strings.Repeat(" ", size-len(body)-1) + "]"
	return []byte(body)
}

func TestMessageSizeLimit(t *testing.T) {
	const limit = resolver.MaxMessageBytes
	const key = "wk-test"

	tests := []struct {
		name     string
		path     string
		size     int
		wantCode string // "" when the message is stored
	}{
		{"webhook message of exactly 32 KB is stored", "/webhook", limit, ""},
		{"webhook message one byte over 32 KB is refused", "/webhook", limit + 1,
			resolver.ETooLarge},
		{"webhook message of 100 KB is refused", "/webhook", 100 * 1024, resolver.ETooLarge},
		{"tracking call of exactly 32 KB is stored", "/v1/track", limit, ""},
		{"tracking call one byte over 32 KB is refused", "/v1/track", limit + 1,
			resolver.ETooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustServer(t, webhook.Config{WriteKeys: []string{key}})
			body := []byte(mustPadded(t, "m-big", tt.size))

			rec := mustPost(t, s, call{path: tt.path, body: body, user: key})

			if tt.wantCode == "" {
				mustSucceed(t, rec)
				if got := mustEventCount(t, s); got != 1 {
					t.Errorf("stored %d events, want 1", got)
				}
				return
			}
			mustFail(t, rec, http.StatusBadRequest, tt.wantCode,
				fmt.Sprint(tt.size), fmt.Sprint(limit), "32 KB")
			if got := mustEventCount(t, s); got != 0 {
				t.Errorf("stored %d events, want 0", got)
			}
		})
	}
}

func TestRequestSizeLimit(t *testing.T) {
	const key = "wk-test"
	limit := webhook.MaxRequestBytes
	atLimit := mustBodyOfSize(t, 15, limit)
	overLimit := mustBodyOfSize(t, 15, limit+1)
	overTracking := []byte(`{"batch":` + string(mustBodyOfSize(t, 17, limit)) + `}`)
	bomb := mustGzipBomb(t, 64<<20)
	// What a refusal must name: the limit after decompression, or before.
	decompressed := []string{fmt.Sprint(limit), "500 KB", "after decompression"}
	compressed := []string{fmt.Sprint(2 * limit), "before decompression"}

	tests := []struct {
		name      string
		path      string
		body      []byte
		gzipped   bool     // body is gzip and says so
		wantCount int      // events stored when accepted
		wantParts []string // what the 400 names; nil when accepted
	}{
		{"body of exactly 500 KB is stored", "/webhook", atLimit, false, 15, nil},
		{"body one byte over 500 KB is refused", "/webhook", overLimit, false, 0,
			decompressed},
		{"gzip body of exactly 500 KB decompressed is stored",
			"/webhook", mustGzip(t, atLimit), true, 15, nil},
		{"gzip body one byte over 500 KB decompressed is refused",
			"/webhook", mustGzip(t, overLimit), true, 0, decompressed},
		{"tracking batch over 500 KB is refused", "/v1/batch", overTracking, false, 0,
			decompressed},
		{"gzip tracking batch over 500 KB decompressed is refused",
			"/v1/batch", mustGzip(t, overTracking), true, 0, decompressed},
		{"plain body of 2 MB is refused", "/webhook",
			bytes.Repeat([]byte(" "), 2<<20), false, 0, decompressed},
		{"gzip bomb on /webhook is refused", "/webhook", bomb, true, 0, decompressed},
		{"gzip bomb on /v1/batch is refused", "/v1/batch", bomb, true, 0, decompressed},
		{"gzip of empty members over 1 MB compressed is refused",
			"/webhook", mustEmptyGzipMembers(t, 2*limit), true, 0, compressed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustServer(t, webhook.Config{WriteKeys: []string{key}})
			c := call{path: tt.path, body: tt.body, user: key}
			if tt.gzipped {
				c.header = map[string]string{"Content-Encoding": "gzip"}
			}

			rec := mustPost(t, s, c)

			if tt.wantParts != nil {
				mustFail(t, rec, http.StatusBadRequest, resolver.ETooLarge, tt.wantParts...)
			} else {
				mustSucceed(t, rec)
			}
			if got := mustEventCount(t, s); got != tt.wantCount {
				t.Errorf("stored %d events, want %d", got, tt.wantCount)
			}
		})
	}
}

// mustGzipBomb returns a small gzip stream that decompresses to size bytes:
// a JSON array opening followed by spaces.
func mustGzipBomb(t *testing.T, size int) []byte {
	t.Helper()

	data := make([]byte, size)
	for i := range data {
		data[i] = ' '
	}
	data[0] = '['
	compressed := mustGzip(t, data)
	if len(compressed) > size/100 || len(compressed) > webhook.MaxRequestBytes {
		t.Fatalf("bomb compresses to %d bytes; not a bomb", len(compressed))
	}
	return compressed
}

// mustEmptyGzipMembers returns a multi-member gzip stream of more than size
// compressed bytes that decompresses to one small message: the compressed
// side of the limit, which ordinary gzip can never reach below 500 KB.
func mustEmptyGzipMembers(t *testing.T, size int) []byte {
	t.Helper()

	empty := mustGzip(t, nil)
	var buf bytes.Buffer
	for buf.Len() <= size {
		buf.Write(empty)
	}
	buf.Write(mustGzip(t, []byte(track("m1"))))
	return buf.Bytes()
}

// manyTracks returns n small distinct track messages.
func manyTracks(n int) []string {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf(`{"type":"track","userId":"u1","event":"E",`+
			`"messageId":"m%04d"}`, i)
	}
	return items
}

func TestBatchCountLimit(t *testing.T) {
	const key = "wk-test"
	maxBatch := webhook.MaxBatchMessages

	tests := []struct {
		name   string
		path   string
		count  int
		stored bool
	}{
		{"webhook array of 2,500 messages is stored", "/webhook", maxBatch, true},
		{"webhook array of 2,501 messages is refused", "/webhook", maxBatch + 1, false},
		{"tracking batch of 2,500 messages is stored", "/v1/batch", maxBatch, true},
		{"tracking batch of 2,501 messages is refused", "/v1/batch", maxBatch + 1, false},
		{"import of 2,501 messages is refused", "/v1/import", maxBatch + 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustServer(t, webhook.Config{WriteKeys: []string{key}})
			body := array(manyTracks(tt.count)...)
			if tt.path != "/webhook" {
				body = batchBody(manyTracks(tt.count)...)
			}

			rec := mustPost(t, s, call{path: tt.path, body: body, user: key})

			if !tt.stored {
				mustFail(t, rec, http.StatusBadRequest, resolver.ETooLarge,
					fmt.Sprint(tt.count), "2500")
				if got := mustEventCount(t, s); got != 0 {
					t.Errorf("stored %d events, want 0", got)
				}
				return
			}
			mustSucceed(t, rec)
			if got := mustEventCount(t, s); got != tt.count {
				t.Errorf("stored %d events, want %d", got, tt.count)
			}
		})
	}
}

func TestGzipBodies(t *testing.T) {
	const key = "wk-test"
	single := []byte(track("m1"))
	compressed := mustGzip(t, single)

	tests := []struct {
		name     string
		path     string
		body     []byte
		encoding string
		wantIDs  []string
	}{
		{"gzip single object on /webhook is stored", "/webhook", compressed, "gzip",
			[]string{"m1"}},
		{"gzip array on /webhook is stored", "/webhook",
			mustGzip(t, array(track("m1"), track("m2"))), "gzip", []string{"m1", "m2"}},
		{"gzip batch on /v1/batch is stored", "/v1/batch",
			mustGzip(t, batchBody(track("m1"), track("m2"))), "gzip", []string{"m1", "m2"}},
		{"gzip call on /v1/track is stored", "/v1/track", compressed, "gzip",
			[]string{"m1"}},
		{"x-gzip is read as gzip", "/webhook", compressed, "x-gzip", []string{"m1"}},
		{"upper-case GZIP is read as gzip", "/webhook", compressed, "GZIP", []string{"m1"}},
		{"identity encoding is read as is", "/webhook", single, "identity",
			[]string{"m1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustServer(t, webhook.Config{WriteKeys: []string{key}})
			rec := mustPost(t, s, call{path: tt.path, body: tt.body, user: key,
				header: map[string]string{"Content-Encoding": tt.encoding}})

			mustSucceed(t, rec)
			if got := mustMessageIDs(t, s); !equalStrings(got, tt.wantIDs) {
				t.Errorf("stored %q, want %q", got, tt.wantIDs)
			}
		})
	}
}

func TestBadEncodings(t *testing.T) {
	const key = "wk-test"
	good := mustGzip(t, array(track("m1"), track("m2")))
	badChecksum := append([]byte(nil), good...)
	badChecksum[len(badChecksum)-8] ^= 0xff // first byte of the CRC-32
	// A valid gzip header followed by a deflate block of reserved type 3.
	corruptDeflate := append(append([]byte(nil), good[:10]...), bytes.Repeat([]byte{0xff}, 32)...)

	tests := []struct {
		name       string
		path       string
		body       []byte
		encoding   string
		wantStatus int
		wantCode   string
	}{
		{"plain JSON labelled gzip is refused", "/webhook", array(track("m1")), "gzip",
			http.StatusBadRequest, resolver.EInvalid},
		{"truncated gzip is refused", "/webhook", good[:len(good)/2], "gzip",
			http.StatusBadRequest, resolver.EInvalid},
		{"gzip without its trailer is refused", "/webhook", good[:len(good)-8], "gzip",
			http.StatusBadRequest, resolver.EInvalid},
		{"gzip with a wrong checksum is refused", "/webhook", badChecksum, "gzip",
			http.StatusBadRequest, resolver.EInvalid},
		{"gzip with corrupt deflate data is refused", "/webhook", corruptDeflate, "gzip",
			http.StatusBadRequest, resolver.EInvalid},
		{"corrupt gzip on /v1/batch is refused", "/v1/batch", corruptDeflate, "gzip",
			http.StatusBadRequest, resolver.EInvalid},
		{"brotli is unsupported", "/webhook", good, "br",
			http.StatusUnsupportedMediaType, resolver.EUnsupported},
		{"deflate is unsupported", "/webhook", good, "deflate",
			http.StatusUnsupportedMediaType, resolver.EUnsupported},
		{"unknown encoding on /v1/track is unsupported", "/v1/track", good, "compress",
			http.StatusUnsupportedMediaType, resolver.EUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustServer(t, webhook.Config{WriteKeys: []string{key}})
			rec := mustPost(t, s, call{path: tt.path, body: tt.body, user: key,
				header: map[string]string{"Content-Encoding": tt.encoding}})

			mustFail(t, rec, tt.wantStatus, tt.wantCode)
			if got := mustEventCount(t, s); got != 0 {
				t.Errorf("stored %d events, want 0", got)
			}
		})
	}
}

func TestContentTypes(t *testing.T) {
	const key = "wk-test"

	tests := []struct {
		name        string
		contentType string // "" sends no header
		accepted    bool
	}{
		{"application/json with charset is accepted", "application/json; charset=utf-8", true},
		{"bare application/json is accepted", "application/json", true},
		{"upper-case media type is accepted", "Application/JSON", true},
		{"text/plain is accepted", "text/plain", true},
		{"text/plain with charset is accepted", "text/plain;charset=UTF-8", true},
		{"a +json media type is accepted", "application/vnd.segment+json", true},
		{"missing Content-Type is accepted", "", true},
		{"form encoding is unsupported", "application/x-www-form-urlencoded", false},
		{"multipart is unsupported", "multipart/form-data; boundary=xyz", false},
		{"XML is unsupported", "application/xml", false},
		{"an unparsable Content-Type is unsupported", "json;;;=", false},
	}
	for _, path := range []string{"/webhook", "/v1/track", "/v1/batch"} {
		for _, tt := range tests {
			t.Run(path+" "+tt.name, func(t *testing.T) {
				s := mustServer(t, webhook.Config{WriteKeys: []string{key}})
				body := []byte(track("m1"))
				if path == "/v1/batch" {
					body = batchBody(track("m1"))
				}
				c := call{path: path, body: body, user: key}
				if tt.contentType != "" {
					c.header = map[string]string{"Content-Type": tt.contentType}
				}

				rec := mustPost(t, s, c)

				want := 1
				if tt.accepted {
					mustSucceed(t, rec)
				} else {
					want = 0
					mustFail(t, rec, http.StatusUnsupportedMediaType, resolver.EUnsupported,
						"Content-Type")
				}
				if got := mustEventCount(t, s); got != want {
					t.Errorf("stored %d events, want %d", got, want)
				}
			})
		}
	}
}

func TestGzipWithoutContentEncodingIsExplained(t *testing.T) {
	s := mustServer(t, webhook.Config{})
	rec := mustPost(t, s, call{path: "/webhook", body: mustGzip(t, []byte(track("m1")))})
	mustFail(t, rec, http.StatusBadRequest, resolver.EInvalid, "Content-Encoding: gzip")
	if n := mustEventCount(t, s); n != 0 {
		t.Errorf("%d events stored", n)
	}
}
