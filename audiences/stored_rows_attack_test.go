package audiences

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/knit-cdp/knit/resolver/sqldb"
)

// Attacks on a run holding its members as stored rows and streaming the
// previous result beside them (commit 4b786e4): entries must be the rows
// the run stores, exits the rows the previous run stored, byte for byte,
// in profile order, exits first; destinations must hear of each from the
// same rows; a run that fails anywhere in save must leave the previous
// result, the feed and the outbox as they were.

// storedAttackDefs is one audience whose members carry an attribute of
// every kind (times, a count, a rounded number, keys, a JSON trait), most
// of them NULL for a member that holds only some branches, sent to two
// destinations; and one that needs an email.
const storedAttackDefs = `
- name: every_kind
  include_anonymous: true
  destinations:
    - url: http://127.0.0.1:18601/identify
    - url: http://127.0.0.1:18601/track
      style: track
  condition:
    or:
      - performed: {event: Viewed, within: 30d}
        attributes: {views: count, first_view: first_at, last_view: last_at}
      - trait: {key: profile, exists: true}
        attributes: {profile: value}
      - aggregate:
          event: Paid
          function: sum
          property: amount
          within: 30d
          at_least: 0.001
          round: 2
        attributes: {paid: value}
      - then_not:
          first: {event: Added, key: sku}
          not_followed_by: [{event: Bought, key: sku}]
          between: [30d, 1h]
        attributes: {skus: keys, added_at: last_at}
- name: with_email
  require_email: true
  destinations: [{url: "http://127.0.0.1:18601/email"}]
  condition:
    performed: {event: Viewed, within: 30d}
    attributes: {views: count}
`

// storedAttack writes people straight into the tables audiences read.
type storedAttack struct {
	t      *testing.T
	db     *sqldb.DB
	events int
}

func (s *storedAttack) profile(id int64) {
	mustExec(s.t, s.db, `INSERT INTO profiles (id, created_ms, updated_ms) VALUES (?, 0, 0)`, id)
}

func (s *storedAttack) ident(profile int64, kind, value string, seenMS int64) {
	mustExec(s.t, s.db, `INSERT INTO identities (type, value, profile_id, first_seen_ms,
		first_message_id, source) VALUES (?, ?, ?, ?, 'm', 'test')`, kind, value, profile, seenMS)
}

func (s *storedAttack) event(profile int64, name string, ago time.Duration, props string) {
	s.events++
	at := testNow().Add(-ago).UnixMilli()
	mustExec(s.t, s.db, `INSERT INTO events (id, message_id, source, type, event,
		profile_id, ts_ms, received_ms, properties, raw)
		VALUES (?, ?, 'test', 'track', ?, ?, ?, ?, ?, '{}')`,
		s.events, fmt.Sprintf("stored-attack-%d", s.events), name, profile, at, at, props)
}

func (s *storedAttack) trait(profile int64, value string) {
	mustExec(s.t, s.db, `INSERT INTO traits (profile_id, key, value, ts_ms, message_id)
		VALUES (?, 'profile', ?, 0, 'm')`, profile, value)
}

