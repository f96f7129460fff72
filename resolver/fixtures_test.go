package resolver_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

var fixedNow = time.Date(2026, 12, 4, 15, 8, 0, 0, time.UTC)

func mustStore(t testing.TB, db *sqldb.DB) *resolver.Store {
	t.Helper()
	now := func() time.Time { return fixedNow }
	return resolver.NewStore(db, resolver.DefaultRules(), now, nil)
}

// mustIngestFile stores every line of an NDJSON file in order, one message
// per transaction, as Segment would deliver them one by one.
func mustIngestFile(t testing.TB, store *resolver.Store, path string) int {
	t.Helper()

	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()

	scanner := bufio.NewScanner(file)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	count := 0
	env := resolver.Envelope{Source: "test", ReceivedAt: fixedNow}
	for scanner.Scan() {
		line := append([]byte(nil), scanner.Bytes()...)
		if strings.TrimSpace(string(line)) == "" {
			continue
		}
		m, err := resolver.ParseMessage(line, env)
		if err != nil {
			t.Fatalf("line %d: %v", count+1, err)
		}
		if _, err := store.Ingest(context.Background(), []*resolver.Message{m}); err != nil {
			t.Fatalf("line %d: %v", count+1, err)
		}
		count++
	}
	if err := scanner.Err(); err != nil {
		t.Fatal(err)
	}
	return count
}

// profileIdentifiers reads every live profile as identifier values by type.
func profileIdentifiers(t testing.TB, db *sqldb.DB) []map[string][]string {
	t.Helper()

	rows, err := db.Query(`SELECT profile_id, type, value FROM identities
		ORDER BY profile_id, type, value`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	byProfile := map[int64]map[string][]string{}
	for rows.Next() {
		var profile int64
		var kind, value string
		if err := rows.Scan(&profile, &kind, &value); err != nil {
			t.Fatal(err)
		}
		if byProfile[profile] == nil {
			byProfile[profile] = map[string][]string{}
		}
		byProfile[profile][kind] = append(byProfile[profile][kind], value)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var out []map[string][]string
	for _, ids := range byProfile {
		out = append(out, ids)
	}
	return out
}

func canonical(profile map[string][]string) string {
	kinds := make([]string, 0, len(profile))
	for kind := range profile {
		kinds = append(kinds, kind)
	}
	sort.Strings(kinds)
	var parts []string
	for _, kind := range kinds {
		values := append([]string(nil), profile[kind]...)
		sort.Strings(values)
		parts = append(parts, kind+"="+strings.Join(values, ","))
	}
	return strings.Join(parts, " ")
}

func TestSampleResolvesToExpectedProfiles(t *testing.T) {
	db := sqltest.MustOpen(t)
	store := mustStore(t, db)
	dir := filepath.Join("..", "testdata", "sample")
	mustIngestFile(t, store, filepath.Join(dir, "events.ndjson"))

	var expected struct {
		Profiles           int                   `json:"profiles"`
		ProfileIdentifiers []map[string][]string `json:"profile_identifiers"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &expected); err != nil {
		t.Fatal(err)
	}

	want := map[string]bool{}
	for _, p := range expected.ProfileIdentifiers {
		want[canonical(p)] = true
	}
	got := profileIdentifiers(t, db)
	t.Logf("%d profiles resolved, %d expected", len(got), expected.Profiles)
	if len(got) != expected.Profiles {
		t.Errorf("got %d profiles, want %d", len(got), expected.Profiles)
	}
	for _, p := range got {
		key := canonical(p)
		if !want[key] {
			t.Errorf("unexpected profile: %s", key)
		}
		delete(want, key)
	}
	for key := range want {
		t.Errorf("missing profile: %s", key)
	}
}
