package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// fleetClock is when the fleet's traffic is evaluated: every event lies in
// the week before it.
const fleetClock = "2026-12-01T12:00:00Z"

// fleetPerson is one simulated customer: two phones, one account.
type fleetPerson struct {
	user, email, anonA, anonB, deviceA, deviceB string
}

func fleetPeople(n int) []fleetPerson {
	people := make([]fleetPerson, n)
	for i := range people {
		people[i] = fleetPerson{
			user: fmt.Sprintf("user-%03d", i), email: fmt.Sprintf("p%03d@example.com", i),
			anonA: fmt.Sprintf("anon-a-%03d", i), anonB: fmt.Sprintf("anon-b-%03d", i),
			deviceA: fmt.Sprintf("ios-%03d", i), deviceB: fmt.Sprintf("android-%03d", i),
		}
	}
	return people
}

// messages are the person's messages: anonymous browsing on both phones,
// sign-ins that tie each phone to the account, an add to cart, and for
// every other person an order of it. However they interleave, each person
// must end as one profile.
func (p fleetPerson) messages(i int) []map[string]any {
	at := func(hours int) string {
		return time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC).
			Add(time.Duration(hours) * time.Hour).Format(time.RFC3339)
	}
	device := func(id, kind string) map[string]any {
		return map[string]any{"device": map[string]any{"id": id, "type": kind},
			"app": map[string]any{"name": "SegKicks"}}
	}
	product := fmt.Sprintf("sku-%d", i%7)
	msgs := []map[string]any{
		{"type": "track", "event": "Product Viewed", "anonymousId": p.anonA,
			"properties": map[string]any{"product_id": product}, "timestamp": at(0),
			"context": device(p.deviceA, "ios")},
		{"type": "identify", "anonymousId": p.anonA, "userId": p.user, "timestamp": at(1),
			"traits": map[string]any{"email": p.email}, "context": device(p.deviceA, "ios")},
		{"type": "track", "event": "Product Added", "anonymousId": p.anonB,
			"properties": map[string]any{"product_id": product}, "timestamp": at(2),
			"context": device(p.deviceB, "android")},
		{"type": "identify", "anonymousId": p.anonB, "userId": p.user, "timestamp": at(3),
			"context": device(p.deviceB, "android")},
	}
	if i%2 == 0 {
		msgs = append(msgs, map[string]any{"type": "track", "event": "Order Completed",
			"userId": p.user, "timestamp": at(4), "context": device(p.deviceA, "ios"),
			"properties": map[string]any{"products": []any{
				map[string]any{"product_id": product}}}})
	}
	for j, m := range msgs {
		m["messageId"] = fmt.Sprintf("fleet-%03d-%d", i, j)
	}
	return msgs
}

func TestAFleetOnOnePostgresGivesTheAnswersOfOneProcess(t *testing.T) {
	if os.Getenv(sqltest.PostgresEnv) == "" {
		t.Skipf("%s is not set: a fleet needs PostgreSQL", sqltest.PostgresEnv)
	}
	people := fleetPeople(150)
	var all []map[string]any
	for i, p := range people {
		all = append(all, p.messages(i)...)
	}

	shared := sqltest.MustDSN(t, "fleet")
	fleet := mustStartFleet(t, shared)
	mustSendConflicting(t, fleet, all)
	for _, s := range fleet {
		s.stop(t)
	}

	single := sqltest.MustDSN(t, "single.db")
	if strings.HasPrefix(single, "postgres") {
		single = t.TempDir() + "/single.db"
	}
	s := mustServe(t, single, fleetClock)
	mustSendConflicting(t, []*server{s}, all)
	s.stop(t)

	checkFleetInvariants(t, shared, len(all))
	if got, want := fleetGraph(t, shared), fleetGraph(t, single); !slices.Equal(got, want) {
		t.Errorf("the fleet's profiles differ from one process's:\nfleet  %d %q\nsingle %d %q",
			len(got), head(got), len(want), head(want))
	}
	for _, name := range []string{"cart_abandonment"} {
		mustRun(t, "audiences", "run", name, "--db", shared, "--clock", fleetClock)
		mustRun(t, "audiences", "run", name, "--db", single, "--clock", fleetClock)
		got, want := exportedUsers(t, shared, name), exportedUsers(t, single, name)
		if !slices.Equal(got, want) || len(want) != len(people)/2 {
			t.Errorf("%s: fleet %d members, one process %d (want %d)", name, len(got),
				len(want), len(people)/2)
		}
	}
}

// mustStartFleet builds knit and starts three operating-system processes
// of it on one database at once (they migrate together): one with every
// role, one that only ingests, and one that ingests and serves the web.
func mustStartFleet(t *testing.T, dsn string) []*server {
	t.Helper()
	binary := filepath.Join(t.TempDir(), "knit")
	build := exec.Command("go", "build", "-o", binary, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build knit: %v\n%s", err, out)
	}

	roles := []string{"", "--roles=ingest", "--roles=ingest,web"}
	fleet := make([]*server, len(roles))
	var wg sync.WaitGroup
	for i, r := range roles {
		wg.Go(func() { fleet[i] = mustStartProcess(t, binary, dsn, r) })
	}
	wg.Wait()
	return fleet
}

