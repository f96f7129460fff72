package audiences

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// testEvent is one track event of the person a condition test is about.
type testEvent struct {
	Name       string
	Time       time.Time
	Properties map[string]any
}

// builtin returns the built-in audience of that name.
func builtin(t testing.TB, name string) Definition {
	t.Helper()
	for _, d := range Builtins() {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("no built-in audience %q", name)
	return Definition{}
}

// evaluateOn stores history as the events of one identified person (with a
// user_id and an email) in a fresh database, computes def at testNow in
// SQL, and returns the person's attributes, or nil when they are not a
// member. When PostgreSQL is available it computes the same there and
// fails the test if the engines disagree.
func evaluateOn(t testing.TB, def Definition, history []testEvent) map[string]any {
	t.Helper()
	db := sqltest.MustOpenSQLite(t)
	mustStorePerson(t, db, 1, history)
	got := mustMembers(t, db, def)[1]

	if os.Getenv(sqltest.PostgresEnv) != "" {
		pg := sqltest.MustOpenPostgres(t)
		mustStorePerson(t, pg, 1, history)
		if onPG := mustMembers(t, pg, def)[1]; !reflect.DeepEqual(onPG, got) {
			t.Errorf("engines disagree:\nsqlite   %v\npostgres %v", got, onPG)
		}
	}
	return got
}

// onEachEngine runs test on a fresh database of every engine available:
// SQLite always, PostgreSQL when sqltest.PostgresEnv is set.
func onEachEngine(t *testing.T, test func(t *testing.T, db *sqldb.DB)) {
	t.Run("sqlite", func(t *testing.T) { test(t, sqltest.MustOpenSQLite(t)) })
	t.Run("postgres", func(t *testing.T) { test(t, sqltest.MustOpenPostgres(t)) })
}

// mustStorePerson writes a live profile with a user_id, an email and the
// events of history, straight into the tables audiences read.
func mustStorePerson(t testing.TB, db *sqldb.DB, profile int64, history []testEvent) {
	t.Helper()
	mustExec(t, db, `INSERT INTO profiles (id, created_ms, updated_ms) VALUES (?, 0, 0)`,
		profile)
	for _, ident := range [][2]string{{"user_id", "u"}, {"email", "e@example.com"}} {
		mustExec(t, db, `INSERT INTO identities (type, value, profile_id, first_seen_ms,
			first_message_id, source) VALUES (?, ?, ?, 0, 'm', 'test')`,
			ident[0], ident[1]+string(rune('0'+profile)), profile)
	}
	mustStoreEvents(t, db, profile, history)
}

// mustStoreEvents writes history as track events of profile. Message ids
// name the profile, so an id an erasure left behind (PostgreSQL keeps
// erased ones in event_ids) is never written again.
func mustStoreEvents(t testing.TB, db *sqldb.DB, profile int64, history []testEvent) {
	t.Helper()
	var stored int64
	if err := db.Get(&stored, `SELECT COUNT(*) FROM events`); err != nil {
		t.Fatal(err)
	}
	for i, e := range history {
		props, err := json.Marshal(e.Properties)
		if err != nil {
			t.Fatal(err)
		}
		if e.Properties == nil {
			props = []byte("{}")
		}
		id := stored + int64(i) + 1
		mustExec(t, db, `INSERT INTO events (id, message_id, source, type, event,
			profile_id, ts_ms, received_ms, properties, raw)
			VALUES (?, ?, 'test', 'track', ?, ?, ?, ?, ?, '{}')`,
			id, fmt.Sprintf("m%d-p%d", id, profile), e.Name, profile, e.Time.UnixMilli(),
			e.Time.UnixMilli(), string(props))
	}
}

func mustExec(t testing.TB, db *sqldb.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.Exec(db.Rebind(query), args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// mustMembers computes def at testNow and returns each member's
// attributes by profile id.
func mustMembers(t testing.TB, db *sqldb.DB, def Definition) map[int64]map[string]any {
	t.Helper()
	if err := Validate([]Definition{def}); err != nil && len(def.Audiences()) == 0 {
		t.Fatalf("definition does not validate: %v", err)
	}
	r := NewRunner(db, []Definition{def}, testNow, nil)
	members, err := r.members(context.Background(), def, testNow())
	if err != nil {
		t.Fatalf("compute %s: %v", def.Name, err)
	}
	out := map[int64]map[string]any{}
	for _, m := range members {
		out[m.ProfileID] = m.Attributes
	}
	return out
}

// members evaluates def as a run does and decodes every member, each
// attribute as the Go type its column's kind reads to (typedAttributes).
func (r *Runner) members(ctx context.Context, def Definition, now time.Time) ([]Member, error) {
	compiled, err := compileShare(def, now, dialectOf(r.db), share{})
	if err != nil {
		return nil, err
	}
	rows, err := r.memberRows(ctx, def, now)
	if err != nil {
		return nil, err
	}
	members, err := decodeMembers(rows)
	if err != nil {
		return nil, err
	}
	for i, row := range rows {
		members[i].Attributes, err = typedAttributes(compiled.columns, row.Attributes)
		if err != nil {
			return nil, fmt.Errorf("member %d: %w", row.ProfileID, err)
		}
	}
	return members, nil
}

// typedAttributes decodes a member's stored attributes by their columns'
// kinds: times and text as strings, counts as int64, numbers as float64,
// keys as []string, JSON values with json.Number, and null as nil.
func typedAttributes(columns []column, text string) (map[string]any, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(text), &raw); err != nil {
		return nil, err
	}
	attributes := make(map[string]any, len(columns))
	for _, col := range columns {
		value, err := typedValue(col.kind, raw[col.name])
		if err != nil {
			return nil, fmt.Errorf("attribute %s: %w", col.name, err)
		}
		attributes[col.name] = value
	}
	return attributes, nil
}

func typedValue(kind columnKind, raw json.RawMessage) (any, error) {
	if raw == nil || string(raw) == "null" {
		return nil, nil
	}
	var err error
	switch kind {
	case kindInt:
		var n int64
		err = json.Unmarshal(raw, &n)
		return n, err
	case kindNumber:
		var f float64
		err = json.Unmarshal(raw, &f)
		return f, err
	case kindKeys:
		var keys []string
		err = json.Unmarshal(raw, &keys)
		return keys, err
	case kindJSON:
		var v any
		err = decodeJSON(string(raw), &v)
		return v, err
	}
	var text string
	err = json.Unmarshal(raw, &text)
	return text, err
}
