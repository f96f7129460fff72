package webhook

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strings"

	"github.com/knit-cdp/knit/resolver"
)

// Segment's limits on one request.
const (
	MaxRequestBytes   = 500 * 1024 // after decompression
	MaxBatchMessages  = 2500
	maxCompressedBody = 2 * MaxRequestBytes
)

// readBody returns the request body, decompressed when it is gzip, and
// refuses content types other than JSON or plain text. It stops reading at
// the limit, so a gzip bomb costs at most MaxRequestBytes of memory. With
// an error it returns what it read of the body, if anything, for the
// record of the refusal.
func readBody(r *http.Request) ([]byte, error) {
	if err := checkContentType(r.Header.Get("Content-Type")); err != nil {
		return nil, err
	}

	var body io.Reader = http.MaxBytesReader(nil, r.Body, maxCompressedBody)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		gz, err := gzip.NewReader(body)
		if err != nil {
			return nil, resolver.Errorf(resolver.EInvalid,
				"body says Content-Encoding gzip but is not gzip: %v", err)
		}
		defer gz.Close()
		body = gz
	default:
		return nil, resolver.Errorf(resolver.EUnsupported,
			"Content-Encoding %q is not supported; send gzip or nothing", enc)
	}

	data, err := io.ReadAll(io.LimitReader(body, MaxRequestBytes+1))
	if err != nil {
		return data, readError(err)
	}
	if len(data) > MaxRequestBytes {
		return data, resolver.Errorf(resolver.ETooLarge,
			"request body is over %d bytes (500 KB) after decompression", MaxRequestBytes)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return data, resolver.Errorf(resolver.EInvalid, "request body is empty")
	}
	if bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
		return data, resolver.Errorf(resolver.EInvalid, "request body looks gzip-compressed; "+
			"send it with Content-Encoding: gzip")
	}
	return data, nil
}

func readError(err error) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return resolver.Errorf(resolver.ETooLarge,
			"request body is over %d bytes before decompression", maxCompressedBody)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The server's ReadTimeout passed: a slow or stalled sender.
		return resolver.Errorf(resolver.ETimeout, "the request body did not arrive "+
			"in time; send it again")
	}
	var corrupt flate.CorruptInputError
	if errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &corrupt) {
		return resolver.Errorf(resolver.EInvalid, "request body is truncated or "+
			"corrupt: %v", err)
	}
	return fmt.Errorf("read request body: %w", err)
}

// checkContentType accepts JSON and plain text (with parameters such as
// charset) and an absent header, as Segment's libraries send all three.
func checkContentType(header string) error {
	if strings.TrimSpace(header) == "" {
		return nil
	}
	mediaType, _, err := mime.ParseMediaType(header)
	if err != nil {
		return resolver.Errorf(resolver.EUnsupported, "Content-Type %q does not parse", header)
	}
	switch mediaType {
	case "application/json", "text/plain":
		return nil
	}
	if strings.HasSuffix(mediaType, "+json") {
		return nil
	}
	return resolver.Errorf(resolver.EUnsupported,
		"Content-Type %q is not supported; send application/json", mediaType)
}
