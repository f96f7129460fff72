package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"

	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

func TestHelpDocumentsEveryOption(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"knit --help lists commands and secrets", []string{"--help"},
			[]string{"serve", "import", "audiences run", "audiences export", "token reset",
				"KNIT_WEBHOOK_SECRET", "KNIT_WRITE_KEYS", "KNIT_API_TOKEN"}},
		{"serve --help lists its flags and environment", []string{"serve", "--help"},
			[]string{"-addr", "KNIT_ADDR", "-db", "KNIT_DB", "-config", "KNIT_CONFIG",
				"-clock", "KNIT_CLOCK", "KNIT_WEBHOOK_SECRET", "KNIT_WRITE_KEYS",
				"KNIT_API_TOKEN", "KNIT_SPACE_ID", "SIGTERM"}},
		{"import --help", []string{"import", "--help"},
			[]string{"-db", "-config", "gzip", "FILE"}},
		{"audiences run --help", []string{"audiences", "run", "--help"},
			[]string{"-db", "-config", "-clock", "NAME"}},
		{"audiences export --help", []string{"audiences", "export", "--help"},
			[]string{"-db", "-format", "csv or json"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tc.args, func(string) string { return "" },
				&stdout, &stderr)
			if !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("run returned %v, want flag.ErrHelp", err)
			}
			help := stdout.String() + stderr.String()
			for _, want := range tc.want {
				if !strings.Contains(help, want) {
					t.Errorf("help does not mention %q:\n%s", want, help)
				}
			}
		})
	}
}

func TestUsageMistakesAreReported(t *testing.T) {
	cases := []struct {
		name string
		args []string
	}{
		{"no command", nil},
		{"unknown command", []string{"frobnicate"}},
		{"unknown flag", []string{"serve", "--port", "1"}},
		{"export without a name", []string{"audiences", "export"}},
		{"export with a bad format", []string{"audiences", "export", "x", "--format", "xml"}},
		{"import without a file", []string{"import"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tc.args, func(string) string { return "" },
				&stdout, &stderr)
			if !errors.Is(err, errUsage) {
				t.Errorf("run returned %v, want a usage error", err)
			}
		})
	}
}

func TestTokenResetPrintsANewTokenEachTime(t *testing.T) {
	db := sqltest.MustDSN(t, "token.db")
	mustRun(t, "import", "--db", db, "../../testdata/seed-journey/messages.ndjson")
	first := mustRun(t, "token", "reset", "--db", db)
	second := mustRun(t, "token", "reset", "--db", db)
	if !strings.Contains(first, "knit_") || first == second {
		t.Errorf("token reset printed %q then %q; want two different tokens", first, second)
	}
}

func TestUnlinkAndDeleteFromTheCommandLine(t *testing.T) {
	db := sqltest.MustDSN(t, "admin.db")
	mustRun(t, "import", "--db", db, "../../testdata/seed-journey/messages.ndjson")

	out := mustRun(t, "identity", "unlink", "ios.id:ios_abc123", "--db", db,
		"--reason", "test")
	if !strings.Contains(out, "unlinked ios.id:ios_abc123: profile 1 re-made as [") {
		t.Errorf("unlink said %q", out)
	}
	out = mustRun(t, "profiles", "delete", "email:JaneDoe@example.com", "--db", db)
	if !strings.Contains(out, "69 events") {
		t.Errorf("delete said %q", out)
	}
}

func TestIdentityPreviewFromTheCommandLine(t *testing.T) {
	db := sqltest.MustDSN(t, "preview.db")
	mustRun(t, "import", "--db", db, "../../testdata/sample/events.ndjson")
	proposed := mustWriteConfig(t, "identity:\n  types:\n    ios.id: {limit: 1}\n")

	mustRun(t, "audiences", "run", "--db", db, "--clock", "2026-11-30T12:00:00Z")
	before := mustRun(t, "audiences", "export", "cart_abandonment", "--db", db)

	out := mustRun(t, "identity", "preview", "--db", db, "--config", proposed)
	if !strings.Contains(out, "replayed 6188 messages: 333 profiles now") ||
		!strings.Contains(out, "would split") {
		t.Errorf("preview said %q", out)
	}
	if after := mustRun(t, "audiences", "export", "cart_abandonment", "--db", db); after != before {
		t.Error("the preview changed the audience's members")
	}
	summary := mustRun(t, "import", "--db", db, "../../testdata/seed-journey/messages.ndjson")
	if !strings.Contains(summary, "stored 69") {
		t.Errorf("the database was not left usable: %q", summary)
	}
}

func TestConfigCheckAndAudiencePreview(t *testing.T) {
	good := mustWriteConfig(t, `audiences:
  - name: big_spenders_carts
    require_email: true
    condition:
      then_not:
        first: {event: Product Added, key: product_id}
        not_followed_by: [{event: Order Completed, key: "products[].product_id"}]
        between: [30d, 1h]
      attributes: {abandoned_products: keys}
`)
	if out := mustRun(t, "config", "check", good); !strings.Contains(out,
		"is fine: 3 audiences (big_spenders_carts, cart_abandonment, shoe_reorder)") {
		t.Errorf("config check said %q", out)
	}
	bad := mustWriteConfig(t, "identity:\n  default_limit: 0\n")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"config", "check", bad},
		func(string) string { return "" }, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "identity.default_limit") {
		t.Errorf("config check of a bad file: %v", err)
	}

	db := sqltest.MustDSN(t, "preview-aud.db")
	mustRun(t, "import", "--db", db, "../../testdata/sample/events.ndjson")
	out := mustRun(t, "audiences", "preview", good, "big_spenders_carts", "--db", db,
		"--clock", "2026-11-30T12:00:00Z", "--sample", "2")
	if !strings.HasPrefix(out, "big_spenders_carts: ") || strings.Count(out, "\n") != 3 {
		t.Errorf("audiences preview said %q", out)
	}
	err = run(context.Background(), []string{"audiences", "preview", good,
		"big_spenders_carts", "--db", db, "--sample", "-1"},
		func(string) string { return "" }, &stdout, &stderr)
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--sample is -1") {
		t.Errorf("a negative sample: %v; want a usage error naming --sample", err)
	}
	err = run(context.Background(), []string{"audiences", "export", "big_spenders_carts",
		"--db", db, "--config", good}, func(string) string { return "" }, &stdout, &stderr)
	if !strings.Contains(fmt.Sprint(err), "has not been computed yet") {
		t.Errorf("after a preview, export says %v; want nothing saved", err)
	}
}

func TestAudiencesRunCountsMembersInWords(t *testing.T) {
	db := sqltest.MustDSN(t, "words.db")
	mustRun(t, "import", "--db", db, "../../testdata/seed-journey/messages.ndjson")

	out := mustRun(t, "audiences", "run", "--db", db, "--clock", "2026-11-27T12:00:00Z")
	if !strings.Contains(out, "cart_abandonment: 1 member (1 entered, 0 exited)") ||
		!strings.Contains(out, "shoe_reorder: 1 member (") {
		t.Errorf("audiences run said %q; want one member each, in words", out)
	}
	out = mustRun(t, "audiences", "run", "--db", db, "--clock", "2026-11-30T12:00:00Z")
	if !strings.Contains(out, "shoe_reorder: 0 members (0 entered, 1 exited)") {
		t.Errorf("audiences run said %q; want Jane to leave shoe_reorder", out)
	}
}
