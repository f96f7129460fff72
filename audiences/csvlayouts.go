package audiences

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
)

// csvLayout is the header of an export and how to make a row of it.
type csvLayout struct {
	header []string
	// page, when set, is called with each page of members before their
	// records are made, to read what the records need beyond the members.
	page   func(ctx context.Context, members []Member) error
	record func(m Member) []string
}

// csvLayoutOf returns the layout opts ask for, reading what it needs
// through snapshot, on a database of dialect.
func csvLayoutOf(ctx context.Context, snapshot *sqlx.Tx, dialect sqldb.Dialect,
	def Definition, opts CSVOptions) (csvLayout, error) {
	attrs := def.Attributes()
	switch opts.Layout {
	case "", "default":
		return csvLayout{
			header: append([]string{"profile_id", "email", "user_id"}, attrs...),
			record: func(m Member) []string { return csvRecord(m, attrs) },
		}, nil
	case "columns":
		widths, err := identifierWidths(ctx, snapshot, dialect, def.Name)
		if err != nil {
			return csvLayout{}, err
		}
		return columnsLayout(widths, attrs), nil
	case "json":
		return jsonLayout(snapshot, attrs, opts.HashEmail), nil
	}
	return csvLayout{}, resolver.Errorf(resolver.EInvalid,
		"layout %q is not one of default, columns, json", opts.Layout)
}

// columnsLayout gives each identifier type its columns, as many as the
// member with the most values of it needs: email, email_1, email_2. It
// takes widths from identifierWidths.
func columnsLayout(widths map[string]int, attrs []string) csvLayout {
	reserved := map[string]bool{"profile_id": true}
	for _, a := range attrs {
		reserved[a] = true
	}
	kinds := make([]string, 0, len(widths))
	for kind := range widths {
		// Types come from messages: only plain names make columns, and none
		// may pose as another column.
		if plainName(kind) && !reserved[kind] {
			kinds = append(kinds, kind)
		}
	}
	sort.Strings(kinds)

	header := []string{"profile_id"}
	for _, kind := range kinds {
		for i := range widths[kind] {
			header = append(header, repeatName(kind, i))
		}
	}
	header = append(header, attrs...)
	return csvLayout{header: header, record: func(m Member) []string {
		row := []string{strconv.FormatInt(m.ProfileID, 10)}
		for _, kind := range kinds {
			for i := range widths[kind] {
				value := ""
				if i < len(m.Identifiers[kind]) {
					value = m.Identifiers[kind][i]
				}
				row = append(row, SafeCell(value))
			}
		}
		for _, key := range attrs {
			row = append(row, SafeCell(cellText(m.Attributes[key])))
		}
		return row
	}}
}

// identifierWidths returns, for each identifier type of the audience's
// current members, the most values one member has of it, read through
// snapshot. The database reads the stored JSON itself: decoding every
// member's identifiers in Go for this took as long as the export did.
func identifierWidths(ctx context.Context, snapshot *sqlx.Tx, dialect sqldb.Dialect,
	audience string) (map[string]int, error) {
	query := `SELECT j.key AS kind, MAX(json_array_length(j.value)) AS width
		FROM audience_members m, json_each(m.identifiers) j
		WHERE m.audience = ? GROUP BY j.key`
	if dialect == sqldb.Postgres {
		query = `SELECT j.key AS kind, MAX(CASE jsonb_typeof(j.value)
			WHEN 'array' THEN jsonb_array_length(j.value) ELSE 0 END) AS width
			FROM audience_members m, jsonb_each(m.identifiers::jsonb) j
			WHERE m.audience = ? GROUP BY j.key`
	}
	var rows []struct {
		Kind  string `db:"kind"`
		Width int    `db:"width"`
	}
	if err := snapshot.SelectContext(ctx, &rows, snapshot.Rebind(query), audience); err != nil {
		return nil, fmt.Errorf("size the identifier columns of %s: %w", audience, err)
	}
	widths := make(map[string]int, len(rows))
	for _, r := range rows {
		widths[r.Kind] = r.Width
	}
	return widths, nil
}

func repeatName(kind string, i int) string {
	if i == 0 {
		return kind
	}
	return kind + "_" + strconv.Itoa(i)
}

