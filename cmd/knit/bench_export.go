package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

const benchExportSummary = `knit bench export [flags]: download an audience's CSV export from a
running knit as it streams, and report rows/s, MB/s, the time to the first
byte and the server's peak memory.

The download is read in 256 KB pieces and counted, never held whole: rows
are CSV records (a line break inside quotes does not end one) after the
header. The report compares them with the audience's size, which the
export API gives beside the file. --layout, --columns, --bom and
--hash-email are the download's query options (see README).

The server's peak memory is VmHWM from /proc/PID/status with --server-pid
(a server on this machine), reset when the download starts where Linux
allows, so it is the larger of the server's resident size then and its
peak during the export; else the largest process_resident_memory_bytes of
/metrics, sampled each second. This process's own peak (VmHWM) is
reported too: it stays small however large the export.`

// benchExportConfig is what `knit bench export` was told.
type benchExportConfig struct {
	url, apiToken, audience string
	layout, columns         string
	bom, hashEmail          bool
	serverPID               int
	timeout                 time.Duration
	jsonOut                 bool
}

// benchExportReport is what `knit bench export` prints.
type benchExportReport struct {
	URL                string      `json:"url"`
	Audience           string      `json:"audience"`
	Query              string      `json:"query,omitempty"`
	Members            int         `json:"members"` // the audience's size
	Rows               int64       `json:"rows"`
	Bytes              int64       `json:"bytes"`
	Seconds            float64     `json:"seconds"`
	FirstByteSeconds   float64     `json:"first_byte_seconds"`
	RowsPerSecond      float64     `json:"rows_per_second"`
	MBPerSecond        float64     `json:"mb_per_second"` // 10^6 bytes
	ServerMemory       benchMemory `json:"server_memory"`
	ServerPeakIsExport bool        `json:"server_peak_is_export"`
	ClientPeakBytes    int64       `json:"client_peak_bytes"`
}

func runBenchExport(ctx context.Context, args []string, getenv env, stdout,
	stderr io.Writer) error {
	c, err := parseBenchExportFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	report, err := c.run(ctx)
	if err != nil {
		return err
	}
	if c.jsonOut {
		err = writeIndentedJSON(stdout, report)
	} else {
		err = report.writeText(stdout)
	}
	if err != nil {
		return err
	}
	if report.Rows != int64(report.Members) {
		return fmt.Errorf("the export has %d rows but the audience %d members (did a "+
			"run finish during the download?)", report.Rows, report.Members)
	}
	return nil
}

func parseBenchExportFlags(args []string, getenv env,
	stderr io.Writer) (*benchExportConfig, error) {
	fs := newFlagSet("knit bench export", benchExportSummary, stderr)
	c := &benchExportConfig{}
	fs.StringVar(&c.url, "url", orDefault(getenv("KNIT_BENCH_URL"), "http://127.0.0.1:8080"),
		"base URL of the knit server (env KNIT_BENCH_URL)")
	fs.StringVar(&c.apiToken, "api-token", getenv("KNIT_API_TOKEN"),
		"the server's API token (env KNIT_API_TOKEN)")
	fs.StringVar(&c.audience, "audience", "cart_abandonment", "audience to download")
	fs.StringVar(&c.layout, "layout", "", "CSV layout: default, columns or json")
	fs.StringVar(&c.columns, "columns", "", "keep only these comma-separated columns")
	fs.BoolVar(&c.bom, "bom", false, "ask for a UTF-8 byte-order mark")
	fs.BoolVar(&c.hashEmail, "hash-email", false, "ask for emails as hex SHA-256")
	fs.IntVar(&c.serverPID, "server-pid", 0, "process id of the server on this machine: "+
		"its peak memory\nis read from /proc/PID/status (VmHWM)")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Minute, "give up on the download after this")
	fs.BoolVar(&c.jsonOut, "json", false, "print the report as JSON")
	var positional []string
	if err := parseFlags(fs, args, &positional); err != nil {
		return nil, err
	}
	u, err := url.Parse(c.url)
	switch {
	case len(positional) > 0:
		return nil, fmt.Errorf("%w: knit bench export takes no arguments", errUsage)
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return nil, fmt.Errorf("%w: --url %q is not an http:// or https:// address",
			errUsage, c.url)
	case c.apiToken == "":
		return nil, fmt.Errorf("%w: knit bench export needs --api-token (or "+
			"KNIT_API_TOKEN)", errUsage)
	case c.audience == "" || c.timeout <= 0:
		return nil, fmt.Errorf("%w: give an --audience and a --timeout above 0", errUsage)
	}
	c.url = strings.TrimSuffix(c.url, "/")
	return c, nil
}

// query is the download's query string.
func (c *benchExportConfig) query() string {
	v := url.Values{}
	if c.layout != "" {
		v.Set("layout", c.layout)
	}
	if c.columns != "" {
		v.Set("columns", c.columns)
	}
	if c.bom {
		v.Set("bom", "1")
	}
	if c.hashEmail {
		v.Set("hash_email", "1")
	}
	return v.Encode()
}

