package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/knit-cdp/knit/audiences"
)

func TestAudienceQueriesComeFromTheEnvironment(t *testing.T) {
	for text, want := range map[string]int{
		"": audiences.DefaultQueriesPerAudience, "1": 1, " 4 ": 4, "8": 8,
	} {
		if got, err := parseAudienceQueries(text); err != nil || got != want {
			t.Errorf("KNIT_AUDIENCE_QUERIES %q = %d (%v), want %d", text, got, err, want)
		}
	}
	for _, bad := range []string{"0", "-2", "9", "two", "1.5"} {
		if _, err := parseAudienceQueries(bad); !errors.Is(err, errUsage) {
			t.Errorf("KNIT_AUDIENCE_QUERIES %q: %v, want a usage error", bad, err)
		}
	}
}

// TestABadAudienceQueriesStopsACommand runs a command with the setting
// out of range: it fails before opening the database, and names it.
func TestABadAudienceQueriesStopsACommand(t *testing.T) {
	getenv := func(k string) string {
		return map[string]string{"KNIT_AUDIENCE_QUERIES": "0", "KNIT_LOG_LEVEL": "warn"}[k]
	}
	dsn := filepath.Join(t.TempDir(), "knit.db")
	if err := os.WriteFile(dsn, nil, 0o600); err != nil { // an empty database
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"audiences", "run", "--db", dsn,
		"cart_abandonment"}, getenv, &stdout, &stderr)
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "KNIT_AUDIENCE_QUERIES") {
		t.Errorf("error %v, want a usage error naming KNIT_AUDIENCE_QUERIES", err)
	}
}
