package main

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// hangingReceiver is a Segment-compatible receiver that answers 200, but
// hangs on the request numbered hangAt (from 1) until the sender goes away.
type hangingReceiver struct {
	hangAt  int
	hung    chan string // the messageId it hangs on
	release chan struct{}

	mu       sync.Mutex
	requests int
	received map[string]int // times each messageId arrived
	order    []string
}

func newHangingReceiver(hangAt int) *hangingReceiver {
	return &hangingReceiver{hangAt: hangAt, hung: make(chan string, 1),
		release: make(chan struct{}), received: map[string]int{}}
}

func (h *hangingReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var msg struct {
		MessageID string `json:"messageId"`
	}
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &msg); err != nil || msg.MessageID == "" {
		http.Error(w, "no messageId", http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.requests++
	hang := h.requests == h.hangAt
	h.received[msg.MessageID]++
	h.order = append(h.order, msg.MessageID)
	h.mu.Unlock()
	if hang {
		h.hung <- msg.MessageID
		select { // until the killed sender's connection closes
		case <-r.Context().Done():
		case <-h.release:
		}
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (h *hangingReceiver) snapshot() (map[string]int, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	received := map[string]int{}
	for id, n := range h.received {
		received[id] = n
	}
	return received, append([]string(nil), h.order...)
}

const outboxClock = "2026-11-30T12:00:00Z"

// outboxPeople is how many people enter the audience, one delivery each.
const outboxPeople = 6

// mustOutboxDatabase imports outboxPeople sign-ups into a new database
// and writes a config whose audience of them delivers to url; it returns
// the database and the config's path.
func mustOutboxDatabase(t *testing.T, url string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	var lines []string
	for i := range outboxPeople {
		lines = append(lines, fmt.Sprintf(`{"type":"track","event":"Signed Up",`+
			`"userId":"u-%d","messageId":"signup-%d","timestamp":"2026-11-29T10:00:00Z",`+
			`"context":{"traits":{"email":"u%d@example.com"}}}`, i, i, i))
	}
	messages := filepath.Join(dir, "signups.ndjson")
	config := filepath.Join(dir, "outbox.yaml")
	if err := os.WriteFile(messages, []byte(strings.Join(lines, "\n")+"\n"),
		0o600); err != nil {
		t.Fatal(err)
	}
	yaml := `audiences:
  - name: signed_up
    description: Everyone who signed up.
    condition:
      performed: {event: Signed Up}
    destinations:
      - url: ` + url + `/v1/batch
        style: track
        write_key: receiver-key
`
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	dsn := sqltest.MustDSN(t, "outbox.db")
	mustRun(t, "import", "--db", dsn, "--config", config, messages)
	return dsn, config
}

func testKillDuringDelivery(t *testing.T, binary string) {
	receiver := newHangingReceiver(3)
	server := httptest.NewServer(receiver)
	t.Cleanup(server.Close)
	t.Cleanup(func() { close(receiver.release) }) // runs before Close
	dsn, config := mustOutboxDatabase(t, server.URL)

	proc := newKnitProc(t, binary, dsn, "--config", config, "--clock", outboxClock)
	proc.start(t)
	var inFlight string
	select {
	case inFlight = <-receiver.hung:
	case <-time.After(30 * time.Second):
		t.Fatal("knit sent no third delivery within 30 s")
	}
	proc.kill(t)

	db := mustOpenReadOnly(t, dsn)
	before, _ := receiver.snapshot()
	if pending, delivered := outboxCounts(t, db); delivered != 2 || pending != 4 {
		t.Fatalf("after the kill %d delivered and %d pending, want 2 and 4", delivered,
			pending)
	}

	// The claim of the message in flight lasts two minutes of knit's clock:
	// restart three minutes later, as an operator's restart would be.
	proc.args = []string{"--db", dsn, "--config", config, "--clock", "2026-11-30T12:03:00Z"}
	proc.start(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if pending, _ := outboxCounts(t, db); pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("deliveries still pending 30 s after the restart")
		}
		time.Sleep(50 * time.Millisecond)
	}
	proc.stop(t)
	checkDeliveredOnceButTheOneInFlight(t, db, receiver, before, inFlight)
}

// outboxCounts counts deliveries not yet settled and delivered; none may
// have failed.
func outboxCounts(t *testing.T, db *sql.DB) (pending, delivered int) {
	t.Helper()
	var failed int
	mustScan(t, db, `SELECT
		COALESCE(SUM(CASE WHEN delivered_ms IS NULL AND failed_ms IS NULL THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN delivered_ms IS NOT NULL THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN failed_ms IS NOT NULL THEN 1 ELSE 0 END), 0)
		FROM outbox`, &pending, &delivered, &failed)
	if failed != 0 {
		t.Errorf("%d deliveries failed", failed)
	}
	return pending, delivered
}

// checkDeliveredOnceButTheOneInFlight: every message reached the receiver;
// those it acknowledged before the kill were never sent again; the one in
// flight at the kill was sent again with the same messageId (at least
// once: a receiver that deduplicates, as Segment does, keeps one).
func checkDeliveredOnceButTheOneInFlight(t *testing.T, db *sql.DB, h *hangingReceiver,
	before map[string]int, inFlight string) {
	t.Helper()
	received, order := h.snapshot()
	rows, err := db.Query(`SELECT message_id FROM outbox`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	queued := 0
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		queued++
		want := 1
		if id == inFlight {
			want = 2
		}
		if received[id] != want {
			t.Errorf("%s received %d times, want %d (before the kill %d)", id,
				received[id], want, before[id])
		}
	}
	if queued != outboxPeople || len(order) != outboxPeople+1 {
		t.Errorf("%d queued, %d requests received %v; want %d and %d", queued,
			len(order), order, outboxPeople, outboxPeople+1)
	}
}
