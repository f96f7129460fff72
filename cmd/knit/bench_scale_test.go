package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// mustBenchJSON runs a `knit bench` command with --json in-process and
// reads its report into report.
func mustBenchJSON(t *testing.T, report any, args ...string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args = append(append([]string{"bench"}, args...), "--json")
	getenv := func(k string) string {
		if k == "KNIT_LOG_LEVEL" {
			return "warn"
		}
		return ""
	}
	if err := run(context.Background(), args, getenv, &stdout, &stderr); err != nil {
		t.Fatalf("knit %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(),
			stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), report); err != nil {
		t.Fatalf("knit %s: report is not JSON: %v\n%s", strings.Join(args, " "), err,
			stdout.String())
	}
}

// TestBenchAudiencesExportAndProfilesAgreeWithTheServer seeds 300 people,
// times the audiences with knit bench audiences, serves the database
// without a scheduler (so the results stay those the bench stored), and
// checks that the API's sizes, the exports' rows and the Profile API
// lookups agree with the reports.
func TestBenchAudiencesExportAndProfilesAgreeWithTheServer(t *testing.T) {
	dsn := sqltest.MustDSN(t, "scale.db")
	mustRun(t, "bench", "seed", "--db", dsn, "--profiles", "300", "--events", "3000",
		"--seed", "5", "--clock", seedClock)

	var computed benchAudiencesReport
	mustBenchJSON(t, &computed, "audiences", "--db", dsn, "--clock", seedClock,
		"--runs", "2")
	checkAudiencesReport(t, computed)

	s := mustServeWith(t, dsn, seedClock, "--roles", "ingest,web")
	for _, a := range computed.Audiences {
		var page struct {
			Size int `json:"size"`
		}
		if status, body := mustGet(t, s, "/audiences/"+a.Name+"?limit=1", &page); status != 200 ||
			page.Size != a.Members {
			t.Errorf("%s: the API says %d members (HTTP %d %s), the bench %d", a.Name,
				page.Size, status, body, a.Members)
		}
		checkExportReport(t, s, a.Name, a.Members)
	}

	var lookups benchProfilesReport
	mustBenchJSON(t, &lookups, "profiles", "--url", s.base, "--api-token", testToken,
		"--db", dsn, "--duration", "1s", "--warmup", "0s", "--concurrency", "2",
		"--ids", "40", "--server-pid", strconv.Itoa(os.Getpid()))
	checkProfilesReport(t, lookups)
}

func checkAudiencesReport(t *testing.T, r benchAudiencesReport) {
	t.Helper()
	if len(r.Audiences) != 2 || r.Audiences[0].Name != "cart_abandonment" ||
		r.Audiences[1].Name != "shoe_reorder" || r.PeakBytes <= 0 {
		t.Fatalf("want both built-ins in run order and a peak: %+v", r)
	}
	for _, a := range r.Audiences {
		if len(a.Runs) != 2 {
			t.Fatalf("%s: %d runs, want 2", a.Name, len(a.Runs))
		}
		first, second := a.Runs[0], a.Runs[1]
		if a.Members == 0 || first.Members != a.Members ||
			second.Members != a.Members || first.Entered != a.Members ||
			second.Entered != 0 || second.Exited != 0 {
			t.Errorf("%s: two runs of the same members, all entering on the first, "+
				"want; got %+v", a.Name, a)
		}
		low, high := min(first.Seconds, second.Seconds), max(first.Seconds, second.Seconds)
		if !(0 < low && low <= a.MedianSeconds && a.MedianSeconds <= high) ||
			first.PeakBytes <= 0 {
			t.Errorf("%s: median %v s of runs %+v", a.Name, a.MedianSeconds, a.Runs)
		}
	}
}

