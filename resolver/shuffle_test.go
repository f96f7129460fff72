package resolver_test

import (
	"bufio"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

func mustReadLines(t *testing.T, path string) []string {
	t.Helper()
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var lines []string
	scanner := bufio.NewScanner(file)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		if line := strings.TrimSpace(scanner.Text()); line != "" {
			lines = append(lines, line)
		}
	}
	if err := scanner.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// mustGraph ingests lines in order, in batches, into a new database and
// returns it with its profiles as canonical identifier sets.
func mustGraph(t *testing.T, lines []string) (*sqldb.DB, map[string]bool) {
	t.Helper()
	db := sqltest.MustOpen(t)
	store := mustStore(t, db)
	for start := 0; start < len(lines); start += 500 {
		var batch []*resolver.Message
		for _, line := range lines[start:min(start+500, len(lines))] {
			batch = append(batch, mustParseMessage(t, line))
		}
		if _, err := store.Ingest(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	graph := map[string]bool{}
	for _, p := range profileIdentifiers(t, db) {
		graph[canonical(p)] = true
	}
	return db, graph
}

// limitedIdentifiers lists every identifier a limit kept off a profile.
func limitedIdentifiers(t *testing.T, db *sqldb.DB) []string {
	t.Helper()
	var ids []string
	if err := db.Select(&ids, `SELECT DISTINCT identifier FROM identity_decisions
		WHERE kind = 'dropped_by_limit'`); err != nil {
		t.Fatal(err)
	}
	return ids
}

func shuffled(lines []string, seed uint64) []string {
	out := append([]string(nil), lines...)
	rng := rand.New(rand.NewPCG(seed, seed))
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func TestSeedJourneyGraphDoesNotDependOnOrder(t *testing.T) {
	lines := mustReadLines(t, filepath.Join("..", "testdata", "seed-journey", "messages.ndjson"))
	_, want := mustGraph(t, lines)
	for seed := range uint64(5) {
		_, got := mustGraph(t, shuffled(lines, seed))
		if !sameKeys(got, want) {
			t.Errorf("shuffle %d gives %v, want %v", seed, got, want)
		}
	}
}

// TestSampleGraphDoesNotDependOnOrderWhereNoLimitIsInPlay shuffles the
// sample, whose shared iPads make limits decide where some identifiers go,
// and compares the graphs with every identifier a limit touched (in either
// order) left out: the rest must be grouped the same way.
func TestSampleGraphDoesNotDependOnOrderWhereNoLimitIsInPlay(t *testing.T) {
	lines := mustReadLines(t, filepath.Join("..", "testdata", "sample", "events.ndjson"))
	orderedDB, _ := mustGraph(t, lines)
	shuffledDB, _ := mustGraph(t, shuffled(lines, 42))

	touched := map[string]bool{}
	for _, id := range append(limitedIdentifiers(t, orderedDB),
		limitedIdentifiers(t, shuffledDB)...) {
		touched[id] = true
	}
	a := untouchedGraph(t, orderedDB, touched)
	b := untouchedGraph(t, shuffledDB, touched)
	if len(touched) == 0 || len(a) < 300 {
		t.Fatalf("%d identifiers touched, %d profiles compared: the sample changed?",
			len(touched), len(a))
	}
	for profile := range a {
		if !b[profile] {
			t.Errorf("in file order only: %s", profile)
		}
	}
	for profile := range b {
		if !a[profile] {
			t.Errorf("shuffled only: %s", profile)
		}
	}
}

// untouchedGraph returns the profiles as canonical identifier sets with the
// touched identifiers taken out.
func untouchedGraph(t *testing.T, db *sqldb.DB, touched map[string]bool) map[string]bool {
	t.Helper()
	graph := map[string]bool{}
	for _, profile := range profileIdentifiers(t, db) {
		kept := map[string][]string{}
		for kind, values := range profile {
			for _, value := range values {
				if !touched[kind+":"+value] {
					kept[kind] = append(kept[kind], value)
				}
			}
		}
		if len(kept) > 0 {
			graph[canonical(kept)] = true
		}
	}
	return graph
}

func sameKeys(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}