// seed stores profiles 1 to 9 and two huge ids: anonymous ones, ones
// with only a user_id (with characters JSON escapes), ones with two
// emails seen at different times and identifiers of other types.
func (s *storedAttack) seed() {
	amounts := []string{`1.005`, `1e21`, `2.675`, `"12.345"`, `123456789012345678`,
		`0.1`, `null`, `99999999999999.995`, `1e-7`, `7`, `3.14159`}
	for i, id := range []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 1 << 40, 1<<53 + 1} {
		s.profile(id)
		switch i % 3 {
		case 0:
			s.ident(id, "anonymous_id", fmt.Sprintf("anon-%d-b", id), 5)
			s.ident(id, "anonymous_id", fmt.Sprintf("anon-%d-a", id), 9)
		case 1:
			s.ident(id, "user_id", fmt.Sprintf("u<%d>&\u2028", id), 1)
		default:
			s.ident(id, "user_id", fmt.Sprintf("u%d", id), 1)
			s.ident(id, "email", fmt.Sprintf("old%d@example.com", id), 1)
			s.ident(id, "email", fmt.Sprintf("new%d@example.com", id), 7)
			s.ident(id, "ios.id", fmt.Sprintf("é-%d", id), 3)
		}
		for k := 0; k <= i%3; k++ {
			s.event(id, "Viewed", time.Duration(k+1)*time.Hour+time.Duration(i)*time.Millisecond,
				`{}`)
		}
		s.event(id, "Paid", time.Hour, `{"amount":`+amounts[i]+`}`)
		if i%2 == 0 {
			s.event(id, "Added", 2*time.Hour, fmt.Sprintf(`{"sku":"s%d"}`, i))
			s.event(id, "Added", 3*time.Hour, `{"sku":42}`)
			s.event(id, "Added", 4*time.Hour, `{"sku":"<b>&"}`)
		}
	}
	s.trait(1, `{"z":1,"a":{"y":[1.50,2e3,"<x>"],"b":null},"big":12345678901234567890}`)
	s.trait(2, `"plain <text>"`)
	s.trait(4, `1.0`)
	s.trait(6, `[3,1,2]`)
}

func mustStoredAttackDefs(t *testing.T) []Definition {
	t.Helper()
	var defs []Definition
	if err := yaml.Unmarshal([]byte(storedAttackDefs), &defs); err != nil {
		t.Fatal(err)
	}
	if err := Validate(defs); err != nil {
		t.Fatal(err)
	}
	return defs
}

// storedMembers reads an audience's stored result by profile.
func storedMembers(t *testing.T, db *sqldb.DB, audience string) map[int64]memberRow {
	t.Helper()
	var rows []memberRow
	err := db.Select(&rows, db.Rebind(`SELECT profile_id, run_id, user_id, email,
		identifiers, attributes FROM audience_members WHERE audience = ?`), audience)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[int64]memberRow, len(rows))
	for _, row := range rows {
		out[row.ProfileID] = row
	}
	return out
}

