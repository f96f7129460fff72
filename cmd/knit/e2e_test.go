package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

const (
	seedDir      = "../../testdata/seed-journey"
	seedSecret   = "seed-secret"
	seedWriteKey = "seed-write-key"
	testToken    = "test-token"
	// recordedAt is when the seed requests were recorded; the tracking API
	// corrects clock skew against the receive time, so replays pin it.
	recordedAt = "2026-12-04T15:08:00Z"
)

// server is a knit serve process started in-process by a test.
type server struct {
	base   string
	cancel context.CancelFunc
	done   chan error
}

// mustServe starts `knit serve` on a free port over dbPath with its clock
// starting at clockStart, and stops it when the test ends.
func mustServe(t *testing.T, dbPath, clockStart string) *server {
	t.Helper()
	return mustServeWith(t, dbPath, clockStart)
}

// mustServeWith is mustServe with more flags for knit serve, such as
// --roles.
func mustServeWith(t *testing.T, dbPath, clockStart string, extra ...string) *server {
	t.Helper()

	addr := mustFreeAddr(t)
	env := map[string]string{
		"KNIT_WEBHOOK_SECRET": seedSecret,
		"KNIT_WRITE_KEYS":     "other-key, " + seedWriteKey,
		"KNIT_API_TOKEN":      testToken,
		"KNIT_LOG_LEVEL":      "warn",
	}
	args := []string{"serve", "--addr", addr, "--db", dbPath,
		"--config", filepath.Join("testdata", "seed-journey.yaml"), "--clock", clockStart}
	args = append(args, extra...)

	ctx, cancel := context.WithCancel(context.Background())
	s := &server{base: "http://" + addr, cancel: cancel, done: make(chan error, 1)}
	go func() {
		s.done <- run(ctx, args, func(k string) string { return env[k] }, io.Discard, io.Discard)
	}()
	t.Cleanup(func() { s.stop(t) })

	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.base + "/healthz")
		if err == nil {
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

// stop shuts the server down as SIGTERM would and requires it to finish
// cleanly within five seconds.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("knit serve returned %v on shutdown", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("knit serve did not stop within 5 s of its context ending")
	}
}

func mustFreeAddr(t *testing.T) string {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	return listener.Addr().String()
}

// recordedRequest is one line of the seed journey's request recordings.
type recordedRequest struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

// mustReplay sends every recorded request in file byte for byte and
// requires a 200 for each.
func mustReplay(t *testing.T, s *server, file string) {
	t.Helper()

	data, err := os.ReadFile(filepath.Join(seedDir, file))
	if err != nil {
		t.Fatal(err)
	}
	scanner := bufio.NewScanner(bytes.NewReader(data))
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for line := 1; scanner.Scan(); line++ {
		var rec recordedRequest
		if err := json.Unmarshal(scanner.Bytes(), &rec); err != nil {
			t.Fatalf("%s:%d: %v", file, line, err)
		}
		req, err := http.NewRequest(rec.Method, s.base+rec.Path, strings.NewReader(rec.Body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range rec.Headers {
			req.Header.Set(k, v)
		}
		status, body := mustDo(t, req)
		if status != http.StatusOK {
			t.Fatalf("%s:%d: status %d: %s", file, line, status, body)
		}
	}
}

func mustDo(t *testing.T, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// mustGet fetches path with the API token and decodes a JSON answer into
// dest (when not nil); it returns the status and raw body.
func mustGet(t *testing.T, s *server, path string, dest any) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	status, body := mustDo(t, req)
	if dest != nil && status == http.StatusOK {
		if err := json.Unmarshal(body, dest); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, body)
		}
	}
	return status, body
}

func mustPost(t *testing.T, s *server, path string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(testToken, "")
	return mustDo(t, req)
}

// seedExpected is the seed journey's expected.json.
type seedExpected struct {
	Profiles        []map[string][]string     `json:"profiles"`
	EventsOnProfile int                       `json:"events_on_profile"`
	Traits          map[string]any            `json:"traits"`
	At              map[string]map[string]any `json:"at"`
}

