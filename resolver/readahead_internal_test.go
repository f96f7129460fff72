package resolver

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// raMessages parses raw messages as the webhook would.
func raMessages(t *testing.T, raws ...string) []*Message {
	t.Helper()
	env := Envelope{Source: "test", ReceivedAt: time.Date(2026, 12, 4, 15, 8, 0, 0, time.UTC),
		AllowDelete: true}
	var messages []*Message
	for _, raw := range raws {
		m, err := ParseMessage([]byte(raw), env)
		if err != nil {
			t.Fatalf("parse %s: %v", raw, err)
		}
		messages = append(messages, m)
	}
	return messages
}

func raStore(t *testing.T) (*sqldb.DB, *Store) {
	db := sqltest.MustOpen(t)
	clock := func() time.Time { return time.Date(2026, 12, 4, 15, 8, 0, 0, time.UTC) }
	return db, NewStore(db, DefaultRules(), clock, nil)
}

// raPipeline stores first as one step whose read-ahead for second is read
// to the end while first holds the write lock, before it commits (so the
// read-ahead shows the database before first); between runs after first
// commits; then second is stored as the next step.
func raPipeline(t *testing.T, s *Store, first, second []*Message,
	between func()) (*readAhead, ingested) {
	t.Helper()
	ctx := context.Background()
	var ahead *readAhead
	one, err := s.ingestStep(ctx, first, pipelineStep{startNext: func() {
		ahead = s.startReadAhead(second)
		<-ahead.done
	}})
	if err != nil {
		t.Fatalf("first step: %v", err)
	}
	if ahead == nil || ahead.err != nil {
		t.Fatalf("the read-ahead did not run: %v", ahead.err)
	}
	if between != nil {
		between()
	}
	two, err := s.ingestStep(ctx, second, pipelineStep{ahead: ahead, prev: one.trace})
	if err != nil {
		t.Fatalf("second step: %v", err)
	}
	return ahead, two
}

// raOwner returns the live profile holding identifier type:value.
func raOwner(t *testing.T, db *sqldb.DB, kind, value string) int64 {
	t.Helper()
	var profile int64
	err := db.Get(&profile, db.Rebind(`SELECT i.profile_id FROM identities i
		JOIN profiles p ON p.id = i.profile_id
		WHERE i.type = ? AND i.value = ? AND p.merged_into IS NULL`), kind, value)
	if err != nil {
		t.Fatalf("owner of %s:%s: %v", kind, value, err)
	}
	return profile
}

func raIngest(t *testing.T, s *Store, raws ...string) {
	t.Helper()
	if _, err := s.Ingest(context.Background(), raMessages(t, raws...)); err != nil {
		t.Fatal(err)
	}
}

const raAt = `"timestamp":"2026-12-01T10:00:00.000Z"`

func raTrack(id, anon string) string {
	return fmt.Sprintf(`{"type":"track","messageId":%q,"anonymousId":%q,"event":"Viewed",%s}`,
		id, anon, raAt)
}

// A group merges the profile holding x into another; the next group's
// read-ahead, made before, still says x's old profile holds it. The next
// group must put its event on the survivor, and take from the read-ahead
// what the merge did not touch.
func TestReadAheadLeavesOutProfilesTheGroupBeforeMerged(t *testing.T) {
	db, s := raStore(t)
	raIngest(t, s, // the older profile survives a merge: u's
		`{"type":"identify","messageId":"s","userId":"u",`+raAt+`}`,
		`{"type":"identify","messageId":"p","anonymousId":"x",`+
			`"traits":{"email":"e@example.com"},`+raAt+`}`,
		raTrack("other", "untouched"))
	before := raOwner(t, db, "anonymous_id", "x")

	merge := raMessages(t, `{"type":"identify","messageId":"n1","userId":"u",`+
		`"traits":{"email":"e@example.com"},`+raAt+`}`)
	next := raMessages(t, raTrack("n2", "x"), raTrack("n3", "untouched"))
	ahead, two := raPipeline(t, s, merge, next, nil)

	after := raOwner(t, db, "anonymous_id", "x")
	if ahead.owners[Identifier{Type: "anonymous_id", Value: "x"}] != before || after == before {
		t.Fatalf("x moved from %d to %d, read ahead on %d: the merge did not move it",
			before, after, ahead.owners[Identifier{Type: "anonymous_id", Value: "x"}])
	}
	if !two.readAheadUsed {
		t.Fatal("the second step did not take its read-ahead")
	}
	if got := two.outcomes[0].ProfileID; got != after {
		t.Errorf("n2 stored on profile %d, want the survivor %d (x's holder before: %d)",
			got, after, before)
	}
	if got, want := two.outcomes[1].ProfileID, raOwner(t, db, "anonymous_id",
		"untouched"); got != want {
		t.Errorf("n3 stored on profile %d, want %d", got, want)
	}
}