// recordedChanges reads the run's changes as stored, in id order.
func recordedChanges(t *testing.T, db *sqldb.DB, run int64) []changeRow {
	t.Helper()
	var rows []changeRow
	err := db.Select(&rows, db.Rebind(`SELECT id, change, at_ms, profile_id, run_id,
		user_id, email, identifiers, attributes FROM audience_changes
		WHERE run_id = ? ORDER BY id`), run)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// queuedBodies reads the outbox bodies of an audience in the order they
// were queued, by destination.
func queuedBodies(t *testing.T, db *sqldb.DB, audience string,
	afterID int64) (map[string][]string, int64) {
	t.Helper()
	var rows []outboxRow
	err := db.Select(&rows, db.Rebind(`SELECT id, audience, destination, body,
		created_ms, attempts FROM outbox WHERE audience = ? AND id > ? ORDER BY id`),
		audience, afterID)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	last := afterID
	for _, row := range rows {
		out[row.Destination] = append(out[row.Destination], row.Body)
		last = max(last, row.ID)
	}
	return out, last
}

// checkRunChanges checks that the run recorded exactly the exits and
// entries expected, exits first, each in profile order, each exit the
// row the previous result stored and each entry the row this run stored;
// and that every destination was sent the same, in the same order, built
// from those rows.
func checkRunChanges(t *testing.T, db *sqldb.DB, def Definition, run Run,
	before, after map[int64]memberRow, outboxAfter int64) int64 {
	t.Helper()
	var wantExited, wantEntered []int64
	for id := range before {
		if _, stayed := after[id]; !stayed {
			wantExited = append(wantExited, id)
		}
	}
	for id := range after {
		if _, was := before[id]; !was {
			wantEntered = append(wantEntered, id)
		}
	}
	slices.Sort(wantExited)
	slices.Sort(wantEntered)
	if run.Entered != len(wantEntered) || run.Exited != len(wantExited) ||
		run.Size != len(after) {
		t.Errorf("%s run %d counts size %d, %d entered, %d exited; want %d, %d, %d",
			def.Name, run.ID, run.Size, run.Entered, run.Exited,
			len(after), len(wantEntered), len(wantExited))
	}

	type want struct {
		kind string
		row  memberRow
	}
	var wants []want
	for _, id := range wantExited {
		wants = append(wants, want{Exited, before[id]})
	}
	for _, id := range wantEntered {
		wants = append(wants, want{Entered, after[id]})
	}
	got := recordedChanges(t, db, run.ID)
	if len(got) != len(wants) {
		t.Fatalf("%s run %d recorded %d changes, want %d (exited %v, entered %v)",
			def.Name, run.ID, len(got), len(wants), wantExited, wantEntered)
	}
	for i, w := range wants {
		g := got[i]
		if g.Change != w.kind || g.ProfileID != w.row.ProfileID || g.UserID != w.row.UserID ||
			g.Email != w.row.Email || g.Identifiers != w.row.Identifiers ||
			g.Attributes != w.row.Attributes {
			t.Errorf("%s run %d change %d:\n got  %s %d %q %q %s %s\n want %s %d %q %q %s %s",
				def.Name, run.ID, i, g.Change, g.ProfileID, g.UserID, g.Email,
				g.Identifiers, g.Attributes, w.kind, w.row.ProfileID, w.row.UserID,
				w.row.Email, w.row.Identifiers, w.row.Attributes)
		}
	}

	bodies, last := queuedBodies(t, db, def.Name, outboxAfter)
	for _, dest := range def.Destinations {
		var expected []string
		for _, w := range wants {
			m, err := w.row.member()
			if err != nil {
				t.Fatal(err)
			}
			key := fmt.Sprintf("%s/%s/%d/%s/%d", def.Name, dest.key(), run.ID, w.kind,
				w.row.ProfileID)
			body, err := json.Marshal(segmentMessage(def.Name, dest.style(), w.kind,
				messageIDOf(key), run, m))
			if err != nil {
				t.Fatal(err)
			}
			expected = append(expected, string(body))
		}
		if !reflect.DeepEqual(bodies[dest.key()], expected) {
			t.Errorf("%s run %d sent %s:\n%s\nwant\n%s", def.Name, run.ID, dest.key(),
				strings.Join(bodies[dest.key()], "\n"), strings.Join(expected, "\n"))
		}
	}
	if len(def.Destinations) == 0 && len(bodies) != 0 {
		t.Errorf("%s has no destination but queued %v", def.Name, bodies)
	}
	return last
}

// messageIDOf is the message id enqueueOne derives from a change's key.
func messageIDOf(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "knit-" + hex.EncodeToString(sum[:16])
}

// TestAttackChangesAndDeliveriesAreTheStoredRows runs two audiences
// through entries, merges, lost emails, changed identifiers, a run that
// changes nothing and one that empties them, in three queries each on
// PostgreSQL, and checks every change and delivery against the stored
// results before and after.
func TestAttackChangesAndDeliveriesAreTheStoredRows(t *testing.T) {
	defs := mustStoredAttackDefs(t)
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		s := &storedAttack{t: t, db: db}
		s.seed()
		r := NewRunner(db, defs, testNow, nil)
		r.SetQueriesPerAudience(3)

		outboxAt := map[string]int64{}
		step := func(label string) {
			t.Helper()
			for _, def := range defs {
				before := storedMembers(t, db, def.Name)
				run, err := r.Run(ctx, def.Name)
				if err != nil {
					t.Fatalf("%s: run %s: %v", label, def.Name, err)
				}
				after := storedMembers(t, db, def.Name)
				for id, row := range after {
					if row.RunID != run.ID {
						t.Errorf("%s: %s member %d names run %d, want %d",
							label, def.Name, id, row.RunID, run.ID)
					}
				}
				outboxAt[def.Name] = checkRunChanges(t, db, def, run, before, after,
					outboxAt[def.Name])
			}
		}

		step("first")
		if got := storedMembers(t, db, "every_kind"); len(got) != 11 {
			t.Fatalf("every_kind has %d members, want all 11", len(got))
		}

		// 2 leaves; 3 merges into 4, taking its identifiers and events; 6
		// loses its emails (and with_email); 8 gains an email; 20 arrives
		// by its trait alone.
		mustExec(t, db, `DELETE FROM events WHERE profile_id = 2`)
		mustExec(t, db, `DELETE FROM traits WHERE profile_id = 2`)
		mustExec(t, db, `UPDATE profiles SET merged_into = 4 WHERE id = 3`)
		mustExec(t, db, `UPDATE identities SET profile_id = 4 WHERE profile_id = 3`)
		mustExec(t, db, `UPDATE events SET profile_id = 4 WHERE profile_id = 3`)
		mustExec(t, db, `DELETE FROM identities WHERE profile_id = 6 AND type = 'email'`)
		s.ident(8, "email", "newest8@example.com", 99)
		s.profile(20)
		s.trait(20, `{"only":"trait"}`)
		step("second")

		step("unchanged")
		mustExec(t, db, `DELETE FROM events`)
		mustExec(t, db, `DELETE FROM traits`)
		step("emptied")
		if got := storedMembers(t, db, "every_kind"); len(got) != 0 {
			t.Errorf("every_kind keeps %d members with no events or traits", len(got))
		}
		step("empty again")
	})
}