// checkExportReport downloads the audience through knit bench export in
// two layouts and checks the rows against its size and against the file
// read by encoding/csv.
func checkExportReport(t *testing.T, s *server, name string, members int) {
	t.Helper()
	status, body := mustGet(t, s, "/audiences/"+name+".csv?layout=columns", nil)
	records, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if status != 200 || err != nil || len(records) != members+1 {
		t.Fatalf("%s.csv: HTTP %d, %v, %d records for %d members", name, status, err,
			len(records), members)
	}
	for _, layout := range []string{"", "columns"} {
		var r benchExportReport
		mustBenchJSON(t, &r, "export", "--url", s.base, "--api-token", testToken,
			"--audience", name, "--layout", layout, "--server-pid", strconv.Itoa(os.Getpid()))
		if r.Rows != int64(members) || r.Members != members {
			t.Errorf("%s %q: %d rows, %d members; want %d", name, layout, r.Rows,
				r.Members, members)
		}
		if layout == "columns" && r.Bytes != int64(len(body)) {
			t.Errorf("%s: %d bytes counted, the file has %d", name, r.Bytes, len(body))
		}
		if r.Bytes <= 0 || r.Seconds <= 0 || r.FirstByteSeconds <= 0 ||
			r.FirstByteSeconds > r.Seconds || r.RowsPerSecond <= 0 || r.MBPerSecond <= 0 ||
			r.ClientPeakBytes <= 0 {
			t.Errorf("%s %q: times and rates: %+v", name, layout, r)
		}
		if r.ServerMemory.Source != "proc" || r.ServerMemory.PeakBytes <= 0 {
			t.Errorf("%s %q: server memory %+v", name, layout, r.ServerMemory)
		}
	}
}

func checkProfilesReport(t *testing.T, r benchProfilesReport) {
	t.Helper()
	if r.Failed != 0 || len(r.ErrorsByStatus) != 0 || r.Requests == 0 ||
		r.RequestsPerSecond <= 0 || r.RequestsTotal < r.Requests {
		t.Errorf("want requests without errors: %+v", r)
	}
	if r.IDs["user_id"] == 0 || r.IDs["anonymous_id"] == 0 {
		t.Errorf("ids picked: %v, want both types", r.IDs)
	}
	for _, e := range []string{"", "traits", "events", "external_ids"} {
		l, ok := r.ByEndpoint[e]
		if e == "" {
			l, ok = r.Latency, true
		}
		if !ok || !(0 < l.P50 && l.P50 <= l.P95 && l.P95 <= l.P99 && l.P99 <= l.Max) {
			t.Errorf("endpoint %q: percentiles missing or out of order: %+v", e, l)
		}
	}
	if r.ServerMemory.Source != "proc" || r.ServerMemory.PeakBytes <= 0 {
		t.Errorf("server memory %+v", r.ServerMemory)
	}
}

func TestCSVCounterCountsRecordsNotLines(t *testing.T) {
	for _, c := range []struct {
		text string
		want int64
	}{
		{"", 0},
		{"a,b\n", 1},
		{"a,b\n1,2\n3,4", 3},
		{"a,b\n\"line\none\",2\n\"say \"\"hi\"\"\n\",3\n", 3},
		{"a\n\"\"\"\"\n", 2},
	} {
		for _, size := range []int{1, 3, 1 << 10} { // pieces as a stream may bring them
			var counter csvCounter
			for rest := []byte(c.text); len(rest) > 0; rest = rest[min(size, len(rest)):] {
				counter.count(rest[:min(size, len(rest))])
			}
			records, err := csv.NewReader(strings.NewReader(c.text)).ReadAll()
			if err != nil || counter.records() != c.want || int64(len(records)) != c.want {
				t.Errorf("%q in pieces of %d: %d records, encoding/csv %d (%v), want %d",
					c.text, size, counter.records(), len(records), err, c.want)
			}
		}
	}
}

