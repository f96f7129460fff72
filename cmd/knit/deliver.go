package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/knit-cdp/knit/audiences"
)

// httpSender delivers audience changes over HTTP.
type httpSender struct{ client *http.Client }

// Send posts the request and returns the status; an error means no answer.
func (s httpSender) Send(ctx context.Context, r audiences.Request) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	for k, v := range r.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("User-Agent", "knit")
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64*1024))
	return resp.StatusCode, nil
}

// deliverUntilDone sends due audience changes every few seconds until ctx
// ends, and returns when the last attempt has finished.
func deliverUntilDone(ctx context.Context, runner *audiences.Runner, log *slog.Logger) {
	sender := httpSender{client: &http.Client{Timeout: 10 * time.Second}}
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		for {
			n, err := runner.DeliverDue(ctx, sender, 100)
			if err != nil && ctx.Err() == nil {
				log.Error("deliver audience changes", "error", err)
			}
			// Fewer than a batch means every destination has caught up
			// or has stopped at a failure until the next tick.
			if n < 100 || err != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