// mustStartProcess runs `knit serve` as a process of its own on a free
// port, and stops it with SIGTERM when the test ends.
func mustStartProcess(t *testing.T, binary, dsn, roles string) *server {
	t.Helper()
	addr := mustFreeAddr(t)
	args := []string{"serve", "--addr", addr, "--db", dsn, "--clock", fleetClock,
		"--config", filepath.Join("testdata", "seed-journey.yaml")}
	if roles != "" {
		args = append(args, roles)
	}
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "KNIT_WRITE_KEYS="+seedWriteKey,
		"KNIT_API_TOKEN="+testToken, "KNIT_LOG_LEVEL=warn")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start knit: %v", err)
	}

	s := &server{base: "http://" + addr, done: make(chan error, 1)}
	s.cancel = func() { _ = cmd.Process.Signal(syscall.SIGTERM) }
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			t.Logf("knit serve %s said:\n%s", roles, logs.String())
		}
	})
	mustAnswerHealth(t, s)
	return s
}

// mustAnswerHealth waits until the server answers /healthz.
func mustAnswerHealth(t *testing.T, s *server) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(s.base + "/healthz"); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("knit serve at %s did not answer /healthz", s.base)
}

// mustSendConflicting sends every message to every server, in batches of
// 25 from each server's own goroutine, so the same identifiers arrive at
// different processes at once. Every batch must be acknowledged.
func mustSendConflicting(t *testing.T, servers []*server, messages []map[string]any) {
	t.Helper()
	var wg sync.WaitGroup
	for n, s := range servers {
		wg.Go(func() {
			// Each server starts at a different point, so the same person is
			// in flight on several servers.
			start := n * len(messages) / len(servers)
			order := append(slices.Clone(messages[start:]), messages[:start]...)
			for i := 0; i < len(order); i += 25 {
				mustPostBatch(t, s, order[i:min(i+25, len(order))])
			}
		})
	}
	wg.Wait()
}

func mustPostBatch(t *testing.T, s *server, batch []map[string]any) {
	body, err := json.Marshal(map[string]any{"batch": batch})
	if err != nil {
		t.Error(err)
		return
	}
	req, err := http.NewRequest(http.MethodPost, s.base+"/v1/batch", bytes.NewReader(body))
	if err != nil {
		t.Error(err)
		return
	}
	req.SetBasicAuth(seedWriteKey, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("post batch to %s: %v", s.base, err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("post batch to %s: status %d", s.base, resp.StatusCode)
	}
}

// checkFleetInvariants checks what must hold however writes interleave:
// every message stored once, every identifier on one live profile, and no
// profile over its user_id or email limit.
func checkFleetInvariants(t *testing.T, dsn string, messages int) {
	t.Helper()
	db := mustOpenReadOnly(t, dsn)
	var stored, distinct int
	mustScan(t, db, `SELECT COUNT(*), COUNT(DISTINCT message_id) FROM events`,
		&stored, &distinct)
	if stored != messages || distinct != messages {
		t.Errorf("%d events stored (%d distinct), want each of %d once", stored, distinct,
			messages)
	}
	var orphans, overLimit int
	mustScan(t, db, `SELECT COUNT(*) FROM identities i JOIN profiles p ON p.id = i.profile_id
		WHERE p.merged_into IS NOT NULL OR p.retired_ms IS NOT NULL`, &orphans)
	mustScan(t, db, `SELECT COUNT(*) FROM (SELECT profile_id, type FROM identities
		WHERE type IN ('user_id', 'email') GROUP BY profile_id, type
		HAVING COUNT(*) > 1) over_limit`, &overLimit)
	if orphans != 0 || overLimit != 0 {
		t.Errorf("%d identifiers on merged profiles, %d profiles over a limit", orphans,
			overLimit)
	}
}

// fleetGraph lists the live profiles as sorted identifier sets.
func fleetGraph(t *testing.T, dsn string) []string {
	t.Helper()
	rows, err := mustOpenReadOnly(t, dsn).Query(`SELECT i.profile_id, i.type, i.value
		FROM identities i JOIN profiles p ON p.id = i.profile_id
		WHERE p.merged_into IS NULL AND p.retired_ms IS NULL`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	byProfile := map[int64][]string{}
	for rows.Next() {
		var profile int64
		var kind, value string
		if err := rows.Scan(&profile, &kind, &value); err != nil {
			t.Fatal(err)
		}
		byProfile[profile] = append(byProfile[profile], kind+":"+value)
	}
	var graph []string
	for _, ids := range byProfile {
		sort.Strings(ids)
		graph = append(graph, strings.Join(ids, " "))
	}
	sort.Strings(graph)
	return graph
}

func exportedUsers(t *testing.T, dsn, audience string) []string {
	t.Helper()
	var users []string
	for _, m := range exportedMembers(t, dsn, audience) {
		users = append(users, m.UserID)
	}
	sort.Strings(users)
	return users
}

func head(list []string) []string { return list[:min(3, len(list))] }
