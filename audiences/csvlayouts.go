package audiences

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strconv"
	"strings"

	"github.com/knit-cdp/knit/resolver"
)

// csvLayout is the header of an export and how to make a row of it.
type csvLayout struct {
	header []string
	record func(ctx context.Context, m Member) ([]string, error)
}

func (r *Runner) csvLayout(ctx context.Context, def Definition, opts CSVOptions,
	each func(func(Run, Member) error) error) (csvLayout, error) {
	attrs := def.Attributes()
	switch opts.Layout {
	case "", "default":
		return csvLayout{
			header: append([]string{"profile_id", "email", "user_id"}, attrs...),
			record: func(_ context.Context, m Member) ([]string, error) {
				return csvRecord(m, attrs), nil
			},
		}, nil
	case "columns":
		return columnsLayout(each, attrs)
	case "json":
		return r.jsonLayout(attrs, opts.HashEmail), nil
	}
	return csvLayout{}, resolver.Errorf(resolver.EInvalid,
		"layout %q is not one of default, columns, json", opts.Layout)
}

// columnsLayout gives each identifier type its columns, as many as the
// member with the most values of it needs: email, email_1, email_2. It
// reads the result once to size the columns.
func columnsLayout(each func(func(Run, Member) error) error,
	attrs []string) (csvLayout, error) {
	widths := map[string]int{}
	err := each(func(_ Run, m Member) error {
		for kind, values := range m.Identifiers {
			widths[kind] = max(widths[kind], len(values))
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
	return csvLayout{header: header, record: func(_ context.Context, m Member) ([]string, error) {
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
		return row, nil
	}}, nil
}

func repeatName(kind string, i int) string {
	if i == 0 {
		return kind
	}
	return kind + "_" + strconv.Itoa(i)
}

// jsonLayout writes the identifiers, the profile's traits and the
// attributes as JSON columns.
func (r *Runner) jsonLayout(attrs []string, hashEmails bool) csvLayout {
	profiles := resolver.NewProfiles(r.db)
	return csvLayout{
		header: []string{"profile_id", "external_ids", "traits", "attributes"},
		record: func(ctx context.Context, m Member) ([]string, error) {
			ids, _ := json.Marshal(m.Identifiers)
			traits, err := profiles.Traits(ctx, m.ProfileID)
			if err != nil {
				return nil, err
			}
			object := map[string]json.RawMessage{}
			for _, t := range traits {
				object[t.Key] = t.Value
				var email string
				if hashEmails && json.Unmarshal(t.Value, &email) == nil &&
					strings.Contains(email, "@") {
					object[t.Key], _ = json.Marshal(hashEmail(email))
				}
			}
			traitsJSON, _ := json.Marshal(object)
			chosen := map[string]any{}
			for _, key := range attrs {
				chosen[key] = m.Attributes[key]
			}
			attrsJSON, _ := json.Marshal(chosen)
			return []string{strconv.FormatInt(m.ProfileID, 10), SafeCell(string(ids)),
				SafeCell(string(traitsJSON)), SafeCell(string(attrsJSON))}, nil
		},
	}
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