// An identifier the group before created was free in the read-ahead: the
// next group must find it held, not make a second profile for it; and a
// message the group before stored is a duplicate in the next.
func TestReadAheadLeavesOutIdentifiersAndMessagesTheGroupBeforeWrote(t *testing.T) {
	db, s := raStore(t)
	first := raMessages(t, `{"type":"identify","messageId":"c1","anonymousId":"fresh",`+
		`"userId":"v",`+raAt+`}`)
	next := raMessages(t, raTrack("c2", "fresh"), raTrack("c1", "fresh"))
	ahead, two := raPipeline(t, s, first, next, nil)

	if ahead.known["c1"] || len(ahead.owners) != 0 {
		t.Fatalf("the read-ahead saw the first step's work: %v %v", ahead.known, ahead.owners)
	}
	if !two.readAheadUsed {
		t.Fatal("the second step did not take its read-ahead")
	}
	if got, want := two.outcomes[0].ProfileID, raOwner(t, db, "user_id", "v"); got != want {
		t.Errorf("c2 stored on profile %d, want v's %d", got, want)
	}
	if two.outcomes[1].Status != StatusDuplicate {
		t.Errorf("c1 again: %+v, want a duplicate", two.outcomes[1])
	}
	var profiles, events int
	if err := db.Get(&profiles, `SELECT COUNT(*) FROM profiles`); err != nil {
		t.Fatal(err)
	}
	if err := db.Get(&events, `SELECT COUNT(*) FROM events`); err != nil {
		t.Fatal(err)
	}
	if profiles != 1 || events != 2 {
		t.Errorf("%d profiles and %d events, want 1 and 2", profiles, events)
	}
}

// Another writer (here a second store, as another process would be)
// commits between the two groups: the read-ahead is not taken, and the
// next group sees that writer's work.
func TestReadAheadIsDroppedWhenAnotherWriterCommittedBetween(t *testing.T) {
	db, s := raStore(t)
	other := NewStore(db, DefaultRules(), s.now, nil)
	first := raMessages(t, raTrack("f1", "someone"))
	next := raMessages(t, raTrack("f2", "y"))
	_, two := raPipeline(t, s, first, next, func() {
		raIngest(t, other, `{"type":"identify","messageId":"o1","anonymousId":"y",`+
			`"userId":"w",`+raAt+`}`)
	})

	if two.readAheadUsed {
		t.Error("the second step took a read-ahead older than another writer's commit")
	}
	if got, want := two.outcomes[0].ProfileID, raOwner(t, db, "user_id", "w"); got != want {
		t.Errorf("f2 stored on profile %d, want w's %d", got, want)
	}
}

// A group that erased someone leaves no read-ahead to trust.
func TestReadAheadIsDroppedAfterAnErasure(t *testing.T) {
	db, s := raStore(t)
	raIngest(t, s, `{"type":"identify","messageId":"g0","userId":"gone-user",`+raAt+`}`,
		raTrack("k0", "kept"))
	first := raMessages(t, `{"type":"delete","messageId":"d1","userId":"gone-user",`+
		raAt+`}`)
	next := raMessages(t, raTrack("g1", "kept"))
	_, two := raPipeline(t, s, first, next, nil)

	if two.readAheadUsed {
		t.Error("the second step took a read-ahead made before an erasure")
	}
	if got, want := two.outcomes[0].ProfileID, raOwner(t, db, "anonymous_id",
		"kept"); got != want {
		t.Errorf("g1 stored on profile %d, want %d", got, want)
	}
}

// A knit too old to count its write transactions stores someone between
// the two groups (here as its rows): the next group sees the new profile
// id and leaves the read-ahead.
func TestReadAheadIsDroppedWhenAnOlderKnitWroteBetween(t *testing.T) {
	db, s := raStore(t)
	first := raMessages(t, raTrack("f1", "someone"))
	next := raMessages(t, raTrack("f2", "y"))
	_, two := raPipeline(t, s, first, next, func() {
		for _, statement := range []string{
			`INSERT INTO profiles (id, created_ms, updated_ms) VALUES (100, 0, 0)`,
			`INSERT INTO identities (type, value, profile_id, first_seen_ms, last_seen_ms,
				first_message_id, source) VALUES ('anonymous_id', 'y', 100, 0, 0, 'old', 'old')`,
		} {
			if _, err := db.Exec(statement); err != nil {
				t.Fatal(err)
			}
		}
	})

	if two.readAheadUsed {
		t.Error("the second step took a read-ahead older than an older knit's rows")
	}
	if got := two.outcomes[0].ProfileID; got != 100 {
		t.Errorf("f2 stored on profile %d, want the older knit's 100", got)
	}
}
