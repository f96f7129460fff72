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
)

// WriteCSV streams the audience's current members as CSV to w: a header row
// profile_id,email,user_id followed by the audience's attributes, lists
// joined with ";", quoted as RFC 4180 says, and any cell
// or list item that a spreadsheet would run as a formula neutralised with a
// leading apostrophe (lists too, since spreadsheets in many locales split
// cells on ";").
func (r *Runner) WriteCSV(ctx context.Context, w io.Writer, name string) error {
	def, err := r.Definition(name)
	if err != nil {
		return err
	}
	// Fail before writing anything when there is no result to export.
	if _, err := r.CurrentRun(ctx, name); err != nil {
		return err
	}

	buffered := bufio.NewWriterSize(w, 64*1024)
	out := csv.NewWriter(buffered)
	// Records end with LF, which every spreadsheet reads: the CRLF mode of
	// encoding/csv would silently drop a lone carriage return inside a value.
	attrs := def.Attributes()
	header := append([]string{"profile_id", "email", "user_id"}, attrs...)
	if err := out.Write(header); err != nil {
		return fmt.Errorf("write csv header: %w", err)
	}

	rows := 0
	err = r.EachMember(ctx, name, func(_ Run, m Member) error {
		if err := out.Write(csvRecord(m, attrs)); err != nil {
			return fmt.Errorf("write csv row: %w", err)
		}
		rows++
		if rows%1000 == 0 {
			return flush(out, buffered)
		}
		return nil
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