// jsonLayout writes the identifiers, the profile's traits and the
// attributes as JSON columns. It reads the traits of a page of members
// through snapshot in one query, so they are as the snapshot sees them.
func jsonLayout(snapshot *sqlx.Tx, attrs []string, hashEmails bool) csvLayout {
	var traits map[int64][]resolver.Trait
	return csvLayout{
		header: []string{"profile_id", "external_ids", "traits", "attributes"},
		page: func(ctx context.Context, members []Member) error {
			profiles := make([]int64, len(members))
			for i, m := range members {
				profiles[i] = m.ProfileID
			}
			var err error
			traits, err = resolver.TraitsIn(ctx, snapshot, profiles)
			return err
		},
		record: func(m Member) []string {
			ids, _ := json.Marshal(m.Identifiers)
			traitsJSON, _ := json.Marshal(traitObject(traits[m.ProfileID], hashEmails))
			chosen := map[string]any{}
			for _, key := range attrs {
				chosen[key] = m.Attributes[key]
			}
			attrsJSON, _ := json.Marshal(chosen)
			return []string{strconv.FormatInt(m.ProfileID, 10), SafeCell(string(ids)),
				SafeCell(string(traitsJSON)), SafeCell(string(attrsJSON))}
		},
	}
}

// traitObject is a profile's traits as one JSON object; when hashEmails
// is set, every text in them that holds an "@", at any depth, is hashed
// as an email.
func traitObject(traits []resolver.Trait, hashEmails bool) map[string]json.RawMessage {
	object := make(map[string]json.RawMessage, len(traits))
	for _, t := range traits {
		object[t.Key] = t.Value
		if hashEmails && bytes.Contains(t.Value, []byte("@")) {
			object[t.Key] = hashEmailsInJSON(t.Value)
		}
	}
	return object
}

// hashEmailsInJSON returns value, a JSON value, with every string in it
// that holds an "@" hashed as hashEmail does. Numbers keep their digits.
func hashEmailsInJSON(value json.RawMessage) json.RawMessage {
	decoder := json.NewDecoder(bytes.NewReader(value))
	decoder.UseNumber()
	var decoded any
	if err := decoder.Decode(&decoded); err != nil {
		return value // stored traits are valid JSON; nothing to hash otherwise
	}
	hashed, err := json.Marshal(hashEmailStrings(decoded))
	if err != nil {
		return value
	}
	return hashed
}

func hashEmailStrings(value any) any {
	switch v := value.(type) {
	case string:
		if strings.Contains(v, "@") {
			return hashEmail(v)
		}
	case map[string]any:
		for key, child := range v {
			v[key] = hashEmailStrings(child)
		}
	case []any:
		for i, child := range v {
			v[i] = hashEmailStrings(child)
		}
	}
	return value
}

// pickColumns maps the chosen column names to their places in header.
func pickColumns(header, chosen []string) ([]int, error) {
	if len(chosen) == 0 {
		return nil, nil
	}
	places := map[string]int{}
	for i, name := range header {
		places[name] = i
	}
	pick := make([]int, 0, len(chosen))
	for _, name := range chosen {
		i, ok := places[name]
		if !ok {
			return nil, resolver.Errorf(resolver.EInvalid, "column %q is not in this "+
				"export; it has %s", name, strings.Join(header, ", "))
		}
		pick = append(pick, i)
	}
	return pick, nil
}

func picked(record []string, pick []int) []string {
	if pick == nil {
		return record
	}
	out := make([]string, len(pick))
	for i, place := range pick {
		out[i] = record[place]
	}
	return out
}

// hashEmail is the hex SHA-256 of the trimmed, lower-cased email, or "".
func hashEmail(email string) string {
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(email))
	return hex.EncodeToString(sum[:])
}

func hashEmails(ids map[string][]string) map[string][]string {
	out := make(map[string][]string, len(ids))
	for kind, values := range ids {
		if kind != resolver.TypeEmail {
			out[kind] = values
			continue
		}
		hashed := make([]string, len(values))
		for i, v := range values {
			hashed[i] = hashEmail(v)
		}
		out[kind] = hashed
	}
	return out
}

// plainName is true for identifier types fit to be column names: lower-case
// letters, digits, dots, dashes and underscores, starting with a letter.
func plainName(kind string) bool {
	for i, c := range kind {
		letter := c >= 'a' && c <= 'z'
		if !letter && (i == 0 || !(c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-')) {
			return false
		}
	}
	return kind != ""
}
