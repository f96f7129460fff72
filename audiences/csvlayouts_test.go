package audiences_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/audiences"
	"github.com/knit-cdp/knit/resolver"
)

func TestCSVLayoutsByteForByte(t *testing.T) {
	f := mustFixture(t)
	anon := func(id, user, email string) map[string]any {
		return map[string]any{"type": "identify", "messageId": id, "userId": user,
			"anonymousId": "anon-" + id, "traits": map[string]any{"email": email, "name": "Zoë"},
			"timestamp": "2026-11-01T00:00:00Z"}
	}
	f.mustIngest(t, anon("a", "u1", "Ann@X.test"), anon("b", "u1", "ann2@x.test"),
		productAdded("u1", "p1", 48*time.Hour))
	f.mustIngest(t, anon("c", "u2", "=bob@x.test"), productAdded("u2", "p2", 48*time.Hour))
	f.mustRun(t, cartAudience)
	const at = "2026-12-02T12:00:00.000Z"

	cases := []struct {
		name string
		opts audiences.CSVOptions
		want string
	}{
		{"columns: one column per identifier, repeats numbered",
			audiences.CSVOptions{Layout: "columns"},
			"profile_id,anonymous_id,anonymous_id_1,email,email_1,user_id,abandoned_products,added_at\n" +
				"1,anon-a,anon-b,ann2@x.test,ann@x.test,u1,p1," + at + "\n" +
				"2,anon-c,,'=bob@x.test,,u2,p2," + at + "\n"},
		{"json: identifiers and traits as JSON columns",
			audiences.CSVOptions{Layout: "json", Columns: []string{"profile_id", "traits"}},
			"profile_id,traits\n" +
				"1,\"{\"\"email\"\":\"\"ann2@x.test\"\",\"\"name\"\":\"\"Zoë\"\"}\"\n" +
				"2,\"{\"\"email\"\":\"\"=bob@x.test\"\",\"\"name\"\":\"\"Zoë\"\"}\"\n"},
		{"chosen columns in the chosen order, a byte-order mark and hashed emails",
			audiences.CSVOptions{Columns: []string{"email", "profile_id"}, BOM: true,
				HashEmail: true},
			"\ufeffemail,profile_id\n" + sha("ann2@x.test") + ",1\n" +
				sha("=bob@x.test") + ",2\n"},
	}
	cases = append(cases, struct {
		name string
		opts audiences.CSVOptions
		want string
	}{"json with hashed emails hashes the traits too",
		audiences.CSVOptions{Layout: "json", Columns: []string{"traits"}, HashEmail: true},
		"traits\n" +
			"\"{\"\"email\"\":\"\"" + sha("ann2@x.test") + "\"\",\"\"name\"\":\"\"Zoë\"\"}\"\n" +
			"\"{\"\"email\"\":\"\"" + sha("=bob@x.test") + "\"\",\"\"name\"\":\"\"Zoë\"\"}\"\n"})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := f.runner.WriteCSVWith(context.Background(), &out, cartAudience,
				tc.opts); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Errorf("csv:\ngot  %q\nwant %q", out.String(), tc.want)
			}
		})
	}
}

// sha is the hex SHA-256 of an email, as ad platforms take it.
func sha(email string) string {
	sum := sha256.Sum256([]byte(email))
	return hex.EncodeToString(sum[:])
}

func TestCSVOptionsThatMakeNoSenseAreRefused(t *testing.T) {
	f := mustFixture(t)
	f.mustIngest(t, identify("u1", "a@x.test"), productAdded("u1", "p1", 48*time.Hour))
	f.mustRun(t, cartAudience)
	for _, opts := range []audiences.CSVOptions{
		{Layout: "xml"}, {Columns: []string{"email", "shoe_size"}},
	} {
		var out bytes.Buffer
		err := f.runner.WriteCSVWith(context.Background(), &out, cartAudience, opts)
		if resolver.ErrorCode(err) != resolver.EInvalid || out.Len() != 0 {
			t.Errorf("%+v: %v, wrote %d bytes; want an invalid error and nothing written",
				opts, err, out.Len())
		}
	}
}

func TestColumnsLayoutTakesOnlyPlainIdentifierTypesAsColumns(t *testing.T) {
	f := mustFixture(t)
	f.mustIngest(t, map[string]any{"type": "identify", "messageId": "i1", "userId": "u1",
		"traits": map[string]any{"email": "a@x.test"}, "timestamp": "2026-11-01T00:00:00Z",
		"context": map[string]any{"externalIds": []any{
			map[string]any{"id": "999", "type": "profile_id"},
			map[string]any{"id": "x", "type": "=cmd|' /c calc'!a0"},
			map[string]any{"id": "L1", "type": "loyalty_id"},
		}}}, productAdded("u1", "p1", 48*time.Hour))
	f.mustRun(t, cartAudience)

	var out bytes.Buffer
	err := f.runner.WriteCSVWith(context.Background(), &out, cartAudience,
		audiences.CSVOptions{Layout: "columns"})
	if err != nil {
		t.Fatal(err)
	}
	header, _, _ := strings.Cut(out.String(), "\n")
	if header != "profile_id,email,loyalty_id,user_id,abandoned_products,added_at" {
		t.Errorf("header %q", header)
	}
}
