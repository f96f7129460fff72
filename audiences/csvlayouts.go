package audiences

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strconv"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver"
)

// csvLayout is the header of an export and how to make a row of it.
type csvLayout struct {
	header []string
	// page, when set, is called with each page of members before their
	// records are made, to read what the records need beyond the members.
	page   func(ctx context.Context, members []Member) error
	record func(m Member) []string
}

// csvLayoutOf returns the layout opts ask for. eachPage reads the members
// a page at a time through snapshot, in which a layout may read more.
func csvLayoutOf(snapshot *sqlx.Tx, def Definition, opts CSVOptions,
	eachPage func(func([]Member) error) error) (csvLayout, error) {
	attrs := def.Attributes()
	switch opts.Layout {
	case "", "default":
		return csvLayout{
			header: append([]string{"profile_id", "email", "user_id"}, attrs...),
			record: func(m Member) []string { return csvRecord(m, attrs) },
		}, nil
	case "columns":
		return columnsLayout(eachPage, attrs)
	case "json":
		return jsonLayout(snapshot, attrs, opts.HashEmail), nil
	}
	return csvLayout{}, resolver.Errorf(resolver.EInvalid,
		"layout %q is not one of default, columns, json", opts.Layout)
}

// columnsLayout gives each identifier type its columns, as many as the
// member with the most values of it needs: email, email_1, email_2. It
// reads the result once to size the columns.
func columnsLayout(eachPage func(func([]Member) error) error,
	attrs []string) (csvLayout, error) {
	widths := map[string]int{}
	err := eachPage(func(members []Member) error {
		for _, m := range members {
			for kind, values := range m.Identifiers {
				widths[kind] = max(widths[kind], len(values))
			}
		}
		return nil
	})
	if err != nil {
		return csvLayout{}, err
	}
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
	}}, nil
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

// traitObject is a profile's traits as one JSON object, each email among
// them hashed when hashEmails is set.
func traitObject(traits []resolver.Trait, hashEmails bool) map[string]json.RawMessage {
	object := make(map[string]json.RawMessage, len(traits))
	for _, t := range traits {
		object[t.Key] = t.Value
		var email string
		if hashEmails && json.Unmarshal(t.Value, &email) == nil &&
			strings.Contains(email, "@") {
			object[t.Key], _ = json.Marshal(hashEmail(email))
		}
	}
	return object
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