// storedState is what readers of an audience see: its stored result, its
// current run, and the changes and deliveries recorded so far.
type storedState struct {
	members map[int64]memberRow
	current Run
	changes []changeRow
	bodies  map[string][]string
}

func readStoredState(t *testing.T, db *sqldb.DB, r *Runner, audience string) storedState {
	t.Helper()
	current, err := r.CurrentRun(context.Background(), audience)
	if err != nil {
		t.Fatal(err)
	}
	var changes []changeRow
	err = db.Select(&changes, db.Rebind(`SELECT id, change, at_ms, profile_id, run_id,
		user_id, email, identifiers, attributes FROM audience_changes
		WHERE audience = ? ORDER BY id`), audience)
	if err != nil {
		t.Fatal(err)
	}
	bodies, _ := queuedBodies(t, db, audience, 0)
	return storedState{storedMembers(t, db, audience), current, changes, bodies}
}

// TestAttackAFailedOrAbortedRunKeepsThePreviousResult fails a save after
// its changes and deliveries are written (a member twice: the second
// copy of a member that stayed reads as an entry, and the result cannot
// be stored), and aborts a run before it reads anything. Either way the
// previous result, the feed and the outbox stay as they were, and the
// next run diffs against that result.
func TestAttackAFailedOrAbortedRunKeepsThePreviousResult(t *testing.T) {
	defs := mustStoredAttackDefs(t)
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		r := NewRunner(db, defs, testNow, nil)
		def := defs[0]
		first, err := r.start(ctx, def.Name)
		if err != nil {
			t.Fatal(err)
		}
		if first, err = r.save(ctx, def, first, storedRows("run 1", 1, 2, 3)); err != nil {
			t.Fatal(err)
		}
		kept := readStoredState(t, db, r, def.Name)
		if len(kept.changes) != 3 || len(kept.bodies) != 2 {
			t.Fatalf("first run recorded %d changes and sent to %d destinations",
				len(kept.changes), len(kept.bodies))
		}

		failed, err := r.start(ctx, def.Name)
		if err != nil {
			t.Fatal(err)
		}
		twice := storedRows("run 2", 2, 2, 4)
		if _, err := r.save(ctx, def, failed, twice); err == nil {
			t.Fatal("a result holding profile 2 twice was saved")
		}
		if got := readStoredState(t, db, r, def.Name); !reflect.DeepEqual(got, kept) {
			t.Errorf("a failed save left\n%+v\nwant\n%+v", got, kept)
		}

		aborted, err := r.start(ctx, def.Name)
		if err != nil {
			t.Fatal(err)
		}
		canceled, cancel := context.WithCancel(ctx)
		cancel()
		aborted, err = r.compute(canceled, def, aborted)
		if err == nil || aborted.Status != StatusAborted {
			t.Errorf("a canceled run ended %s (err %v), want aborted", aborted.Status, err)
		}
		if got := readStoredState(t, db, r, def.Name); !reflect.DeepEqual(got, kept) {
			t.Errorf("an aborted run left\n%+v\nwant\n%+v", got, kept)
		}

		next, err := r.start(ctx, def.Name)
		if err != nil {
			t.Fatal(err)
		}
		if next, err = r.save(ctx, def, next, storedRows("run 3", 2, 4)); err != nil {
			t.Fatal(err)
		}
		checkChanges(t, r, next, []int64{4}, []int64{1, 3}, "run 1")
		checkRunChanges(t, db, def, next, kept.members, storedMembers(t, db, def.Name),
			outboxLastOf(kept.bodies, t, db, def.Name))
	})
}

