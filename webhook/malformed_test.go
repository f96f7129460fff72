package webhook_test

// Malformed requests against the ingestion edge (issue #8): each case names
// the status and the error it must get, and after each one every table is
// counted again, so nothing of a refused request (or of a refused message
// in a batch) may be stored. The cases are in malformed_cases_test.go.
//
// What knit does with a batch (a /webhook array or a /v1/batch) holding a
// bad message: the valid messages are stored together in one transaction
// and answered 200 {"success": true, "rejected": [{"index", "error"}]};
// each bad message is recorded in rejected_messages. A batch in which
// nothing is valid is answered 4xx, listing every message; a request that
// is bad as a whole (not JSON, too large, empty, wrong content type) is
// refused before any message is read. docs/operations.md ("Bad input")
// describes the same for operators.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/webhook"
)

// malformedKey is the write key of the malformed-request tests.
const malformedKey = "wk-malformed"

// malformed is one request and what knit must answer and keep.
type malformed struct {
	name   string
	path   string
	body   []byte
	header map[string]string // over Content-Type: application/json; "" removes
	noKey  bool              // send no HTTP Basic write key

	status int
	code   string // the error's code; on a 200, every rejected item's
	part   string // in the error's message; on a 200, in every rejected item's
	// itemPart is in every rejected item's message when a 4xx lists them;
	// part when empty.
	itemPart string
	stored   []string // message ids the request stores
	refused  []int    // indexes of the batch items refused
	// check, when set, tests what was stored.
	check func(t *testing.T, s *server)
}

// records is how many rows the case adds to rejected_messages: one per
// refused item, or one for a request refused whole.
func (m malformed) records() int {
	if len(m.refused) == 0 && m.status != http.StatusOK {
		return 1
	}
	return len(m.refused)
}

func TestMalformedRequests(t *testing.T) {
	s := mustServer(t, webhook.Config{WriteKeys: []string{malformedKey}})
	cases := malformedCases(t)
	if len(cases) < 50 {
		t.Fatalf("%d cases; issue #8 asks for at least 50", len(cases))
	}
	seen := map[string]bool{}
	for _, tt := range cases {
		if seen[tt.name] {
			t.Fatalf("two cases are named %q", tt.name)
		}
		seen[tt.name] = true
		t.Run(tt.name, func(t *testing.T) {
			before := mustSnapshot(t, s)
			rec := mustPost(t, s, tt.call())
			mustAnswer(t, rec, tt)
			mustKeep(t, s, before, tt.stored, tt.records(), tt.reason())
			if tt.check != nil {
				tt.check(t, s)
			}
		})
	}
}

// reason is what the recorded refusals must mention.
func (m malformed) reason() string {
	if m.itemPart != "" {
		return m.itemPart
	}
	return m.part
}

// call is the request of the case.
func (m malformed) call() call {
	header := map[string]string{"Content-Type": "application/json"}
	for key, value := range m.header {
		header[key] = value
	}
	c := call{path: m.path, body: m.body, header: header}
	if !m.noKey {
		c.user = malformedKey
	}
	return c
}

// mustAnswer checks the status, the error and the rejected items.
func mustAnswer(t *testing.T, rec *httptest.ResponseRecorder, tt malformed) {
	t.Helper()
	var got reply
	if tt.status == http.StatusOK {
		got = mustReply(t, rec, http.StatusOK)
		if !got.Success || got.Error != nil {
			t.Errorf("body = %s, want success", rec.Body)
		}
	} else {
		got = mustFail(t, rec, tt.status, tt.code, tt.part)
	}

	want := make([]rejection, len(tt.refused))
	for i, index := range tt.refused {
		want[i] = rejection{index: index, code: tt.code, part: tt.reason()}
	}
	mustRejected(t, got.Rejected, want)
}

// snapshot counts the rows of every table of the schema.
type snapshot map[string]int

