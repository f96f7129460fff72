package resolver

import (
	"testing"
)

// An older knit (no write generation) erases a message between two
// groups, as its erasure does: the message's id is remembered in
// erased_messages and its event deleted. The event is not the newest, so
// the highest ids do not move. The next group sends that message again:
// one Ingest a group finds it erased (a duplicate); the read-ahead, made
// before, does not know it. docs/deploy.md names an older process's
// erasure between two groups as not noticed.
func TestAttackReadAheadOlderKnitErasedMessageStoredAgain(t *testing.T) {
	db, s := raStore(t)
	raIngest(t, s, raTrack("old1", "gone"), raTrack("old2", "kept"))
	first := raMessages(t, raTrack("f1", "someone"))
	next := raMessages(t, raTrack("old1", "gone"))
	_, two := raPipeline(t, s, first, next, func() {
		for _, statement := range []string{
			`INSERT INTO erased_messages (message_id) VALUES ('old1')`,
			`DELETE FROM identity_links WHERE event_id IN
				(SELECT id FROM events WHERE message_id = 'old1')`,
			`DELETE FROM identity_decisions WHERE message_id = 'old1'`,
			`DELETE FROM events WHERE message_id = 'old1'`,
		} {
			if _, err := db.Exec(statement); err != nil {
				t.Fatal(err)
			}
		}
	})
	if two.outcomes[0].Status != StatusDuplicate {
		t.Errorf("old1, erased by an older knit between the groups, was %s again "+
			"(read-ahead taken: %v); one Ingest a group finds it erased",
			two.outcomes[0].Status, two.readAheadUsed)
	}
}

// An older knit stores a message between two groups that puts a new
// identifier on an existing profile (an event and an identity): the new
// event id must make the next group leave its read-ahead.
func TestAttackReadAheadOlderKnitAttachIsNoticed(t *testing.T) {
	db, s := raStore(t)
	raIngest(t, s, `{"type":"identify","messageId":"i0","userId":"w",`+raAt+`}`)
	owner := raOwner(t, db, "user_id", "w")
	first := raMessages(t, raTrack("f1", "someone"))
	next := raMessages(t, raTrack("f2", "y"))
	_, two := raPipeline(t, s, first, next, func() {
		var top int64
		if err := db.Get(&top, `SELECT MAX(id) FROM events`); err != nil {
			t.Fatal(err)
		}
		for _, statement := range []string{
			`INSERT INTO events (id, message_id, source, type, anonymous_id, profile_id,
				ts_ms, received_ms, raw) VALUES (` + itoa(top+1) + `, 'old', 'old', 'track',
				'y', ` + itoa(owner) + `, 0, 0, '{}')`,
			`INSERT INTO identities (type, value, profile_id, first_seen_ms, last_seen_ms,
				first_message_id, source) VALUES ('anonymous_id', 'y', ` + itoa(owner) +
				`, 0, 0, 'old', 'old')`,
		} {
			if _, err := db.Exec(statement); err != nil {
				t.Skipf("cannot write as an older knit here: %v", err)
			}
		}
	})
	if got := two.outcomes[0].ProfileID; got != owner {
		t.Errorf("f2 stored on profile %d, want w's %d (read-ahead taken: %v)",
			got, owner, two.readAheadUsed)
	}
}

func itoa(n int64) string {
	const digits = "0123456789"
	if n == 0 {
		return "0"
	}
	var b []byte
	for n > 0 {
		b = append([]byte{digits[n%10]}, b...)
		n /= 10
	}
	return string(b)
}
