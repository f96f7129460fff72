package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
	"github.com/knit-cdp/knit/webhook"
)

// mustServeEnv starts `knit serve` on a free 127.0.0.1 port over the
// database dsn with the environment env, writing its output to out, and
// stops it when the test ends.
func mustServeEnv(t *testing.T, dsn string, env map[string]string, out io.Writer) *server {
	t.Helper()
	addr := mustFreeAddr(t)
	args := []string{"serve", "--addr", addr, "--db", dsn}
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{base: "http://" + addr, cancel: cancel, done: make(chan error, 1)}
	go func() {
		s.done <- run(ctx, args, func(k string) string { return env[k] }, out, out)
	}()
	t.Cleanup(func() { s.stop(t) })
	for range 1000 {
		if resp, err := http.Get(s.base + "/healthz"); err == nil {
			resp.Body.Close()
			return s
		}
		select {
		case err := <-s.done:
			t.Fatalf("knit serve exited early: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatal("knit serve did not answer /healthz")
	return nil
}

// trickle sends a request's start on a raw connection, then one byte of
// more at a time until the server closes the connection, and returns what
// the server answered. It gives up, failing the test, only after sending
// for far longer than the timeouts under test.
func trickle(t *testing.T, addr, start, more string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := make(chan []byte, 1)
	go func() {
		answer, _ := io.ReadAll(conn) // until the server closes
		closed <- answer
	}()
	if _, err := io.WriteString(conn, start); err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	giveUp := time.After(30 * time.Second)
	for i := 0; ; i++ {
		select {
		case answer := <-closed:
			return string(answer)
		case <-giveUp:
			t.Fatalf("the server kept a connection open for 30 s while %q trickled in", more)
		case <-tick.C:
			// A write may fail once the server has closed; the read ends too.
			_, _ = conn.Write([]byte{more[i%len(more)]})
		}
	}
}

// TestSlowClientsAreCutOff: a client that sends its headers or its body a
// byte at a time is disconnected once the read timeouts pass (set short
// here through KNIT_READ_HEADER_TIMEOUT and KNIT_READ_TIMEOUT), with a 408
// when the body was late, and nothing of the slow request is stored.
// Requests sent at a normal pace are served meanwhile.
func TestSlowClientsAreCutOff(t *testing.T) {
	s := mustServeEnv(t, sqltest.MustDSN(t, "slow.db"), map[string]string{
		"KNIT_READ_HEADER_TIMEOUT": "300ms", "KNIT_READ_TIMEOUT": "600ms",
		"KNIT_API_TOKEN": testToken, "KNIT_LOG_LEVEL": "error",
	}, io.Discard)
	addr := strings.TrimPrefix(s.base, "http://")

	answer := trickle(t, addr, "POST /webhook HTTP/1.1\r\nHost: knit\r\n", "X-Slow: 1\r\n")
	if strings.HasPrefix(answer, "HTTP/1.1 2") {
		t.Errorf("slow headers were answered %q", answer)
	}

	body := `{"type":"track","userId":"slow","event":"Slow","messageId":"m-slow"}`
	answer = trickle(t, addr, "POST /webhook HTTP/1.1\r\nHost: knit\r\n"+
		"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n", body)
	if !strings.HasPrefix(answer, "HTTP/1.1 408") || !strings.Contains(answer, `"timeout"`) {
		t.Errorf("a slow body was answered %q, want 408 with code timeout", answer)
	}

	resp, err := http.Post(s.base+"/webhook", "application/json", strings.NewReader(
		`{"type":"track","userId":"quick","event":"Quick","messageId":"m-quick"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("a request at a normal pace: %d", resp.StatusCode)
	}
	const profiles = "/v1/spaces/x/collections/users/profiles/"
	if status, _ := mustGet(t, s, profiles+"user_id:quick/metadata", nil); status != 200 {
		t.Errorf("the quick sender's profile: %d", status)
	}
	if status, _ := mustGet(t, s, profiles+"user_id:slow/metadata", nil); status != 404 {
		t.Errorf("the slow sender has a profile: %d", status)
	}
}

// TestLimitSettingsAreReadAndChecked: the settings of knit serve --help
// are read with their units, and every bad one is named at once.
func TestLimitSettingsAreReadAndChecked(t *testing.T) {
	got, err := parseServeLimits(func(k string) string {
		return map[string]string{"KNIT_RATE_LIMIT": "1000", "KNIT_RATE_BURST": "5000",
			"KNIT_MAX_INFLIGHT": "8", "KNIT_MAX_INFLIGHT_BYTES": "16MB",
			"KNIT_READ_HEADER_TIMEOUT": "2s", "KNIT_READ_TIMEOUT": "1m"}[k]
	})
	want := serveLimits{ingest: webhook.Limits{Rate: 1000, Burst: 5000, MaxInflight: 8,
		MaxInflightBytes: 16 << 20}, headerTimeout: 2 * time.Second, readTimeout: time.Minute}
	if err != nil || got != want {
		t.Errorf("parseServeLimits = %+v, %v; want %+v", got, err, want)
	}
	if got, err := parseServeLimits(func(string) string { return "" }); err != nil ||
		got.ingest != webhook.DefaultLimits() || got.headerTimeout != 10*time.Second {
		t.Errorf("defaults: %+v, %v", got, err)
	}

	_, err = parseServeLimits(func(k string) string {
		return map[string]string{"KNIT_RATE_LIMIT": "fast", "KNIT_MAX_INFLIGHT": "x",
			"KNIT_MAX_INFLIGHT_BYTES": "12 parsecs", "KNIT_READ_TIMEOUT": "-1s"}[k]
	})
	for _, name := range []string{"KNIT_RATE_LIMIT", "KNIT_MAX_INFLIGHT ",
		"KNIT_MAX_INFLIGHT_BYTES", "KNIT_READ_TIMEOUT"} {
		if err == nil || !strings.Contains(err.Error(), name) || !errors.Is(err, errUsage) {
			t.Errorf("bad settings: %v; want a usage error naming %s", err, name)
		}
	}
	if err != nil && strings.Contains(err.Error(), "strconv") {
		t.Errorf("bad settings: %v; want what each setting wants, not Go's parser", err)
	}
	_, err = parseServeLimits(func(k string) string {
		return map[string]string{"KNIT_RATE_BURST": "10"}[k]
	})
	if err == nil || !strings.Contains(err.Error(), "2500") {
		t.Errorf("a burst below a full batch: %v", err)
	}
	for text, want := range map[string]int64{"0": 0, "1024": 1024, "2kb": 2048,
		"1 GB": 1 << 30, "5B": 5} {
		if got, err := parseBytes(text); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", text, got, err, want)
		}
	}
	if _, err := parseBytes("-1"); err == nil {
		t.Error("parseBytes(-1) is no error")
	}
}

// TestServeHelpNamesTheLimits: every limit setting is in knit serve --help.
func TestServeHelpNamesTheLimits(t *testing.T) {
	var stdout, stderr strings.Builder
	err := run(context.Background(), []string{"serve", "--help"},
		func(string) string { return "" }, &stdout, &stderr)
	help := stdout.String() + stderr.String()
	for _, name := range []string{"KNIT_RATE_LIMIT", "KNIT_RATE_BURST", "KNIT_MAX_INFLIGHT",
		"KNIT_MAX_INFLIGHT_BYTES", "KNIT_READ_HEADER_TIMEOUT", "KNIT_READ_TIMEOUT"} {
		if !strings.Contains(help, name) {
			t.Errorf("knit serve --help (%v) does not name %s", err, name)
		}
	}
}