// run downloads the export once and measures it.
func (c *benchExportConfig) run(ctx context.Context) (*benchExportReport, error) {
	if err := (&benchConfig{url: c.url}).checkServer(ctx); err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: c.timeout,
		Transport: &http.Transport{DisableCompression: true}}
	defer client.CloseIdleConnections()
	report := &benchExportReport{URL: c.url, Audience: c.audience, Query: c.query()}
	size, err := c.audienceSize(ctx, client)
	if err != nil {
		return nil, err
	}
	report.Members = size
	memory, err := c.watchServerMemory(ctx, report)
	if err != nil {
		return nil, err
	}
	err = c.download(ctx, client, report)
	report.ServerMemory = memory(context.WithoutCancel(ctx))
	if err != nil {
		return nil, err
	}
	report.ClientPeakBytes, _, _ = readProcMemory(os.Getpid())
	if report.Seconds > 0 {
		report.RowsPerSecond = float64(report.Rows) / report.Seconds
		report.MBPerSecond = float64(report.Bytes) / 1e6 / report.Seconds
	}
	return report, nil
}

// get sends an authorised GET of path and returns the response, or an
// error naming what the server answered when it is not 200.
func (c *benchExportConfig) get(ctx context.Context, client *http.Client,
	path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url+path, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.apiToken)
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
		_ = resp.Body.Close()
		return nil, fmt.Errorf("GET %s: HTTP %d: %s", path, resp.StatusCode, clip(body, 300))
	}
	return resp, nil
}

// audienceSize reads the size of the audience's current result.
func (c *benchExportConfig) audienceSize(ctx context.Context,
	client *http.Client) (int, error) {
	resp, err := c.get(ctx, client, "/audiences/"+url.PathEscape(c.audience)+"?limit=1")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var page struct {
		Size *int `json:"size"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || page.Size == nil {
		return 0, fmt.Errorf("GET /audiences/%s: no size in the answer (%v)", c.audience, err)
	}
	return *page.Size, nil
}

// watchServerMemory starts watching the server's memory, as knit bench run
// does, after resetting its peak when --server-pid allows.
func (c *benchExportConfig) watchServerMemory(ctx context.Context,
	report *benchExportReport) (func(context.Context) benchMemory, error) {
	watch := &benchConfig{url: c.url, apiToken: c.apiToken, serverPID: c.serverPID}
	if c.serverPID > 0 {
		report.ServerPeakIsExport = resetPeakMemory(c.serverPID) == nil
	}
	return watch.watchMemory(ctx)
}

// download streams the export, counting rows and bytes as they come.
func (c *benchExportConfig) download(ctx context.Context, client *http.Client,
	report *benchExportReport) error {
	path := "/audiences/" + url.PathEscape(c.audience) + ".csv"
	if q := c.query(); q != "" {
		path += "?" + q
	}
	start := time.Now()
	resp, err := c.get(ctx, client, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if kind := resp.Header.Get("Content-Type"); !strings.HasPrefix(kind, "text/csv") {
		return fmt.Errorf("GET %s: Content-Type %q, not CSV", path, kind)
	}
	var counter csvCounter
	buf := make([]byte, 256<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 && report.Bytes == 0 {
			report.FirstByteSeconds = time.Since(start).Seconds()
		}
		report.Bytes += int64(n)
		counter.count(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read the export after %d bytes: %w", report.Bytes, err)
		}
	}
	report.Seconds = time.Since(start).Seconds()
	report.Rows = max(counter.records()-1, 0) // less the header
	return nil
}

// csvCounter counts the records of a CSV stream as RFC 4180 reads them: a
// line feed ends a record unless it stands inside quotes. An escaped quote
// ("") toggles the state twice, so it needs no case of its own.
type csvCounter struct {
	quoted  bool
	ended   int64 // records ended by a line feed
	partial bool  // bytes after the last record's end
}

func (c *csvCounter) count(p []byte) {
	for _, b := range p {
		switch {
		case b == '"':
			c.quoted = !c.quoted
		case b == '\n' && !c.quoted:
			c.ended++
			c.partial = false
			continue
		}
		c.partial = true
	}
}

// records is the number of records, a last one without a line feed
// included.
func (c *csvCounter) records() int64 {
	if c.partial {
		return c.ended + 1
	}
	return c.ended
}

func (r *benchExportReport) writeText(w io.Writer) error {
	var b strings.Builder
	query := ""
	if r.Query != "" {
		query = "?" + r.Query
	}
	fmt.Fprintf(&b, "knit bench export: %s/audiences/%s.csv%s\n", r.URL, r.Audience, query)
	row := func(name, format string, args ...any) {
		fmt.Fprintf(&b, "  %-18s "+format+"\n", append([]any{name}, args...)...)
	}
	row("rows", "%d (the audience has %d members)", r.Rows, r.Members)
	row("bytes", "%d (%.1f MB)", r.Bytes, float64(r.Bytes)/1e6)
	row("time", "%.2f s, first byte after %.3f s", r.Seconds, r.FirstByteSeconds)
	row("throughput", "%.0f rows/s, %.1f MB/s", r.RowsPerSecond, r.MBPerSecond)
	scope := ""
	if r.ServerMemory.Source == "proc" {
		scope = " (since the server started: its peak could not be reset)"
		if r.ServerPeakIsExport {
			scope = " (during the download)"
		}
	}
	row("server memory", "%s%s", r.ServerMemory.text(), scope)
	row("client memory", "peak %.1f MiB (VmHWM)", mib(r.ClientPeakBytes))
	_, err := io.WriteString(w, b.String())
	return err
}
