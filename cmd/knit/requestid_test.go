package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestLogLinesNameTheRequest sends a batch with one bad message and wants
// every log line about it, the webhook's own and the request line, to
// carry the request's id.
func TestLogLinesNameTheRequest(t *testing.T) {
	var logs lockedBuffer
	base := startLoggingServer(t, &logs)

	body := `{"batch":[{"type":"track","messageId":"ok-1","userId":"u1","event":"E"},` +
		`{"type":"track","messageId":"bad-1","event":"E"}]}`
	req, err := http.NewRequest(http.MethodPost, base+"/v1/batch", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("log-key", "")
	req.Header.Set("X-Request-Id", "trace-4711")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	var about []string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "batch partly rejected") ||
			strings.Contains(line, "path=/v1/batch") {
			about = append(about, line)
		}
	}
	if len(about) < 2 {
		t.Fatalf("want the webhook's line and the request line, got %q\nall logs:\n%s",
			about, logs.String())
	}
	for _, line := range about {
		if strings.Count(line, "request_id=trace-4711") != 1 {
			t.Errorf("log line does not name the request once: %s", line)
		}
	}
}

// startLoggingServer runs knit serve at debug level with its log in logs.
func startLoggingServer(t *testing.T, logs io.Writer) string {
	return startInProcess(t, map[string]string{"KNIT_WRITE_KEYS": "log-key",
		"KNIT_API_TOKEN": "log-token", "KNIT_LOG_LEVEL": "debug"}, logs)
}

// TestRefusedBatchNamesTheRequest: a batch with nothing valid is answered
// with the request id in its body and leaves a log line that names it.
func TestRefusedBatchNamesTheRequest(t *testing.T) {
	var logs lockedBuffer
	base := startLoggingServer(t, &logs)

	body := `{"batch":[{"type":"track","userId":"u1"},{"userId":"u2"}]}`
	req, err := http.NewRequest(http.MethodPost, base+"/v1/batch", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("log-key", "")
	req.Header.Set("X-Request-Id", "trace-all-bad")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	reply, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	if resp.StatusCode != http.StatusBadRequest ||
		!strings.Contains(string(reply), `"request_id":"trace-all-bad"`) {
		t.Errorf("answer %d %s, want 400 naming the request id", resp.StatusCode, reply)
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "request refused") &&
			strings.Contains(line, "request_id=trace-all-bad") {
			return
		}
	}
	t.Errorf("no refusal line names the request:\n%s", logs.String())
}