// outboxLastOf is the highest outbox id among the bodies already queued.
func outboxLastOf(bodies map[string][]string, t *testing.T, db *sqldb.DB,
	audience string) int64 {
	t.Helper()
	n := 0
	for _, b := range bodies {
		n += len(b)
	}
	var ids []int64
	err := db.Select(&ids, db.Rebind(`SELECT id FROM outbox WHERE audience = ?
		ORDER BY id LIMIT ?`), audience, n)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) == 0 {
		return 0
	}
	return ids[len(ids)-1]
}

// TestAttackExitsCarryStoredTextAsItIs stores a result by hand, out of
// profile order and in JSON as no run of this version writes it (spaces,
// keys out of order, numbers as written, identifiers null), and saves a
// result that overlaps it: the exits must carry that text unchanged, and
// destinations must be told of them from it.
func TestAttackExitsCarryStoredTextAsItIs(t *testing.T) {
	defs := mustStoredAttackDefs(t)
	onEachEngine(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		r := NewRunner(db, defs, testNow, nil)
		def := defs[0]
		old, err := r.start(ctx, def.Name)
		if err != nil {
			t.Fatal(err)
		}
		hand := []memberRow{
			{ProfileID: 9, UserID: "u9", Email: "e9@example.com",
				Identifiers: `{ "user_id" : ["u9"], "anonymous_id": ["b9", "a9"] }`,
				Attributes:  `{"z": 1, "a": [1.50, 2E3, "\u003c"], "n": null}`},
			{ProfileID: 1, Identifiers: `{"anonymous_id":["a1"]}`, Attributes: `{}`},
			{ProfileID: 5, Identifiers: `{}`, Attributes: `{"views":5}`},
			{ProfileID: 3, Identifiers: `null`, Attributes: `{"big": 12345678901234567890}`},
			{ProfileID: 1 << 62, Identifiers: `{"email":["x@example.com"]}`,
				Email: "x@example.com", Attributes: `{"t":"2026-12-04T12:00:00.000Z"}`},
		}
		for _, row := range hand {
			mustExec(t, db, `INSERT INTO audience_members (audience, profile_id, run_id,
				user_id, email, identifiers, attributes) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				def.Name, row.ProfileID, old.ID, row.UserID, row.Email, row.Identifiers,
				row.Attributes)
		}
		mustExec(t, db, `UPDATE audience_runs SET status = 'ok', size = ? WHERE id = ?`,
			len(hand), old.ID)
		before := storedMembers(t, db, def.Name)

		run, err := r.start(ctx, def.Name)
		if err != nil {
			t.Fatal(err)
		}
		if run, err = r.save(ctx, def, run, storedRows("new", 1, 4, 5, 10)); err != nil {
			t.Fatal(err)
		}
		checkRunChanges(t, db, def, run, before, storedMembers(t, db, def.Name), 0)

		page, err := r.Changes(ctx, def.Name, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		var exits []string
		for _, c := range page.Changes {
			if c.Change == Exited {
				attrs, _ := json.Marshal(c.Attributes)
				exits = append(exits, fmt.Sprintf("%d %s %s", c.ProfileID, c.UserID, attrs))
			}
		}
		want := []string{
			`3  {"big":12345678901234567890}`,
			`9 u9 {"a":[1.50,2E3,"\u003c"],"n":null,"z":1}`,
			`4611686018427387904  {"t":"2026-12-04T12:00:00.000Z"}`,
		}
		if !reflect.DeepEqual(exits, want) {
			t.Errorf("the feed shows exits\n%s\nwant\n%s", strings.Join(exits, "\n"),
				strings.Join(want, "\n"))
		}
	})
}