func mustSeedExpected(t *testing.T) seedExpected {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(seedDir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want seedExpected
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	return want
}

func TestSeedJourneyEndToEnd(t *testing.T) {
	cases := []struct {
		name    string
		replays []string
	}{
		{"all three recordings into one database store each message once",
			[]string{"webhook-single.ndjson", "webhook-batch.ndjson", "tracking-batch.ndjson"}},
		{"webhook batches alone", []string{"webhook-batch.ndjson"}},
		{"tracking API batches alone", []string{"tracking-batch.ndjson"}},
	}
	want := mustSeedExpected(t)

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dbPath := sqltest.MustDSN(t, "knit.db")
			s := mustServe(t, dbPath, recordedAt)
			for _, file := range tc.replays {
				mustReplay(t, s, file)
			}
			checkSeedProfile(t, s, want)
			checkAudienceList(t, s)
			checkMetricsAndReadiness(t, s)
			s.stop(t)

			for _, at := range sortedKeys(want.At) {
				s := mustServe(t, dbPath, at)
				checkSeedAudiences(t, s, at, want.At[at])
				s.stop(t)
			}
			checkSeedDatabase(t, dbPath, want)
		})
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// checkSeedProfile finds Jane through every expected identifier with the
// Profile API and compares her identifiers and traits.
func checkSeedProfile(t *testing.T, s *server, want seedExpected) {
	t.Helper()
	if len(want.Profiles) != 1 {
		t.Fatalf("expected.json holds %d profiles; this test expects 1", len(want.Profiles))
	}
	wantIDs := want.Profiles[0]

	for kind, values := range wantIDs {
		for _, value := range values {
			base := "/v1/spaces/any/collections/users/profiles/" + kind + ":" + value
			var ids struct {
				Data []struct {
					Type string `json:"type"`
					ID   string `json:"id"`
				} `json:"data"`
			}
			mustGet(t, s, base+"/external_ids?limit=200", &ids)
			got := map[string][]string{}
			for _, d := range ids.Data {
				got[d.Type] = append(got[d.Type], d.ID)
			}
			if !sameIdentifiers(got, wantIDs) {
				t.Errorf("profile found by %s:%s has %v, want %v", kind, value, got, wantIDs)
			}

			var traits struct {
				Traits map[string]any `json:"traits"`
			}
			mustGet(t, s, base+"/traits?limit=200", &traits)
			if fmt.Sprint(traits.Traits) != fmt.Sprint(want.Traits) {
				t.Errorf("traits %v, want %v", traits.Traits, want.Traits)
			}
		}
	}

	status, body := mustGet(t, s,
		"/v1/spaces/any/collections/users/profiles/user_id:user1234/traits", nil)
	if status != http.StatusNotFound || !strings.Contains(string(body), `"not_found"`) {
		t.Errorf("user1234 lookup: %d %s, want 404 not_found", status, body)
	}
}