func mustSnapshot(t *testing.T, s *server) snapshot {
	t.Helper()
	query := `SELECT name FROM sqlite_master
		WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`
	if s.db.Dialect() == sqldb.Postgres {
		// Partitions are counted in their parent (events).
		query = `SELECT relname FROM pg_class
			WHERE relnamespace = current_schema()::regnamespace
			AND relkind IN ('r', 'p') AND NOT relispartition`
	}
	var tables []string
	if err := s.db.Select(&tables, query); err != nil {
		t.Fatalf("list tables: %v", err)
	}
	counts := snapshot{}
	for _, table := range tables {
		// The names come from the catalog.
		counts[table] = mustCount(t, s, `SELECT COUNT(*) FROM "`+table+`"`)
	}
	return counts
}

// mustKeep checks what a request left in the database since before: the
// messages stored (and whatever they imply) and records refusals whose
// newest gives reason, nothing more.
func mustKeep(t *testing.T, s *server, before snapshot, stored []string, records int,
	reason string) {
	t.Helper()
	after := mustSnapshot(t, s)
	if got := after["rejected_messages"] - before["rejected_messages"]; got != records {
		t.Errorf("%d refusals recorded, want %d", got, records)
	}
	if got := after["events"] - before["events"]; got != len(stored) {
		t.Errorf("%d events stored, want %d", got, len(stored))
	}
	for _, id := range stored {
		if n := mustCount(t, s, `SELECT COUNT(*) FROM events WHERE message_id = ?`,
			id); n != 1 {
			t.Errorf("message %q stored %d times, want once", id, n)
		}
	}
	if records > 0 {
		mustLastReason(t, s, reason)
	}
	if len(stored) > 0 {
		return // a stored message may add identities, profiles and more
	}
	for table, n := range after {
		if table != "rejected_messages" && n != before[table] {
			t.Errorf("table %s went from %d to %d rows; a refusal stores nothing",
				table, before[table], n)
		}
	}
}

// mustLastReason checks that the newest refusal recorded gives the reason
// the sender was answered.
func mustLastReason(t *testing.T, s *server, want string) {
	t.Helper()
	var reason string
	if err := s.db.Get(&reason,
		`SELECT reason FROM rejected_messages ORDER BY id DESC LIMIT 1`); err != nil {
		t.Fatalf("read the last refusal: %v", err)
	}
	if !strings.Contains(reason, want) {
		t.Errorf("recorded reason %q, want it to mention %q", reason, want)
	}
}

// mustStoredColumn returns one column of the event of messageID.
func mustStoredColumn(t *testing.T, s *server, column, messageID string) string {
	t.Helper()
	var value string
	// The column names come from the tests.
	err := s.db.Get(&value, s.db.Rebind(`SELECT `+column+` FROM events
		WHERE message_id = ?`), messageID)
	if err != nil {
		t.Fatalf("%s of %q: %v", column, messageID, err)
	}
	return value
}

// mustIdentitiesOf returns the identifiers first seen on messageID, as
// type:value, sorted.
func mustIdentitiesOf(t *testing.T, s *server, messageID string) []string {
	t.Helper()
	ids := []string{}
	err := s.db.Select(&ids, s.db.Rebind(`SELECT type || ':' || value FROM identities
		WHERE first_message_id = ? ORDER BY type, value`), messageID)
	if err != nil {
		t.Fatalf("identities of %q: %v", messageID, err)
	}
	return ids
}

// mustTraitsOf returns the traits set by messageID, key to JSON value.
func mustTraitsOf(t *testing.T, s *server, messageID string) map[string]string {
	t.Helper()
	var rows []struct {
		Key   string `db:"key"`
		Value string `db:"value"`
	}
	err := s.db.Select(&rows, s.db.Rebind(`SELECT key, value FROM traits
		WHERE message_id = ?`), messageID)
	if err != nil {
		t.Fatalf("traits of %q: %v", messageID, err)
	}
	traits := map[string]string{}
	for _, r := range rows {
		traits[r.Key] = r.Value
	}
	return traits
}

