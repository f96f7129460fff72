package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mustWriteGzip(t *testing.T, path, text string) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	if _, err := gz.Write([]byte(text)); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestImportStoresGoodLinesAndReportsBadOnes(t *testing.T) {
	dir := t.TempDir()
	input := filepath.Join(dir, "mixed.ndjson.gz")
	mustWriteGzip(t, input, strings.Join([]string{
		`{"type":"track","messageId":"a","userId":"u1","event":"E"}`,
		`{"type":"track","messageId":"a","userId":"u1","event":"E"}`,
		``,
		`not json`,
		`{"type":"track","messageId":"b","userId":"u1"}`,
		`{"type":"identify","messageId":"c","anonymousId":"x","traits":{"email":"x@y.z"}}`,
		`{"type":"track","messageId":"big","userId":"u1","event":"` +
			strings.Repeat("x", 40000) + `"}`,
	}, "\n"))

	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"import", "--db", filepath.Join(dir, "k.db"), input},
		func(k string) string { return map[string]string{"KNIT_LOG_LEVEL": "warn"}[k] },
		&stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "3 of 6 lines rejected") {
		t.Errorf("import returned %v, want an error counting 3 of 6 rejected lines", err)
	}
	want := "read 6, stored 2, duplicates 1, rejected 3 " +
		"(1 event is required on a track call; 1 not valid JSON; 1 over 32 KB)"
	if got := strings.TrimSpace(stdout.String()); got != want {
		t.Errorf("summary %q\nwant    %q", got, want)
	}
	for _, line := range []string{"line 4:", "line 5:", "line 7:"} {
		if !strings.Contains(stderr.String(), line) {
			t.Errorf("stderr does not name %s:\n%s", line, stderr.String())
		}
	}
}

func TestReadCommandsRefuseAMissingDatabase(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "typo.db")
	for _, args := range [][]string{
		{"audiences", "export", "cart_abandonment", "--db", missing},
		{"audiences", "run", "--db", missing},
		{"token", "reset", "--db", missing},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, func(string) string { return "" }, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), "no database there") {
			t.Errorf("knit %s: %v, want a missing-database error", strings.Join(args, " "), err)
		}
		if _, statErr := os.Stat(missing); statErr == nil {
			t.Fatalf("knit %s created %s", strings.Join(args, " "), missing)
		}
	}
}

func TestBadLogLevelIsRefused(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"token", "reset", "--db", t.TempDir() + "/l.db"},
		func(k string) string { return map[string]string{"KNIT_LOG_LEVEL": "verbose"}[k] },
		&stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "KNIT_LOG_LEVEL") {
		t.Errorf("run returned %v, want an error naming KNIT_LOG_LEVEL", err)
	}
}
