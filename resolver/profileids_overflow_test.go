package resolver_test

import (
	"context"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
)

// TestNewProfileAfterTheLargestPossibleID: a profile stored with the
// largest id the column holds (by hand, or from an import) leaves no id
// above it. A new profile must then get another unused positive id, or the
// batch must fail; it must not wrap around to a negative id, which the
// lowest-id rule takes for the oldest profile, so that a merge keeps the
// newest profile and retires the oldest.
func TestNewProfileAfterTheLargestPossibleID(t *testing.T) {
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		store := resolver.NewStore(db, resolver.DefaultRules(),
			func() time.Time { return fixedNow }, nil)
		at := `"timestamp":"2026-11-01T10:00:00Z"`
		ingestIn(t, store, []string{`{"type":"identify","messageId":"m1",` +
			`"userId":"old","anonymousId":"a-old",` + at + `}`}, 1)
		if _, err := db.Exec(`INSERT INTO profiles (id, created_ms, updated_ms)
			VALUES (9223372036854775807, 0, 0)`); err != nil {
			t.Fatal(err)
		}
		outcomes, err := store.Ingest(context.Background(), []*resolver.Message{
			mustParseMessage(t, `{"type":"track","messageId":"m2","event":"E",`+
				`"anonymousId":"a-new",`+at+`}`),
			mustParseMessage(t, `{"type":"track","messageId":"m3","event":"E",`+
				`"anonymousId":"a-new","context":{"device":{"id":"d","type":"ios"}},`+at+`}`),
			mustParseMessage(t, `{"type":"track","messageId":"m4","event":"E",`+
				`"anonymousId":"a-old","context":{"device":{"id":"d","type":"ios"}},`+at+`}`),
		})
		if err != nil {
			t.Logf("the batch failed: %v", err)
			return
		}
		if p := outcomes[0].ProfileID; p <= 0 {
			t.Errorf("the new profile got id %d", p)
		}
		if p := outcomes[2].ProfileID; p != 1 {
			t.Errorf("the merge of the oldest profile (1) and a new one kept %d", p)
		}
	})
}

// Ids below 1 put there by hand do not make new profiles count from 0,
// which knit reads as "no profile".
func TestNewProfilesAfterOnlyNegativeIDsStartAtOne(t *testing.T) {
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		if _, err := db.Exec(`INSERT INTO profiles (id, created_ms, updated_ms)
			VALUES (-1, 0, 0)`); err != nil {
			t.Fatal(err)
		}
		store := resolver.NewStore(db, resolver.DefaultRules(),
			func() time.Time { return fixedNow }, nil)
		if got := profilesOf(t, store, "u1", "u2"); got[0] != 1 || got[1] != 2 {
			t.Errorf("new profiles after id -1 got ids %v, want [1 2]", got)
		}
	})
}
