package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// TestDatabaseDownOrReadOnlyAnswers503AndKnitRecovers runs knit on a
// PostgreSQL server of the test's own, stops the server and makes it
// read-only under knit: deliveries are answered 503 with Retry-After,
// never 2xx or 500, /readyz says the database is gone, and knit takes the
// same deliveries again once the server is back, without a restart.
func TestDatabaseDownOrReadOnlyAnswers503AndKnitRecovers(t *testing.T) {
	if os.Getenv(sqltest.PostgresEnv) == "" {
		t.Skipf("%s is not set: this test runs in the PostgreSQL pass, on a server "+
			"it starts itself", sqltest.PostgresEnv)
	}
	pg := mustOwnPostgres(t)
	proc := newKnitProc(t, mustBuildKnit(t), pg.dsn())
	proc.start(t)
	c := &faultClient{base: proc.base(), acked: map[string]bool{}}

	c.mustStoreEventually(t, "up")
	c.mustBeReady(t, http.StatusOK)

	pg.stop(t)
	c.mustRefuse(t, "down")
	c.mustBeReady(t, http.StatusServiceUnavailable)
	pg.start(t)
	c.mustStoreEventually(t, "down")
	c.mustBeReady(t, http.StatusOK)

	pg.exec(t, `ALTER SYSTEM SET default_transaction_read_only = on`,
		`SELECT pg_reload_conf()`)
	c.waitUntilRefused(t, "probe")
	c.mustRefuse(t, "read-only")
	pg.exec(t, `ALTER SYSTEM RESET default_transaction_read_only`, `SELECT pg_reload_conf()`)
	c.mustStoreEventually(t, "read-only")
	proc.stop(t)

	t.Logf("answers: %v", c.answers)
	db := mustOpenReadOnly(t, pg.dsn())
	checkStoredOnce(t, db, c.acked)
	checkStoreInvariants(t, db)
}

// faultClient sends deliveries to knit as Segment would and keeps what
// was acknowledged.
type faultClient struct {
	base    string
	acked   map[string]bool
	answers map[int]int
}

// deliveries are a tracking API batch and an Actions webhook batch of
// messages whose ids start with prefix.
func (c *faultClient) deliveries(prefix string) []delivery {
	msg := func(id string) map[string]any {
		return map[string]any{"type": "track", "event": "Order Completed",
			"userId": prefix + "-user", "messageId": id}
	}
	return []delivery{
		{path: "/v1/batch", ids: []string{prefix + "-batch-0", prefix + "-batch-1"},
			body: map[string]any{"batch": []any{msg(prefix + "-batch-0"),
				msg(prefix + "-batch-1")}}},
		{path: "/webhook", ids: []string{prefix + "-webhook-0"},
			body: []any{msg(prefix + "-webhook-0")}},
	}
}

type delivery struct {
	path string
	ids  []string
	body any
}

// post sends d and returns the status and the Retry-After header; a 503
// must say the database is unavailable.
func (c *faultClient) post(t *testing.T, d delivery) (int, string) {
	t.Helper()
	body, err := json.Marshal(d.body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, c.base+d.path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(faultKey, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", d.path, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusServiceUnavailable &&
		!bytes.Contains(answer, []byte("the database is unavailable")) {
		t.Errorf("POST %s: 503 %s, want the database named as the cause", d.path, answer)
	}
	if c.answers == nil {
		c.answers = map[int]int{}
	}
	c.answers[resp.StatusCode]++
	if resp.StatusCode == http.StatusOK {
		for _, id := range d.ids {
			c.acked[id] = true
		}
	}
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// mustRefuse requires 503 with a Retry-After of a few seconds for every
// delivery, twice over.
func (c *faultClient) mustRefuse(t *testing.T, prefix string) {
	t.Helper()
	for range 2 {
		for _, d := range c.deliveries(prefix) {
			status, retry := c.post(t, d)
			wait, err := strconv.Atoi(retry)
			if status != http.StatusServiceUnavailable || err != nil || wait < 1 || wait > 60 {
				t.Fatalf("POST %s with the database %s: %d, Retry-After %q; want 503 "+
					"and a few seconds", d.path, prefix, status, retry)
			}
		}
	}
}

// mustStoreEventually retries the deliveries until each is acknowledged;
// meanwhile every answer must be 503.
func (c *faultClient) mustStoreEventually(t *testing.T, prefix string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, d := range c.deliveries(prefix) {
		for {
			status, _ := c.post(t, d)
			if status == http.StatusOK {
				break
			}
			if status != http.StatusServiceUnavailable || time.Now().After(deadline) {
				t.Fatalf("POST %s (%s): %d, want 200 after retries of 503", d.path, prefix,
					status)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// waitUntilRefused sends new deliveries until one is answered 503: a
// configuration reload reaches the server's sessions a moment later.
// Those acknowledged before are stored.
func (c *faultClient) waitUntilRefused(t *testing.T, prefix string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		d := c.deliveries(fmt.Sprintf("%s-%d", prefix, i))[0]
		switch status, _ := c.post(t, d); status {
		case http.StatusServiceUnavailable:
			return
		case http.StatusOK:
			time.Sleep(20 * time.Millisecond)
		default:
			t.Fatalf("POST %s while the server turns read-only: %d", d.path, status)
		}
	}
	t.Fatal("knit still stores 30 s after the server turned read-only")
}

// mustBeReady waits until /readyz answers want.
func (c *faultClient) mustBeReady(t *testing.T, want int) {
	t.Helper()
	var status int
	var body []byte
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		resp, err := http.Get(c.base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if status = resp.StatusCode; status == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("/readyz: %d %s, want %d", status, body, want)
}

// TestCommandsNameTheDatabaseFault: a command line that cannot reach its
// database says why, not only that the database is unavailable.
func TestCommandsNameTheDatabaseFault(t *testing.T) {
	_, closed, _ := strings.Cut(mustFreeAddr(t), ":")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"audiences", "run", "--db",
			"postgres://knit@127.0.0.1:" + closed + "/knit?sslmode=disable"},
			"connection refused"},
		{[]string{"import", "--db", filepath.Join(t.TempDir(), "no-dir", "knit.db"),
			os.DevNull}, "unable to open database file"},
	} {
		err := run(context.Background(), tc.args, func(string) string { return "" },
			io.Discard, io.Discard)
		if err == nil || !strings.Contains(describe(err), tc.want) {
			t.Errorf("knit %v: %v, want it to say %q", tc.args, err, tc.want)
		}
	}
}
