package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/knit-cdp/knit/webhook"
)

// serveLimits are the protections of `knit serve` against load and abuse:
// the ingestion limits and how long a client may take to send a request.
type serveLimits struct {
	ingest webhook.Limits
	// headerTimeout bounds the time to read a request's headers, and
	// readTimeout the time to read a whole request, body included.
	headerTimeout time.Duration
	readTimeout   time.Duration
}

// limitsHelp documents the settings parseServeLimits reads, for
// `knit serve --help`.
const limitsHelp = `
Load and abuse limits (environment):
  KNIT_RATE_LIMIT      messages a second one source (a write key, or /webhook)
                       may send, counted per message; over it: 429 with
                       Retry-After. 0 or unset: off
  KNIT_RATE_BURST      messages a source may send at once (default: the rate,
                       at least 2500, the largest batch)
  KNIT_MAX_INFLIGHT    ingestion requests served at once; more: 503 with
                       Retry-After (default 256; 0: no cap)
  KNIT_MAX_INFLIGHT_BYTES  request body bytes held at once, such as 64MB
                       (default 64MB; 0: no cap)
  KNIT_READ_HEADER_TIMEOUT  time to send a request's headers (default 10s)
  KNIT_READ_TIMEOUT    time to send a whole request (default 60s)`

// parseServeLimits reads the limits from the environment, reporting every
// bad setting at once.
func parseServeLimits(getenv env) (serveLimits, error) {
	out := serveLimits{ingest: webhook.DefaultLimits(),
		headerTimeout: 10 * time.Second, readTimeout: 60 * time.Second}
	var errs []error
	read := func(name string, parse func(string) error) {
		if text := strings.TrimSpace(getenv(name)); text != "" {
			if err := parse(text); err != nil {
				errs = append(errs, fmt.Errorf("%s %q: %w", name, text, err))
			}
		}
	}
	read("KNIT_RATE_LIMIT", func(s string) (err error) {
		out.ingest.Rate, err = strconv.ParseFloat(s, 64)
		return plainly(err, "want a number of messages a second, such as 500")
	})
	read("KNIT_RATE_BURST", func(s string) (err error) {
		out.ingest.Burst, err = strconv.Atoi(s)
		return plainly(err, "want a whole number of messages, such as 5000")
	})
	read("KNIT_MAX_INFLIGHT", func(s string) (err error) {
		out.ingest.MaxInflight, err = strconv.Atoi(s)
		return plainly(err, "want a whole number of requests, such as 256")
	})
	read("KNIT_MAX_INFLIGHT_BYTES", func(s string) (err error) {
		out.ingest.MaxInflightBytes, err = parseBytes(s)
		return err
	})
	read("KNIT_READ_HEADER_TIMEOUT", func(s string) (err error) {
		out.headerTimeout, err = positiveDuration(s)
		return err
	})
	read("KNIT_READ_TIMEOUT", func(s string) (err error) {
		out.readTimeout, err = positiveDuration(s)
		return err
	})
	if len(errs) == 0 {
		if err := out.ingest.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return out, fmt.Errorf("%w: %w", errUsage, err)
	}
	return out, nil
}

// plainly replaces a parser's error, which names Go functions, with what
// the setting wants.
func plainly(err error, want string) error {
	if err != nil {
		return errors.New(want)
	}
	return nil
}

// parseBytes reads a count of bytes, plain or with a KB, MB or GB suffix
// (powers of 1024).
func parseBytes(text string) (int64, error) {
	upper := strings.ToUpper(strings.TrimSpace(text))
	scale := int64(1)
	for _, unit := range []struct {
		suffix string
		scale  int64
	}{{"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"B", 1}} {
		if number, ok := strings.CutSuffix(upper, unit.suffix); ok {
			upper, scale = strings.TrimSpace(number), unit.scale
			break
		}
	}
	n, err := strconv.ParseInt(upper, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/scale {
		return 0, errors.New("want a whole number of bytes, such as 67108864 or 64MB")
	}
	return n * scale, nil
}

func positiveDuration(text string) (time.Duration, error) {
	d, err := time.ParseDuration(text)
	if err != nil || d <= 0 {
		return 0, errors.New("want a positive duration, such as 10s")
	}
	return d, nil
}
