package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// TestKnitProcessFaults runs the real binary, built once, through crashes
// and shutdowns on the test's engine (SQLite, or PostgreSQL when
// KNIT_TEST_POSTGRES is set).
func TestKnitProcessFaults(t *testing.T) {
	binary := mustBuildKnit(t)
	t.Run("kill -9 under load keeps every acknowledged message once", func(t *testing.T) {
		testKillUnderLoad(t, binary)
	})
	t.Run("kill -9 during an audience run keeps the previous result", func(t *testing.T) {
		testKillDuringAudienceRun(t, binary)
	})
	t.Run("kill -9 during a delivery sends it again after restart", func(t *testing.T) {
		testKillDuringDelivery(t, binary)
	})
	t.Run("SIGTERM finishes requests in flight and refuses new ones", func(t *testing.T) {
		testGracefulShutdown(t, binary)
	})
}

// crashKills is how many times the load test kills knit.
const crashKills = 4

func testKillUnderLoad(t *testing.T, binary string) {
	dsn := sqltest.MustDSN(t, "crash.db")
	proc := newKnitProc(t, binary, dsn)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	load := newCrashLoad(proc.base())
	proc.start(t)
	generating, stop := context.WithCancel(context.Background())
	var senders sync.WaitGroup
	for w := range 4 {
		senders.Go(func() {
			if err := load.send(generating, w, seed); err != nil {
				t.Error(err)
			}
		})
	}
	for range crashKills {
		time.Sleep(time.Duration(200+rng.IntN(800)) * time.Millisecond)
		proc.kill(t)
		proc.start(t)
	}
	time.Sleep(300 * time.Millisecond)
	stop()
	senders.Wait() // each sender retries its last batch until it is acknowledged
	proc.stop(t)

	t.Logf("%d messages acknowledged; answers: %v", len(load.acked), load.outcomes)
	db := mustOpenReadOnly(t, dsn)
	checkStoredOnce(t, db, load.acked)
	checkStoreInvariants(t, db)
	if got, want := fleetGraph(t, dsn), load.expectedGraph(); !slices.Equal(got, want) {
		t.Errorf("profiles after the crashes differ from the messages' identity graph:\n"+
			"got  %d %q\nwant %d %q", len(got), head(got), len(want), head(want))
	}
}

// crashLoad sends realistic tracking API batches the way Segment's
// libraries do: each batch is retried as it was until knit acknowledges it.
type crashLoad struct {
	base   string
	client *http.Client

	mu       sync.Mutex
	acked    map[string]bool
	messages []map[string]any // every message sent, acknowledged or not
	outcomes map[string]int   // answers by status, "no answer" for network errors
}

func newCrashLoad(base string) *crashLoad {
	return &crashLoad{base: base, client: &http.Client{Timeout: 15 * time.Second},
		acked: map[string]bool{}, outcomes: map[string]int{}}
}

// crashPeople is how many people the load's messages are about: few, so
// that their messages race each other.
const crashPeople = 25

