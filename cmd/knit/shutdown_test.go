package main

import (
	"bufio"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// slowRequest is a tracking API batch sent over raw TCP by a slow client:
// headers and half the body first, the rest when the test says.
type slowRequest struct {
	conn net.Conn
	rest string
}

// openSlowBatch sends the headers and half the body of a batch of three
// messages whose ids start with prefix.
func openSlowBatch(t *testing.T, addr, prefix string) *slowRequest {
	t.Helper()
	var items []string
	for i := range 3 {
		items = append(items, fmt.Sprintf(`{"type":"track","event":"Order Completed",`+
			`"userId":"%s-user","messageId":"%s-%d"}`, prefix, prefix, i))
	}
	body := `{"batch":[` + strings.Join(items, ",") + `]}`
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	auth := base64.StdEncoding.EncodeToString([]byte(faultKey + ":"))
	head := "POST /v1/batch HTTP/1.1\r\nHost: knit\r\nAuthorization: Basic " + auth +
		"\r\nContent-Type: application/json\r\n" +
		fmt.Sprintf("Content-Length: %d\r\nConnection: close\r\n\r\n", len(body))
	if _, err := io.WriteString(conn, head+body[:len(body)/2]); err != nil {
		t.Fatal(err)
	}
	return &slowRequest{conn: conn, rest: body[len(body)/2:]}
}

// finish sends the rest of the body and returns the answer's status.
func (r *slowRequest) finish(t *testing.T) int {
	t.Helper()
	if _, err := io.WriteString(r.conn, r.rest); err != nil {
		t.Fatalf("send the rest of the body: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(r.conn), nil)
	if err != nil {
		t.Fatalf("read the answer: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// mustRefuseConnections waits until nothing accepts connections at addr.
func mustRefuseConnections(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		conn, err := net.Dial("tcp", addr)
		if errors.Is(err, syscall.ECONNREFUSED) {
			return
		}
		if err == nil {
			conn.Close()
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s still accepts connections 15 s after SIGTERM", addr)
}

func testGracefulShutdown(t *testing.T, binary string) {
	dsn := sqltest.MustDSN(t, "shutdown.db")
	config := mustHeavyDatabase(t, dsn)
	db := mustOpenReadOnly(t, dsn)
	proc := newKnitProc(t, binary, dsn, "--config", config, "--clock", heavyClock)
	proc.start(t)
	slow := []*slowRequest{openSlowBatch(t, proc.addr, "slow-a"),
		openSlowBatch(t, proc.addr, "slow-b")}
	// Both are being served (not waiting to be accepted) before SIGTERM:
	// the two and the scrape that counts them.
	waitForRequestsInFlight(t, proc, 3)
	// The heavy audience is being computed at start.
	run := waitForHeavyRun(t, db, 0, "running")

	proc.signal(t, syscall.SIGTERM)
	mustRefuseConnections(t, proc.addr)
	if !proc.running() {
		t.Fatal("knit exited with requests in flight")
	}
	for i, r := range slow {
		if status := r.finish(t); status != http.StatusOK {
			t.Errorf("slow request %d in flight at SIGTERM: %d, want 200", i, status)
		}
	}
	if err := proc.wait(t, 30*time.Second); err != nil {
		t.Fatalf("knit exited with %v after SIGTERM, want 0", err)
	}

	var stored int
	mustScan(t, db, `SELECT COUNT(*) FROM events WHERE message_id LIKE 'slow-%'`, &stored)
	if stored != 6 {
		t.Errorf("%d of the 6 messages in flight at SIGTERM stored", stored)
	}
	checkRunEndedWhole(t, db, run.id)
}

// checkRunEndedWhole requires that no run is left running and that the run
// in progress at shutdown either finished with its whole result and changes
// or was aborted leaving none (there was no result before).
func checkRunEndedWhole(t *testing.T, db *sql.DB, id int64) {
	t.Helper()
	var running, members, changes, size int
	var status string
	mustScan(t, db, `SELECT COUNT(*) FROM audience_runs WHERE status = 'running'`, &running)
	mustScan(t, db, fmt.Sprintf(`SELECT status, size FROM audience_runs WHERE id = %d`, id),
		&status, &size)
	mustScan(t, db, `SELECT COUNT(*) FROM audience_members WHERE audience = 'heavy'`,
		&members)
	mustScan(t, db, fmt.Sprintf(`SELECT COUNT(*) FROM audience_changes WHERE run_id = %d`,
		id), &changes)
	t.Logf("the run in progress at SIGTERM ended %s with %d members", status, members)
	switch {
	case running != 0:
		t.Errorf("%d runs left running after a clean shutdown", running)
	case status == "aborted" && (members != 0 || changes != 0):
		t.Errorf("aborted run left %d members and %d changes", members, changes)
	case status == "ok" && (members != size || changes != size || size == 0):
		t.Errorf("finished run of size %d left %d members and %d changes", size, members,
			changes)
	case status != "aborted" && status != "ok":
		t.Errorf("the run in progress at SIGTERM ended %s", status)
	}
}

// waitForRequestsInFlight waits until knit's /metrics says at least n
// requests are being served.
func waitForRequestsInFlight(t *testing.T, proc *knitProc, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		req, err := http.NewRequest(http.MethodGet, proc.base()+"/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("read metrics: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if inFlight(string(body)) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests in flight after 15 s, want %d", inFlight(string(body)), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// inFlight reads knit_http_requests_in_flight from a metrics page.
func inFlight(page string) int {
	for _, line := range strings.Split(page, "\n") {
		if value, ok := strings.CutPrefix(line, "knit_http_requests_in_flight "); ok {
			n, _ := strconv.Atoi(value)
			return n
		}
	}
	return -1
}