// mustMultiMemberBomb returns a gzip stream of many members that
// decompresses to size bytes: "[" and spaces. Members of 1 MB each keep
// its making cheap; it is about 1,000 times smaller than what it inflates
// to.
func mustMultiMemberBomb(t *testing.T, size int) []byte {
	t.Helper()
	const member = 1 << 20
	first := bytes.Repeat([]byte(" "), member)
	first[0] = '['
	head := mustGzip(t, first)
	rest := mustGzip(t, bytes.Repeat([]byte(" "), member))
	var buf bytes.Buffer
	buf.Write(head)
	for n := member; n < size; n += member {
		buf.Write(rest)
	}
	if buf.Len() > size/500 {
		t.Fatalf("bomb of %d bytes compresses to %d; not a bomb", size, buf.Len())
	}
	return buf.Bytes()
}

// TestGzipBombIsRefusedWithoutInflating: a 300 MB gzip bomb of a few
// hundred KB is refused once 500 KB are inflated. The test measures the
// memory the request allocates (at most a few MB; 300 MB if inflated) and
// logs the time taken without asserting it.
func TestGzipBombIsRefusedWithoutInflating(t *testing.T) {
	const inflated = 300 << 20
	bomb := mustMultiMemberBomb(t, inflated)
	s := mustServer(t, webhook.Config{WriteKeys: []string{malformedKey}})

	for _, path := range []string{"/webhook", "/v1/batch", "/v1/track"} {
		t.Run(path, func(t *testing.T) {
			tt := malformed{path: path, body: bomb,
				header: map[string]string{"Content-Encoding": "gzip"},
				status: http.StatusBadRequest, code: resolver.ETooLarge,
				part: "over 512000 bytes (500 KB) after decompression"}
			before := mustSnapshot(t, s)
			var start, end runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&start)
			began := time.Now()

			rec := mustPost(t, s, tt.call())

			took := time.Since(began)
			runtime.ReadMemStats(&end)
			allocated := end.TotalAlloc - start.TotalAlloc
			t.Logf("%d-byte bomb of %d MB refused in %v, %d KB allocated",
				len(bomb), inflated>>20, took, allocated>>10)
			if allocated > 32<<20 {
				t.Errorf("the refusal allocated %d MB; the bomb was inflated",
					allocated>>20)
			}
			mustAnswer(t, rec, tt)
			mustKeep(t, s, before, nil, 1, tt.part)
		})
	}
}

// rawExchange is what a server answered to bytes sent over one connection.
type rawExchange struct {
	responses []*http.Response
	bodies    []string
}

// mustRawExchange sends raw bytes to addr over one TCP connection, closes
// the connection's sending side and reads every response until the server
// closes. The deadline only keeps a broken server from hanging the test.
func mustRawExchange(t *testing.T, addr, raw string) rawExchange {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatalf("close the sending side: %v", err)
	}

	var got rawExchange
	reader := bufio.NewReader(conn)
	for {
		resp, err := http.ReadResponse(reader, nil)
		if err != nil {
			break // the server closed the connection
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("read a response body: %v", err)
		}
		got.responses = append(got.responses, resp)
		got.bodies = append(got.bodies, string(body))
	}
	if len(got.responses) == 0 {
		t.Fatal("the server answered nothing")
	}
	return got
}

// rawRequest writes a POST of body with the given Content-Length and other
// header lines.
func rawRequest(path, body, contentLength string, headers ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: knit.test\r\n", path)
	fmt.Fprintf(&b, "Authorization: Basic %s\r\n", basicKey(malformedKey))
	b.WriteString("Content-Type: application/json\r\n")
	if contentLength != "" {
		fmt.Fprintf(&b, "Content-Length: %s\r\n", contentLength)
	}
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	return b.String() + "\r\n" + body
}