// checkAudienceList reads GET /audiences: both built-ins, computed at start.
func checkAudienceList(t *testing.T, s *server) {
	t.Helper()
	var list struct {
		Audiences []struct {
			Name        string `json:"name"`
			Description string `json:"description"`
			Schedule    string `json:"schedule"`
			LastRun     *struct {
				Status string `json:"status"`
			} `json:"last_run"`
		} `json:"audiences"`
	}
	// The runs at start are asynchronous: wait for both to finish.
	for deadline := time.Now().Add(20 * time.Second); ; {
		mustGet(t, s, "/audiences", &list)
		recorded := len(list.Audiences) > 0
		for _, a := range list.Audiences {
			recorded = recorded && a.LastRun != nil && a.LastRun.Status != "running"
		}
		if recorded || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var names []string
	for _, a := range list.Audiences {
		names = append(names, a.Name)
		if a.Description == "" || a.Schedule != "*/15 * * * *" || a.LastRun == nil {
			t.Errorf("GET /audiences entry %+v lacks description, schedule or last run", a)
		}
	}
	if strings.Join(names, ",") != "cart_abandonment,shoe_reorder" {
		t.Errorf("GET /audiences names %v", names)
	}

	req, _ := http.NewRequest(http.MethodGet, s.base+"/audiences", nil)
	if status, body := mustDo(t, req); status != http.StatusUnauthorized {
		t.Errorf("GET /audiences without a token: %d %s", status, body)
	}
	if status, body := mustGet(t, s, "/audiences/nope", nil); status != http.StatusNotFound ||
		!strings.Contains(string(body), `"not_found"`) {
		t.Errorf("unknown audience: %d %s", status, body)
	}
}

func sameIdentifiers(got, want map[string][]string) bool {
	if len(got) != len(want) {
		return false
	}
	for kind, values := range want {
		g := append([]string(nil), got[kind]...)
		w := append([]string(nil), values...)
		sort.Strings(g)
		sort.Strings(w)
		if strings.Join(g, ",") != strings.Join(w, ",") {
			return false
		}
	}
	return true
}

// checkSeedAudiences computes both audiences at the server's clock and
// compares them with expected.json through the JSON API and the CSV.
func checkSeedAudiences(t *testing.T, s *server, at string, want map[string]any) {
	t.Helper()
	for _, name := range []string{"cart_abandonment", "shoe_reorder"} {
		status, body := mustPost(t, s, "/audiences/"+name+"/runs")
		if status != http.StatusOK || !strings.Contains(string(body), `"status":"ok"`) {
			t.Fatalf("%s: run %s: %d %s", at, name, status, body)
		}
	}

	got := map[string]any{
		"cart_abandonment": cartMembers(t, s),
		"shoe_reorder":     reorderMembers(t, s),
	}
	for _, name := range []string{"cart_abandonment", "shoe_reorder"} {
		g, _ := json.Marshal(got[name])
		w, _ := json.Marshal(want[name])
		if string(g) != string(w) {
			t.Errorf("at %s %s = %s, want %s", at, name, g, w)
		}
	}

	checkMembershipTraits(t, s, at, want)

	csvCart := csvMembers(t, s, "cart_abandonment", "abandoned_products")
	g, _ := json.Marshal(csvCart)
	w, _ := json.Marshal(want["cart_abandonment"])
	if string(g) != string(w) {
		t.Errorf("at %s cart_abandonment CSV = %s, want %s", at, g, w)
	}
}

// checkMembershipTraits reads Jane's audiences as boolean traits from the
// Profile API, as Segment shows them.
func checkMembershipTraits(t *testing.T, s *server, at string, want map[string]any) {
	t.Helper()
	var got struct {
		Traits map[string]bool `json:"traits"`
	}
	mustGet(t, s, "/v1/spaces/any/collections/users/profiles/user_id:abc123def/traits"+
		"?class=audience", &got)
	for _, name := range []string{"cart_abandonment", "shoe_reorder"} {
		members, _ := want[name].(map[string]any)
		_, wantIn := members["abc123def"]
		if in, listed := got.Traits[name]; !listed || in != wantIn {
			t.Errorf("at %s trait %s = %v (listed %v), want %v", at, name, in, listed, wantIn)
		}
	}
}

// apiMember is a member as GET /audiences/{name} returns it.
type apiMember struct {
	UserID     string         `json:"user_id"`
	Email      string         `json:"email"`
	Attributes map[string]any `json:"attributes"`
}

func audienceMembers(t *testing.T, s *server, name string) []apiMember {
	t.Helper()
	var page struct {
		Name    string      `json:"name"`
		Size    int         `json:"size"`
		Members []apiMember `json:"members"`
		Next    *string     `json:"next"`
	}
	status, body := mustGet(t, s, "/audiences/"+name, &page)
	if status != http.StatusOK {
		t.Fatalf("GET /audiences/%s: %d %s", name, status, body)
	}
	if page.Name != name || page.Size != len(page.Members) || page.Next != nil {
		t.Errorf("GET /audiences/%s: name %q size %d members %d next %v",
			name, page.Name, page.Size, len(page.Members), page.Next)
	}
	return page.Members
}

func cartMembers(t *testing.T, s *server) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, m := range audienceMembers(t, s, "cart_abandonment") {
		for _, p := range m.Attributes["abandoned_products"].([]any) {
			out[m.UserID] = append(out[m.UserID], p.(string))
		}
	}
	return out
}

