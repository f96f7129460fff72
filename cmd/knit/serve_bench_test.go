package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkServeBatch100 runs knit serve in this process on a SQLite file
// and posts /v1/batch requests of 100 generated messages from 8
// connections; one op is one request. Run with -cpuprofile to see where a
// server's time goes, the HTTP layer included (the generator's bodies are
// built before the timer starts).
func BenchmarkServeBatch100(b *testing.B) {
	base := startBenchServer(b)
	const perRequest = 100
	postAll(b, base+"/v1/batch", benchBodies(b.N, perRequest), 8)
	b.ReportMetric(float64(b.N*perRequest)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkServeWebhookSingle posts one message a request to /webhook
// from 32 connections; one op is one request.
func BenchmarkServeWebhookSingle(b *testing.B) {
	base := startBenchServer(b)
	bodies := make([][]byte, b.N)
	stream := newBenchStream(1, 100000, fmt.Sprint(time.Now().UnixNano()), 0,
		time.Now(), 30*24*time.Hour)
	for i := range bodies {
		bodies[i] = stream.appendNext(nil)
	}
	postAll(b, base+"/webhook", bodies, 32)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// postAll posts every body to url from connections keep-alive clients,
// the benchmark's timer running from the first request to the last answer.
func postAll(b *testing.B, url string, bodies [][]byte, connections int) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: connections}}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range connections {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(bodies) {
					return
				}
				postTo(b, client, url, bodies[i])
			}
		})
	}
	wg.Wait()
}

// benchBodies builds n tracking API batch bodies of size messages each,
// from streams of the generator knit bench uses.
func benchBodies(n, size int) [][]byte {
	stream := newBenchStream(1, 100000, fmt.Sprint(time.Now().UnixNano()), 0,
		time.Now(), 30*24*time.Hour)
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = stream.appendBatch(nil, size)
	}
	return bodies
}

// postTo posts body with the bench write key and wants 200.
func postTo(b *testing.B, client *http.Client, url string, body []byte) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		b.Error(err)
		return
	}
	req.SetBasicAuth("bench-key", "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		b.Error(err)
		return
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		b.Errorf("status %d: %s", resp.StatusCode, reply)
	}
}

// startBenchServer runs knit serve on a fresh SQLite file until the
// benchmark ends and returns its base URL.
func startBenchServer(b *testing.B) string {
	return startInProcess(b, map[string]string{"KNIT_WRITE_KEYS": "bench-key",
		"KNIT_API_TOKEN": "bench-token", "KNIT_LOG_LEVEL": "error"}, io.Discard)
}

// startInProcess runs `knit serve --roles ingest` in this process on a
// fresh SQLite file with env, its log in logs, until tb ends, and returns
// its base URL once it answers /readyz.
func startInProcess(tb testing.TB, env map[string]string, logs io.Writer) string {
	tb.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := listener.Addr().String()
	listener.Close()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--db", filepath.Join(tb.TempDir(), "knit.db"),
			"--addr", addr, "--roles", "ingest"}, func(k string) string { return env[k] },
			io.Discard, logs)
	}()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("serve: %v", err)
		}
	})

	for range 200 {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			return "http://" + addr
		}
		time.Sleep(25 * time.Millisecond)
	}
	tb.Fatal("knit serve did not start")
	return ""
}