func TestBenchScaleCommandsHelpAndMistakes(t *testing.T) {
	getenv := func(string) string { return "" }
	for args, wants := range map[string][]string{
		"bench audiences --help": {"-db", "-config", "-clock", "-audience", "-runs",
			"-analyze", "-json", "VmHWM", "destinations"},
		"bench export --help": {"-url", "-api-token", "-audience", "-layout", "-columns",
			"-bom", "-hash-email", "-server-pid", "-timeout", "-json", "rows/s"},
		"bench profiles --help": {"-url", "-api-token", "-db", "-space", "-endpoints",
			"-ids", "-concurrency", "-duration", "-warmup", "-seed", "-server-pid",
			"-json", "anonymous_id"},
	} {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), strings.Fields(args), getenv, &stdout,
			&stderr); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("knit %s: %v", args, err)
		}
		for _, want := range wants {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("knit %s does not mention %s", args, want)
			}
		}
	}
	db := sqltest.MustDSN(t, "mistakes.db")
	for _, args := range [][]string{
		{"bench", "audiences", "--db", db, "--runs", "0"},
		{"bench", "export", "--url", "http://127.0.0.1:1"}, // no token
		{"bench", "export", "--url", "127.0.0.1:1", "--api-token", "t"},
		{"bench", "profiles", "--api-token", "t", "--endpoints", "traits,secrets"},
		{"bench", "profiles", "--api-token", "t", "--duration", "0s"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, getenv, &stdout, &stderr)
		if !errors.Is(err, errUsage) {
			t.Errorf("knit %s: %v, want a usage error", strings.Join(args, " "), err)
		}
	}
}

// TestBenchProfilesStopsWhenTheServerCannotAnswer serves a seeded
// database without the web role: knit bench profiles must stop before its
// run with the server's answer, not report a rate of failures.
func TestBenchProfilesStopsWhenTheServerCannotAnswer(t *testing.T) {
	dsn := sqltest.MustDSN(t, "ingest-only.db")
	mustRun(t, "bench", "seed", "--db", dsn, "--profiles", "40", "--events", "400",
		"--seed", "3", "--clock", seedClock)
	s := mustServeWith(t, dsn, seedClock, "--roles", "ingest")

	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"bench", "profiles", "--url", s.base,
		"--api-token", testToken, "--db", dsn, "--duration", "5s"},
		func(string) string { return "" }, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "HTTP 404") ||
		!strings.Contains(err.Error(), "web role") || stdout.Len() != 0 {
		t.Fatalf("want a stop naming HTTP 404 and the web role, no report; got %v\n%s",
			err, stdout.String())
	}
}

// TestBenchProfilesReportCountsAnswersApart checks that the rate and the
// latencies count answered lookups only and that failures are named by
// status, in order.
func TestBenchProfilesReportCountsAnswersApart(t *testing.T) {
	c := &benchProfilesConfig{url: "http://k", concurrency: 2}
	answered := &profileStats{byEndpoint: map[string]*latencyHist{},
		byStatus: map[string]int64{}, requests: 4, total: 9}
	for range 4 {
		answered.hist.add(2 * time.Millisecond)
	}
	answered.fail("503", "HTTP 503 first")
	failing := &profileStats{byEndpoint: map[string]*latencyHist{},
		byStatus: map[string]int64{}, total: 5}
	for range 3 {
		failing.fail("404", "HTTP 404 later")
	}
	failing.fail("transport", "transport: reset")

	r := c.report([]*profileStats{answered, failing}, nil, 2*time.Second)
	if r.Requests != 4 || r.RequestsPerSecond != 2 || r.RequestsTotal != 14 ||
		r.Failed != 5 {
		t.Errorf("counts: %+v", r)
	}
	want := "5 failed requests (404: 3, 503: 1, transport: 1); first: HTTP 503 first"
	if got := r.errorsText(); got != want {
		t.Errorf("errors text\n got %q\nwant %q", got, want)
	}
	var text strings.Builder
	if err := r.writeText(&text); err != nil ||
		!strings.Contains(text.String(), "4 answered 200 in 2.0 s") ||
		!strings.Contains(text.String(), "14 requests, 5 failed") {
		t.Errorf("text (%v):\n%s", err, text.String())
	}
}
