package audiences

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/jmoiron/sqlx"
)

// CSVOptions choose the shape of a CSV export.
type CSVOptions struct {
	// Layout is "" for profile_id,email,user_id and the attributes;
	// "columns" for one column per identifier type, repeats as email_1,
	// email_2 (Segment's formatted download); "json" for the identifiers
	// and the traits as JSON columns (Segment's unformatted download).
	Layout string
	// Columns keeps only these columns, in this order; none keeps all.
	Columns []string
	// BOM starts the file with a UTF-8 byte-order mark, for Excel.
	BOM bool
	// HashEmail writes every email as the hex SHA-256 of its normalised
	// form, as ad platforms take it.
	HashEmail bool
	// OnRun, when set, is called once before anything is written with the
	// run whose result the export holds, read in the export's snapshot
	// (a file name, say, then names that run even if another commits
	// meanwhile).
	OnRun func(Run)
}

// WriteCSV streams the audience's current members as CSV to w in the
// default layout; see WriteCSVWith.
func (r *Runner) WriteCSV(ctx context.Context, w io.Writer, name string) error {
	return r.WriteCSVWith(ctx, w, name, CSVOptions{})
}

// WriteCSVWith streams the audience's current members as CSV to w: lists
// joined with ";", quoted as RFC 4180 says, and any cell or list item that
// a spreadsheet would run as a formula neutralised with a leading
// apostrophe (lists too, since spreadsheets in many locales split cells on
// ";"). A bad option is an *resolver.Error with code EInvalid, returned
// before anything is written.
func (r *Runner) WriteCSVWith(ctx context.Context, w io.Writer, name string,
	opts CSVOptions) error {
	def, err := r.Definition(name)
	if err != nil {
		return err
	}
	// One snapshot for every read, so a run that commits meanwhile never
	// mixes into the file (the columns layout sizes its columns first).
	// The default layout writes no identifiers: they are most of a stored
	// member, so it leaves them unread.
	identifiers := opts.Layout != "" && opts.Layout != "default"
	return r.db.Snapshot(ctx, func(tx *sqlx.Tx) error {
		streamPages := func(fn func([]Member) error) error {
			return r.streamMemberPagesIn(ctx, tx, name, identifiers, exportPageSize, fn)
		}
		// Fail before writing anything when there is no result to export.
		run, err := r.oneRunIn(ctx, tx, currentRunQuery, name)
		if err != nil {
			return err
		}
		layout, err := csvLayoutOf(ctx, tx, r.db.Dialect(), def, opts)
		if err != nil {
			return err
		}
		if opts.OnRun != nil {
			opts.OnRun(run)
		}
		if layout.page == nil {
			return writeRecords(ctx, w, layout, opts, streamPages)
		}
		// The layout queries for each page, which PostgreSQL cannot do on a
		// connection while another query's rows are still being read.
		return writeRecords(ctx, w, layout, opts, func(fn func([]Member) error) error {
			return r.eachMemberPageIn(ctx, tx, name, identifiers, exportPageSize, fn)
		})
	})
}

// writeRecords writes the header and one record per member, a page of
// members at a time.
func writeRecords(ctx context.Context, w io.Writer, layout csvLayout, opts CSVOptions,
	eachPage func(func([]Member) error) error) error {
	pick, err := pickColumns(layout.header, opts.Columns)
	if err != nil {
		return err
	}
	buffered := bufio.NewWriterSize(w, 64*1024)
	if opts.BOM {
		buffered.WriteString("\ufeff")
	}
	// Records end with LF, which every spreadsheet reads: the CRLF mode of
	// encoding/csv would silently drop a lone carriage return inside a value.
	out := csv.NewWriter(buffered)
	if err := out.Write(picked(layout.header, pick)); err != nil {
		return fmt.Errorf("write csv header: %w", err)
	}

	err = eachPage(func(members []Member) error {
		if layout.page != nil {
			if err := layout.page(ctx, members); err != nil {
				return err
			}
		}
		for _, m := range members {
			if opts.HashEmail {
				m.Email, m.Identifiers = hashEmail(m.Email), hashEmails(m.Identifiers)
			}
			if err := out.Write(picked(layout.record(m), pick)); err != nil {
				return fmt.Errorf("write csv row: %w", err)
			}
		}
		return flush(out, buffered)
	})
	if err != nil {
		return err
	}
	return flush(out, buffered)
}

func flush(out *csv.Writer, buffered *bufio.Writer) error {
	out.Flush()
	if err := out.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	if err := buffered.Flush(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}

func csvRecord(m Member, attrs []string) []string {
	record := []string{
		strconv.FormatInt(m.ProfileID, 10),
		SafeCell(m.Email),
		SafeCell(m.UserID),
	}
	for _, key := range attrs {
		record = append(record, SafeCell(cellText(m.Attributes[key])))
	}
	return record
}

// cellText renders an attribute value for one CSV cell: scalars as text,
// lists joined with ";", anything else as JSON.
func cellText(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case []any:
		parts := make([]string, len(v))
		for i, item := range v {
			parts[i] = SafeCell(cellText(item))
		}
		return strings.Join(parts, ";")
	case []string:
		parts := make([]string, len(v))
		for i, item := range v {
			parts[i] = SafeCell(item)
		}
		return strings.Join(parts, ";")
	case map[string]any:
		encoded, _ := json.Marshal(v)
		return string(encoded)
	}
	return scalarText(v)
}

// SafeCell neutralises text that a spreadsheet would treat as a formula (it
// starts with =, +, -, @, a tab or a carriage return) by prefixing an
// apostrophe, as OWASP advises against CSV injection.
func SafeCell(text string) string {
	if text == "" {
		return text
	}
	switch text[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + text
	}
	return text
}
