package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
)

const (
	importBatch       = 500
	maxImportLine     = 4 * resolver.MaxMessageBytes
	rejectionsToPrint = 20
)

// importSummary counts what an import did.
type importSummary struct {
	read, stored, duplicates int
	rejected                 map[string]int // by reason
}

func (s importSummary) rejectedCount() int {
	total := 0
	for _, n := range s.rejected {
		total += n
	}
	return total
}

func (s importSummary) String() string {
	total := s.rejectedCount()
	reasons := make([]string, 0, len(s.rejected))
	for reason, n := range s.rejected {
		reasons = append(reasons, fmt.Sprintf("%d %s", n, reason))
	}
	sort.Strings(reasons)
	line := fmt.Sprintf("read %d, stored %d, duplicates %d, rejected %d",
		s.read, s.stored, s.duplicates, total)
	if total > 0 {
		line += " (" + strings.Join(reasons, "; ") + ")"
	}
	return line
}

func runImport(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	fs := newFlagSet("knit import", "knit import [flags] FILE: load newline-delimited "+
		"Segment messages (plain or gzipped; - for stdin) through the same path as the "+
		"webhook, then print a summary.", stderr)
	var flags commonFlags
	flags.register(fs, getenv)
	var positional []string
	if err := parseFlags(fs, args, &positional); err != nil {
		return err
	}
	if len(positional) != 1 {
		return fmt.Errorf("%w: knit import takes one FILE", errUsage)
	}

	input, size, err := openInput(positional[0])
	if err != nil {
		return err
	}
	defer input.Close()

	a, err := openApp(ctx, flags, getenv, stderr)
	if err != nil {
		return err
	}
	defer a.db.Close()

	progress := newProgress(size, stderr)
	counted := progressbar.NewReader(input, progress)
	summary, err := a.importLines(ctx, &counted, stderr)
	_ = progress.Finish()
	fmt.Fprintln(stdout, summary)
	if err != nil {
		return err
	}
	if err := a.analyzeImported(ctx, summary.stored); err != nil {
		return err
	}
	if rejected := summary.rejectedCount(); rejected > 0 {
		// The valid lines are stored; the exit status tells scripts that
		// some were not.
		return fmt.Errorf("%d of %d lines rejected", rejected, summary.read)
	}
	return nil
}

// importedTables are the tables an import writes that reads plan by.
const importedTables = "events, profiles, identities, identity_links, traits"

// analyzeImported gives PostgreSQL's planner statistics for what an import
// or a seed stored, when it stored anything: autovacuum never analyzes the
// partitioned events table, and until it reaches the others, audience
// queries are planned as if the tables were empty. SQLite plans without
// statistics and needs nothing.
func (a *app) analyzeImported(ctx context.Context, stored int) error {
	if stored == 0 || a.db.Dialect() != sqldb.Postgres {
		return nil
	}
	if _, err := a.db.ExecContext(ctx, "ANALYZE "+importedTables); err != nil {
		return fmt.Errorf("analyze %s: %w", importedTables, err)
	}
	return nil
}

// openInput opens path ("-" for stdin) and reports its size, or -1 when
// unknown.
func openInput(path string) (io.ReadCloser, int64, error) {
	if path == "-" {
		return io.NopCloser(os.Stdin), -1, nil
	}
	file, err := os.Open(path)
	if err != nil {
		return nil, 0, err // the error already names the path
	}
	info, err := file.Stat()
	if err != nil {
		_ = file.Close()
		return nil, 0, fmt.Errorf("stat %s: %w", path, err)
	}
	return file, info.Size(), nil
}

// newProgress draws a bar on a terminal and nothing otherwise, so logs and
// CI output stay clean.
func newProgress(size int64, stderr io.Writer) *progressbar.ProgressBar {
	file, isFile := stderr.(*os.File)
	if !isFile || !term.IsTerminal(int(file.Fd())) {
		return progressbar.DefaultBytesSilent(size, "importing")
	}
	return progressbar.DefaultBytes(size, "importing")
}

// importLines reads NDJSON (gzip is detected by its magic bytes), stores
// valid messages in batches and counts the rest by reason.
func (a *app) importLines(ctx context.Context, input io.Reader,
	stderr io.Writer) (importSummary, error) {
	summary := importSummary{rejected: map[string]int{}}
	reader, err := maybeGunzip(bufio.NewReaderSize(input, 1<<20))
	if err != nil {
		return summary, err
	}

	env := resolver.Envelope{Source: "import", AllowDelete: true}
	var batch []*resolver.Message
	printed := 0
	for line := 1; ; line++ {
		raw, readErr := readLine(reader)
		if len(bytes.TrimSpace(raw)) > 0 {
			summary.read++
			env.ReceivedAt = a.now()
			m, err := resolver.ParseMessage(raw, env)
			if err != nil {
				summary.reject(err)
				if printed < rejectionsToPrint {
					fmt.Fprintf(stderr, "line %d: %s\n", line, resolver.ErrorMessage(err))
					printed++
				}
			} else {
				batch = append(batch, m)
			}
		}
		if len(batch) >= importBatch || (readErr != nil && len(batch) > 0) {
			if err := a.storeBatch(ctx, batch, &summary); err != nil {
				return summary, err
			}
			batch = batch[:0]
		}
		if errors.Is(readErr, io.EOF) {
			return summary, nil
		}
		if readErr != nil {
			return summary, readErr
		}
	}
}

func (s *importSummary) reject(err error) {
	reason := resolver.ErrorMessage(err)
	if strings.HasPrefix(reason, "message is not valid JSON") {
		reason = "not valid JSON"
	}
	if strings.HasPrefix(reason, "message is ") && strings.Contains(reason, "bytes") {
		reason = "over 32 KB"
	}
	s.rejected[reason]++
}

func (a *app) storeBatch(ctx context.Context, batch []*resolver.Message,
	summary *importSummary) error {
	outcomes, err := a.store.Ingest(ctx, batch)
	if err != nil {
		return err
	}
	for _, o := range outcomes {
		if o.Status == resolver.StatusDuplicate {
			summary.duplicates++
		} else {
			summary.stored++
		}
	}
	return nil
}

func maybeGunzip(input *bufio.Reader) (*bufio.Reader, error) {
	magic, err := input.Peek(2)
	if err != nil || magic[0] != 0x1f || magic[1] != 0x8b {
		return input, nil // too short or not gzip: read as it is
	}
	gz, err := gzip.NewReader(input)
	if err != nil {
		return nil, fmt.Errorf("open gzip input: %w", err)
	}
	return bufio.NewReaderSize(gz, 1<<20), nil
}

// readLine returns the next line without its newline. A line longer than
// maxImportLine is returned cut short, which parsing then rejects as too
// large, and the rest of it is skipped.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line) < maxImportLine {
			line = append(line, chunk...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read input: %w", err)
		}
		if err == nil || len(line) > 0 {
			return bytes.TrimRight(line, "\r\n"), nil
		}
		return nil, io.EOF
	}
}