// basicKey is the HTTP Basic credential of a write key with no password.
func basicKey(key string) string {
	req, _ := http.NewRequest(http.MethodPost, "/", nil)
	req.SetBasicAuth(key, "")
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

// lengthCase is a request whose headers lie about its body, sent over TCP.
type lengthCase struct {
	name string
	raw  string
	// statuses are the statuses of the responses, in order; parts are in
	// their bodies.
	statuses []int
	parts    []string
	stored   []string
	records  int
}

func lengthCases() []lengthCase {
	body := track("cl-first")
	two := body + track("cl-second")
	chunked := track("cl-chunked")
	return []lengthCase{
		{"Content-Length larger than the body is refused as truncated",
			rawRequest("/webhook", body, fmt.Sprint(len(body)+100)),
			[]int{400}, []string{"request body is truncated or corrupt"}, nil, 1},
		{"Content-Length larger than a tracking call's body is refused",
			rawRequest("/v1/track", body, fmt.Sprint(len(body)+1)),
			[]int{400}, []string{"request body is truncated or corrupt"}, nil, 1},
		{"Content-Length cutting the body short refuses the cut JSON " +
			"and the rest as a request",
			rawRequest("/webhook", body, fmt.Sprint(len(body)-10)),
			[]int{400, 400}, []string{"message is not valid JSON", "Bad Request"},
			nil, 1},
		{"Content-Length covering only the first object stores it alone",
			rawRequest("/webhook", two, fmt.Sprint(len(body))),
			[]int{200, 400}, []string{`"success":true`, "Bad Request"},
			[]string{"cl-first"}, 0},
		{"Content-Length of 0 with a body is an empty request",
			rawRequest("/v1/track", body, "0"),
			[]int{400, 400}, []string{"request body is empty", "Bad Request"}, nil, 1},
		{"a negative Content-Length is refused by the HTTP server",
			rawRequest("/webhook", body, "-1"),
			[]int{400}, []string{"Bad Request"}, nil, 0},
		{"a Content-Length that is not a number is refused by the HTTP server",
			rawRequest("/webhook", body, "12abc"),
			[]int{400}, []string{"Bad Request"}, nil, 0},
		{"two different Content-Lengths are refused by the HTTP server",
			rawRequest("/webhook", body, fmt.Sprint(len(body)),
				fmt.Sprintf("Content-Length: %d", len(body)-1)),
			[]int{400}, []string{"Bad Request"}, nil, 0},
		{"chunked with a Content-Length is read by its chunks",
			rawRequest("/webhook", fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(chunked),
				chunked), "5", "Transfer-Encoding: chunked"),
			[]int{200}, []string{`"success":true`}, []string{"cl-chunked"}, 0},
		{"a chunked body cut off before its last chunk is refused as truncated",
			rawRequest("/webhook", fmt.Sprintf("%x\r\n%s", len(body)+50, body), "",
				"Transfer-Encoding: chunked"),
			[]int{400}, []string{"request body is truncated or corrupt"}, nil, 1},
	}
}

// TestBodiesThatLieAboutTheirLength sends requests whose Content-Length
// or chunking does not match the body over a raw TCP connection to a real
// HTTP server: a short body is refused as truncated, extra bytes are never
// read as a message, and nothing else is stored.
func TestBodiesThatLieAboutTheirLength(t *testing.T) {
	s := mustServer(t, webhook.Config{WriteKeys: []string{malformedKey}})
	srv := httptest.NewServer(s.router)
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")

	for _, tt := range lengthCases() {
		t.Run(tt.name, func(t *testing.T) {
			before := mustSnapshot(t, s)
			got := mustRawExchange(t, addr, tt.raw)
			if len(got.responses) != len(tt.statuses) {
				t.Fatalf("%d responses %q, want %d", len(got.responses), got.bodies,
					len(tt.statuses))
			}
			for i, resp := range got.responses {
				if resp.StatusCode != tt.statuses[i] ||
					!strings.Contains(got.bodies[i], tt.parts[i]) {
					t.Errorf("response %d = %d %q, want %d with %q", i, resp.StatusCode,
						got.bodies[i], tt.statuses[i], tt.parts[i])
				}
			}
			mustKeep(t, s, before, tt.stored, tt.records, tt.parts[0])
		})
	}
}