// send posts batches of sender w until generating ends, then retries its
// last batch until it is acknowledged. Anything but 200, 503 or no answer
// at all is an error: those messages are valid.
func (l *crashLoad) send(generating context.Context, w int, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, uint64(w)+100))
	var pending []map[string]any
	var giveUp time.Time
	for seq := 0; ; {
		if pending == nil {
			if generating.Err() != nil {
				return nil
			}
			for range 1 + rng.IntN(12) {
				pending = append(pending, loadMessage(rng, fmt.Sprintf("crash-%d-%d", w, seq)))
				seq++
			}
			l.record(pending)
		}
		if giveUp.IsZero() && generating.Err() != nil {
			giveUp = time.Now().Add(30 * time.Second)
		}
		status, err := l.post(pending)
		switch {
		case status == http.StatusOK:
			l.ack(pending)
			pending = nil
			continue
		case err == nil && status != http.StatusServiceUnavailable:
			return fmt.Errorf("sender %d: a valid batch was answered %d", w, status)
		case !giveUp.IsZero() && time.Now().After(giveUp):
			return fmt.Errorf("sender %d: batch not acknowledged 30 s after the load: %v",
				w, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *crashLoad) post(batch []map[string]any) (int, error) {
	body, err := json.Marshal(map[string]any{"batch": batch})
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequest(http.MethodPost, l.base+"/v1/batch", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.SetBasicAuth(faultKey, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.client.Do(req)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.outcomes["no answer"]++
		return 0, err
	}
	resp.Body.Close()
	l.outcomes[fmt.Sprint(resp.StatusCode)]++
	return resp.StatusCode, nil
}

func (l *crashLoad) record(batch []map[string]any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.messages = append(l.messages, batch...)
}

func (l *crashLoad) ack(batch []map[string]any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range batch {
		l.acked[m["messageId"].(string)] = true
	}
}

// loadMessage is one message of one of crashPeople people on one of their
// two phones: anonymous browsing, a sign-in that ties the phone to the
// account, or an order.
func loadMessage(rng *rand.Rand, id string) map[string]any {
	person, phone := rng.IntN(crashPeople), []string{"ios", "android"}[rng.IntN(2)]
	anon := fmt.Sprintf("anon-%02d-%s", person, phone)
	user := fmt.Sprintf("user-%02d", person)
	m := map[string]any{
		"messageId": id, "anonymousId": anon,
		"timestamp": time.Now().UTC().Format(time.RFC3339Nano),
		"context": map[string]any{"app": map[string]any{"name": "SegKicks"},
			"device": map[string]any{"type": phone}},
	}
	switch rng.IntN(4) {
	case 0:
		m["type"], m["event"] = "track", "Product Viewed"
		m["properties"] = map[string]any{"product_id": fmt.Sprintf("sku-%d", rng.IntN(9))}
	case 1:
		m["type"], m["userId"] = "identify", user
		m["traits"] = map[string]any{"email": fmt.Sprintf("p%02d@example.com", person),
			"visits": rng.IntN(100)}
	case 2:
		m["type"], m["event"], m["userId"] = "track", "Order Completed", user
		m["properties"] = map[string]any{"products": []any{map[string]any{
			"product_id": fmt.Sprintf("sku-%d", rng.IntN(9))}}}
	default:
		m["type"], m["name"] = "page", "Home"
	}
	return m
}

// expectedGraph joins the identifiers that appear together in a message
// (no identity limit is reached, so order does not matter) and lists the
// resulting profiles as fleetGraph does.
func (l *crashLoad) expectedGraph() []string {
	parent := map[string]string{}
	var find func(string) string
	find = func(x string) string {
		if parent[x] == "" || parent[x] == x {
			parent[x] = x
			return x
		}
		parent[x] = find(parent[x])
		return parent[x]
	}
	for _, m := range l.messages {
		ids := []string{"anonymous_id:" + m["anonymousId"].(string)}
		if user, ok := m["userId"].(string); ok {
			ids = append(ids, "user_id:"+user)
		}
		if traits, ok := m["traits"].(map[string]any); ok {
			ids = append(ids, "email:"+traits["email"].(string))
		}
		for _, id := range ids[1:] {
			parent[find(id)] = find(ids[0])
		}
		find(ids[0])
	}
	groups := map[string][]string{}
	for id := range parent {
		groups[find(id)] = append(groups[find(id)], id)
	}
	var graph []string
	for _, ids := range groups {
		sort.Strings(ids)
		graph = append(graph, strings.Join(ids, " "))
	}
	sort.Strings(graph)
	return graph
}

// checkStoredOnce requires every acknowledged messageId in events exactly
// once, and nothing else stored (every message sent was retried until
// acknowledged).
func checkStoredOnce(t *testing.T, db *sql.DB, acked map[string]bool) {
	t.Helper()
	rows, err := db.Query(`SELECT message_id FROM events`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	stored := map[string]int{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		stored[id]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var wrong []string
	for id := range acked {
		if stored[id] != 1 {
			wrong = append(wrong, fmt.Sprintf("%s stored %d times", id, stored[id]))
		}
	}
	sort.Strings(wrong)
	if len(wrong) > 0 || len(stored) != len(acked) {
		t.Errorf("%d acknowledged, %d distinct stored; %d wrong: %v", len(acked),
			len(stored), len(wrong), head(wrong))
	}
}

// checkStoreInvariants checks what must hold however writes were cut
// short, as resolver's concurrency test does: nothing left on profiles
// merged away, no identifier on two profiles, no profile over a limit,
// no message stored twice.
func checkStoreInvariants(t *testing.T, db *sql.DB) {
	t.Helper()
	checks := []struct{ what, query string }{
		{"identifiers on merged or retired profiles", `SELECT COUNT(*) FROM identities i
			JOIN profiles p ON p.id = i.profile_id
			WHERE p.merged_into IS NOT NULL OR p.retired_ms IS NOT NULL`},
		{"events on merged profiles", `SELECT COUNT(*) FROM events e
			JOIN profiles p ON p.id = e.profile_id WHERE p.merged_into IS NOT NULL`},
		{"traits on merged profiles", `SELECT COUNT(*) FROM traits r
			JOIN profiles p ON p.id = r.profile_id WHERE p.merged_into IS NOT NULL`},
		{"events on profiles that do not exist", `SELECT COUNT(*) FROM events e
			WHERE e.profile_id IS NOT NULL
			AND NOT EXISTS (SELECT 1 FROM profiles p WHERE p.id = e.profile_id)`},
		{"identifiers on two profiles", `SELECT COUNT(*) FROM (SELECT type, value
			FROM identities GROUP BY type, value HAVING COUNT(*) > 1) twice`},
		{"profiles with two user_ids", `SELECT COUNT(*) FROM (SELECT profile_id
			FROM identities WHERE type = 'user_id' GROUP BY profile_id
			HAVING COUNT(*) > 1) grouped`},
		{"profiles over five of a type", `SELECT COUNT(*) FROM (SELECT profile_id
			FROM identities GROUP BY profile_id, type HAVING COUNT(*) > 5) grouped`},
		{"messageIds stored twice", `SELECT COUNT(*) FROM (SELECT message_id
			FROM events GROUP BY message_id HAVING COUNT(*) > 1) twice`},
	}
	for _, c := range checks {
		var n int
		mustScan(t, db, c.query, &n)
		if n != 0 {
			t.Errorf("%d %s", n, c.what)
		}
	}
}