func reorderMembers(t *testing.T, s *server) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, m := range audienceMembers(t, s, "shoe_reorder") {
		out[m.UserID] = map[string]any{
			"shoe":                 m.Attributes["shoe"],
			"miles_since_purchase": m.Attributes["miles_since_purchase"],
		}
	}
	return out
}

// csvMembers downloads the audience's CSV and returns user_id -> the list
// in column listColumn.
func csvMembers(t *testing.T, s *server, name, listColumn string) map[string][]string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.base+"/audiences/"+name+".csv", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("CSV Content-Disposition %q, want attachment", resp.Header.Get("Content-Disposition"))
	}

	records, err := csv.NewReader(resp.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	header := strings.Join(records[0], ",")
	if !strings.HasPrefix(header, "profile_id,email,user_id,") {
		t.Fatalf("CSV header %q", header)
	}
	column := -1
	for i, h := range records[0] {
		if h == listColumn {
			column = i
		}
	}
	out := map[string][]string{}
	for _, r := range records[1:] {
		out[r[2]] = strings.Split(r[column], ";")
	}
	return out
}

func checkSeedDatabase(t *testing.T, dbPath string, want seedExpected) {
	t.Helper()
	db := mustOpenReadOnly(t, dbPath)

	var profiles, events, unattributed int
	mustScan(t, db, `SELECT COUNT(*) FROM profiles WHERE merged_into IS NULL`, &profiles)
	mustScan(t, db, `SELECT COUNT(*) FROM events WHERE profile_id IS NOT NULL`, &events)
	mustScan(t, db, `SELECT COUNT(*) FROM events WHERE profile_id IS NULL`, &unattributed)
	if profiles != len(want.Profiles) || events != want.EventsOnProfile || unattributed != 0 {
		t.Errorf("database holds %d profiles, %d events on profiles, %d unattributed; "+
			"want %d, %d, 0", profiles, events, unattributed,
			len(want.Profiles), want.EventsOnProfile)
	}
}

// mustOpenReadOnly opens the database a test's knit wrote: a SQLite file
// read-only, or the PostgreSQL schema its URL names.
func mustOpenReadOnly(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	driver, source := "sqlite3", "file:"+dsn+"?mode=ro"
	if sqldb.DialectFromDSN(dsn) == sqldb.Postgres {
		driver, source = "pgx", dsn
	}
	db, err := sql.Open(driver, source)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustScan(t *testing.T, db *sql.DB, query string, dest ...any) {
	t.Helper()
	if err := db.QueryRow(query).Scan(dest...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// checkMetricsAndReadiness checks /readyz and that /metrics, behind the
// token, counts what the replay stored and the audiences' sizes.
func checkMetricsAndReadiness(t *testing.T, s *server) {
	t.Helper()
	if status, body := mustDo(t, mustRequest(t, s.base+"/readyz")); status != http.StatusOK {
		t.Errorf("/readyz: %d %s", status, body)
	}
	if status, _ := mustDo(t, mustRequest(t, s.base+"/metrics")); status != 401 {
		t.Errorf("/metrics without the token: %d, want 401", status)
	}
	status, body := mustGet(t, s, "/metrics", nil)
	for _, want := range []string{`knit_messages_total{outcome="stored"}`,
		`knit_audience_members{audience="cart_abandonment"}`,
		`knit_http_requests_total{route="/readyz",status="200"} 1`,
		`knit_ingest_batch_messages_count`, `knit_outbox_pending`,
		`knit_group_commit_requests_count`, `knit_group_commit_messages_sum`,
		`knit_group_commit_phase_seconds_count{phase="read_ahead"}`,
		`knit_group_commit_phase_seconds_sum{phase="commit"}`,
		`knit_group_commit_phase_seconds_sum{phase="sync"}`} {
		if status != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("/metrics (%d) lacks %s", status, want)
		}
	}
}

func mustRequest(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
