package resolver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// errDiscard rolls a test's transaction back.
var errDiscard = errors.New("discard")

// A batch reads its identities and merge counts from its cache, which
// always knows both profiles of a merge; these reads go to the database
// with a merge waiting and the cache empty, as no batch does today, and
// must see the merge as if written: lookups by value name the survivor,
// reads by profile write the waiting merges first.
func TestReadsByProfileSeeWaitingMerges(t *testing.T) {
	db := sqltest.MustOpenPostgres(t)
	survivor, merged := twoStoredProfiles(t, db)

	checks := map[string]func(w *writer) error{
		"owners by value": func(w *writer) error {
			owners, err := w.owners(context.Background(), []Identifier{anon("b0")})
			if err == nil && owners[anon("b0")] != survivor {
				err = fmt.Errorf("b0 held by %d, want the survivor %d",
					owners[anon("b0")], survivor)
			}
			return err
		},
		"identifiers of the survivor": func(w *writer) error {
			held, err := w.identifiersOf(context.Background(), []int64{survivor})
			if err == nil && !slices.ContainsFunc(held, func(h heldIdentifier) bool {
				return h.Identifier == anon("b0") && h.profile == survivor
			}) {
				err = fmt.Errorf("the survivor holds %v, without b0", held)
			}
			return err
		},
		"merge count": func(w *writer) error {
			n, err := w.mergeCount(context.Background(), survivor)
			if err == nil && n != 1 {
				err = fmt.Errorf("%d merges into the survivor, want 1", n)
			}
			return err
		},
		"merge counts": func(w *writer) error {
			err := w.readMergeCounts(context.Background(), []int64{survivor, merged})
			if n := w.cache.merges[survivor]; err == nil && n != 1 {
				err = fmt.Errorf("%d merges into the survivor, want 1", n)
			}
			return err
		},
		"identifier room": func(w *writer) error {
			room, err := w.identifierRoom(context.Background(), survivor,
				[]Identifier{anon("c0")}, nil)
			if err == nil && room != 0 {
				err = fmt.Errorf("room for %d identifiers, want 0 (a0 and b0 held)", room)
			}
			return err
		},
	}
	for name, check := range checks {
		t.Run(name, func(t *testing.T) {
			err := db.WithWriteTx(context.Background(), func(tx *sqlx.Tx) error {
				w := waitingMergeWriter(tx, survivor, merged)
				if err := check(w); err != nil {
					t.Error(err)
				}
				return errDiscard
			})
			if !errors.Is(err, errDiscard) {
				t.Fatal(err)
			}
		})
	}
}

func anon(value string) Identifier { return Identifier{Type: TypeAnonymousID, Value: value} }

// twoStoredProfiles stores two people, a0 and b0, and returns their
// profiles, oldest first.
func twoStoredProfiles(t *testing.T, db *sqldb.DB) (first, second int64) {
	t.Helper()
	at := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	store := NewStore(db, DefaultRules(), func() time.Time { return at }, nil)
	var messages []*Message
	for _, person := range []string{"a0", "b0"} {
		raw := fmt.Sprintf(`{"type":"track","event":"Seen","messageId":"m-%s",`+
			`"anonymousId":%q,"timestamp":"2026-12-05T11:00:00Z"}`, person, person)
		m, err := ParseMessage([]byte(raw), Envelope{Source: "test", ReceivedAt: at})
		if err != nil {
			t.Fatal(err)
		}
		messages = append(messages, m)
	}
	outcomes, err := store.Ingest(context.Background(), messages)
	if err != nil {
		t.Fatal(err)
	}
	return outcomes[0].ProfileID, outcomes[1].ProfileID
}

// waitingMergeWriter is a batch's writer holding the merge of merged into
// survivor for its end, with nothing in its cache; the profiles hold two
// identifiers at most.
func waitingMergeWriter(tx *sqlx.Tx, survivor, merged int64) *writer {
	rules := DefaultRules()
	rules.MaxIdentifiers = 2
	w := &writer{tx: tx, rules: rules, now: time.Now(), bulk: newBulkRows(),
		cache: newIdentityCache(), dialect: sqldb.Postgres, folds: newFoldedMerges()}
	w.folds.add(survivor, merged, "m-merge", w.now.UnixMilli())
	return w
}
