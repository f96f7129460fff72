package resolver_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// Attacks on a merge that stores only the batch's waiting profiles,
// identities and traits (events, links and decisions wait, the events
// repointed in memory), and on PostgreSQL's one-statement flush: a batch
// with merges must leave what the same messages leave one Ingest each.

const (
	atkT0 = "2026-11-01T09:00:00Z"
	atkT1 = "2026-11-01T10:00:00Z"
	atkT2 = "2026-11-01T11:00:00Z"
	atkT3 = "2026-11-01T12:00:00Z"
)

// atkExt renders identifiers as context.externalIds, "type:value" each.
func atkExt(ids []string) string {
	var items []string
	for _, id := range ids {
		kind, value, _ := strings.Cut(id, ":")
		items = append(items, fmt.Sprintf(`{"type":%q,"id":%q,"collection":"users"}`,
			kind, value))
	}
	return `"context":{"externalIds":[` + strings.Join(items, ",") + `]}`
}

func atkTrack(id, anon, at string, ext ...string) string {
	return fmt.Sprintf(`{"type":"track","messageId":%q,"anonymousId":%q,"event":"E",`+
		`"properties":{"n":%q},"timestamp":%q,%s}`, id, anon, id, at, atkExt(ext))
}

func atkIdentify(id, user, anon, traits, at string, ext ...string) string {
	user = strings.TrimSpace(user)
	userField := ""
	if user != "" {
		userField = fmt.Sprintf(`"userId":%q,`, user)
	}
	return fmt.Sprintf(`{"type":"identify","messageId":%q,%s"anonymousId":%q,`+
		`"traits":%s,"timestamp":%q,%s}`, id, userField, anon, traits, at, atkExt(ext))
}

func atkAlias(id, user, previous, at string) string {
	return fmt.Sprintf(`{"type":"alias","messageId":%q,"userId":%q,"previousId":%q,`+
		`"timestamp":%q}`, id, user, previous, at)
}

func atkDelete(id, user string) string {
	return fmt.Sprintf(`{"type":"delete","messageId":%q,"userId":%q}`, id, user)
}

// atkState is a database's outcome of ingestion with profile ids replaced
// by the identifier sets of the profiles.
type atkState struct {
	Profiles   []string            // live profiles with identifiers, sorted
	Owners     map[string]string   // identifier -> its profile
	Events     map[string]string   // message id -> its profile
	Traits     map[string][]string // profile -> key=value@ts/message
	Merges     int
	Links      int
	Decisions  int
	AllProfile int
	Live       int
	Outcomes   []string
}

// atkProfileNames names every profile by its identifier set; a retired
// (merged) profile is named after its survivor, marked as such.
func atkProfileNames(t *testing.T, db *sqldb.DB) (map[int64]string, map[int64]int64) {
	t.Helper()
	names := map[int64]string{}
	sets := map[int64]map[string][]string{}
	rows, err := db.Query(`SELECT profile_id, type, value FROM identities`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var p int64
		var kind, value string
		if err := rows.Scan(&p, &kind, &value); err != nil {
			t.Fatal(err)
		}
		if sets[p] == nil {
			sets[p] = map[string][]string{}
		}
		sets[p][kind] = append(sets[p][kind], value)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	survivor := map[int64]int64{}
	var profiles []struct {
		ID     int64         `db:"id"`
		Merged sql.NullInt64 `db:"merged_into"`
	}
	if err := db.Select(&profiles, `SELECT id, merged_into FROM profiles`); err != nil {
		t.Fatal(err)
	}
	for _, p := range profiles {
		survivor[p.ID] = p.ID
		if p.Merged.Valid {
			survivor[p.ID] = p.Merged.Int64
		}
	}
	for _, p := range profiles {
		name := "{}"
		if s, ok := sets[p.ID]; ok {
			name = "{" + canonical(s) + "}"
		}
		names[p.ID] = name
	}
	return names, survivor
}

func atkRead(t *testing.T, db *sqldb.DB, outcomes []resolver.Outcome) atkState {
	t.Helper()
	names, survivor := atkProfileNames(t, db)
	live := func(p int64) string {
		s := survivor[p]
		if survivor[s] != s {
			return fmt.Sprintf("chain %d->%d->%d", p, s, survivor[s])
		}
		return names[s]
	}
	st := atkState{Owners: map[string]string{}, Events: map[string]string{},
		Traits: map[string][]string{}}
	for p, s := range survivor {
		st.AllProfile++
		if p == s {
			st.Live++
			if names[p] != "{}" {
				st.Profiles = append(st.Profiles, names[p])
			}
		}
	}
	sort.Strings(st.Profiles)

	var ids []struct {
		Profile int64  `db:"profile_id"`
		Type    string `db:"type"`
		Value   string `db:"value"`
	}
	if err := db.Select(&ids, `SELECT profile_id, type, value FROM identities`); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if survivor[id.Profile] != id.Profile {
			t.Errorf("identity %s:%s is on retired profile %d", id.Type, id.Value, id.Profile)
		}
		st.Owners[id.Type+":"+id.Value] = names[id.Profile]
	}

	var events []struct {
		MessageID string        `db:"message_id"`
		Profile   sql.NullInt64 `db:"profile_id"`
	}
	if err := db.Select(&events, `SELECT message_id, profile_id FROM events`); err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if _, dup := st.Events[e.MessageID]; dup {
			t.Errorf("message %s stored twice", e.MessageID)
		}
		if !e.Profile.Valid {
			st.Events[e.MessageID] = "none"
			continue
		}
		if survivor[e.Profile.Int64] != e.Profile.Int64 {
			t.Errorf("event %s is on retired profile %d (merged into %d)",
				e.MessageID, e.Profile.Int64, survivor[e.Profile.Int64])
		}
		st.Events[e.MessageID] = names[e.Profile.Int64]
	}

	var traits []struct {
		Profile   int64  `db:"profile_id"`
		Key       string `db:"key"`
		Value     string `db:"value"`
		TS        int64  `db:"ts_ms"`
		MessageID string `db:"message_id"`
	}
	if err := db.Select(&traits, `SELECT profile_id, key, value, ts_ms, message_id
		FROM traits ORDER BY key`); err != nil {
		t.Fatal(err)
	}
	for _, tr := range traits {
		if survivor[tr.Profile] != tr.Profile {
			t.Errorf("trait %s is on retired profile %d", tr.Key, tr.Profile)
		}
		name := names[tr.Profile]
		st.Traits[name] = append(st.Traits[name],
			fmt.Sprintf("%s=%s@%d/%s", tr.Key, tr.Value, tr.TS, tr.MessageID))
	}
	for name := range st.Traits {
		sort.Strings(st.Traits[name])
	}

	counts := []struct {
		into  *int
		query string
	}{
		{&st.Merges, `SELECT COUNT(*) FROM profile_merges`},
		{&st.Links, `SELECT COUNT(*) FROM identity_links`},
		{&st.Decisions, `SELECT COUNT(*) FROM identity_decisions`},
	}
	for _, c := range counts {
		if err := db.Get(c.into, c.query); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range outcomes {
		where := "none"
		if o.ProfileID != 0 {
			where = live(o.ProfileID)
		}
		st.Outcomes = append(st.Outcomes, fmt.Sprintf("%s %s %s", o.MessageID, o.Status, where))
	}
	return st
}

// atkPrefix stores prefix one message an Ingest.
func atkPrefix(t *testing.T, prefix []string) func(*resolver.Store) {
	return func(s *resolver.Store) { ingestIn(t, s, prefix, 1) }
}

// atkCompare runs before on two fresh databases, then stores raws one
// message an Ingest in the first and in one Ingest in the second, and
// wants the same state. It returns the second database and its store.
func atkCompare(t *testing.T, rules resolver.Rules, before func(*resolver.Store),
	raws []string, sizes ...int) (*sqldb.DB, *resolver.Store) {
	t.Helper()
	clock := func() time.Time { return fixedNow }
	oneDB, batchDB := sqltest.MustOpen(t), sqltest.MustOpen(t)
	one := resolver.NewStore(oneDB, rules, clock, nil)
	batch := resolver.NewStore(batchDB, rules, clock, nil)
	before(one)
	before(batch)
	oneOutcomes := ingestIn(t, one, raws, 1)
	batchOutcomes := ingestIn(t, batch, raws, len(raws))
	want, got := atkRead(t, oneDB, oneOutcomes), atkRead(t, batchDB, batchOutcomes)
	if atkDebug != nil {
		atkDebug(t, got)
	}

	wv, gv := reflect.ValueOf(want), reflect.ValueOf(got)
	for i := range wv.NumField() {
		if !reflect.DeepEqual(wv.Field(i).Interface(), gv.Field(i).Interface()) {
			t.Errorf("%s differ:\none by one: %v\none batch:  %v", wv.Type().Field(i).Name,
				wv.Field(i).Interface(), gv.Field(i).Interface())
		}
	}
	// The stricter comparison, ids and decision texts included.
	if sizes != nil {
		compareBatchings(t, rules, raws, before, sizes...)
	}
	return batchDB, batch
}

// atkLaterBatch stores one more batch after the attacked one and checks
// that ids keep increasing and, on PostgreSQL, that the sequences are at
// or above the highest ids.
func atkLaterBatch(t *testing.T, db *sqldb.DB, store *resolver.Store) {
	t.Helper()
	var before struct {
		Profile int64 `db:"p"`
		Event   int64 `db:"e"`
	}
	maxIDs := `SELECT COALESCE((SELECT MAX(id) FROM profiles), 0) AS p,
		COALESCE((SELECT MAX(id) FROM events), 0) AS e`
	if err := db.Get(&before, maxIDs); err != nil {
		t.Fatal(err)
	}
	atkSequences(t, db)
	later := []string{
		atkTrack("later-1", "later-a1", atkT3, "xid:later-k1"),
		atkTrack("later-2", "later-a2", atkT3, "xid:later-k2"),
		atkTrack("later-3", "later-a1", atkT3, "xid:later-k2"),
		atkIdentify("later-4", "later-u", "later-a1", `{"plan":"late"}`, atkT3),
	}
	outcomes := ingestIn(t, store, later, len(later))
	for _, o := range outcomes {
		if o.Status != resolver.StatusStored || o.ProfileID <= before.Profile {
			t.Errorf("later batch: %+v, profiles up to %d before", o, before.Profile)
		}
	}
	var after struct {
		Profile int64 `db:"p"`
		Event   int64 `db:"e"`
	}
	if err := db.Get(&after, maxIDs); err != nil {
		t.Fatal(err)
	}
	if after.Profile != before.Profile+2 || after.Event != before.Event+4 {
		t.Errorf("later batch: highest ids %+v, before %+v", after, before)
	}
	atkSequences(t, db)
	if db.Dialect() == sqldb.Postgres {
		// A profile inserted with the default id takes none of knit's.
		var id int64
		err := db.Get(&id, `INSERT INTO profiles (created_ms, updated_ms) VALUES (0, 0)
			RETURNING id`)
		if err != nil {
			t.Fatalf("default-id profile: %v", err)
		}
		if id <= after.Profile {
			t.Errorf("default-id profile got %d, knit's highest is %d", id, after.Profile)
		}
	}
}

func atkSequences(t *testing.T, db *sqldb.DB) {
	t.Helper()
	if db.Dialect() != sqldb.Postgres {
		return
	}
	var got struct {
		EventSeq   sql.NullInt64 `db:"es"`
		ProfileSeq sql.NullInt64 `db:"ps"`
		Events     int64         `db:"e"`
		Profiles   int64         `db:"p"`
	}
	err := db.Get(&got, `SELECT
		pg_sequence_last_value(pg_get_serial_sequence('events', 'id')::regclass) AS es,
		pg_sequence_last_value(pg_get_serial_sequence('profiles', 'id')::regclass) AS ps,
		COALESCE((SELECT MAX(id) FROM events), 0) AS e,
		COALESCE((SELECT MAX(id) FROM profiles), 0) AS p`)
	if err != nil {
		t.Fatal(err)
	}
	if got.EventSeq.Int64 < got.Events || got.ProfileSeq.Int64 < got.Profiles {
		t.Errorf("sequences behind: events seq %v max %d, profiles seq %v max %d",
			got.EventSeq, got.Events, got.ProfileSeq, got.Profiles)
	}
}

// atkDebug, when set, sees each batch's state.
var atkDebug func(*testing.T, atkState)

func atkRun(t *testing.T, rules resolver.Rules, prefix, raws []string) {
	t.Helper()
	db, store := atkCompare(t, rules, atkPrefix(t, prefix), raws, len(raws), 3)
	atkLaterBatch(t, db, store)
}

// A merged into B, then B into C, in one batch, with events of each
// waiting, and more events for every identifier afterwards.
func TestAttackChainedMergesInOneBatch(t *testing.T) {
	raws := []string{
		atkIdentify("c1", "", "a1", `{"plan":"c","tier":"c"}`, atkT1, "xid:k1"),
		atkIdentify("b1", "", "a2", `{"plan":"b"}`, atkT2, "xid:k2"),
		atkIdentify("a1", "", "a3", `{"tier":"a","city":"a"}`, atkT0, "xid:k3"),
		atkTrack("a2", "a3", atkT1),
		atkTrack("b2", "a2", atkT1),
		atkTrack("ab", "a3", atkT2, "xid:k2"), // A (newest) into B
		atkTrack("a4", "a3", atkT2),
		atkTrack("bc", "a2", atkT3, "xid:k1"), // B into C
		atkTrack("a5", "a3", atkT3),
		atkIdentify("a6", "", "a3", `{"city":"late"}`, atkT3, "xid:k9"),
		atkTrack("c2", "a1", atkT0),
	}
	atkRun(t, resolver.DefaultRules(), nil, raws)
}

// The same chain with the oldest profile stored before the batch and the
// others made in it.
func TestAttackChainOntoStoredProfile(t *testing.T) {
	prefix := []string{
		atkIdentify("p1", "u1", "a1", `{"plan":"stored"}`, atkT1, "xid:k1"),
		atkTrack("p2", "a1", atkT1),
	}
	raws := []string{
		atkIdentify("n1", "", "a2", `{"plan":"new"}`, atkT1, "xid:k2"),
		atkTrack("n2", "a3", atkT2, "xid:k3"),
		atkTrack("n3", "a3", atkT2, "xid:k2"), // new into new
		atkTrack("n4", "a2", atkT2, "xid:k1"), // new into stored
		atkTrack("n5", "a3", atkT3),
		atkIdentify("n6", "u1", "a9", `{"plan":"after"}`, atkT0),
	}
	atkRun(t, resolver.DefaultRules(), prefix, raws)
}

// Aliases merging profiles made in the batch, before and after others.
func TestAttackAliasesAroundMerges(t *testing.T) {
	raws := []string{
		atkTrack("m1", "anon-1", atkT0),
		atkTrack("m2", "anon-2", atkT0, "xid:k2"),
		atkIdentify("m3", "user-1", "anon-3", `{"plan":"x"}`, atkT1),
		atkAlias("m4", "user-1", "anon-1", atkT1), // anon-1's profile into user-1's?
		atkTrack("m5", "anon-1", atkT2, "xid:k2"),
		atkAlias("m6", "user-2", "anon-2", atkT2),
		atkAlias("m7", "user-1", "user-2", atkT2), // two user ids: kept apart
		atkTrack("m8", "anon-2", atkT3),
		atkIdentify("m9", "user-1", "anon-1", `{"plan":"y"}`, atkT3),
	}
	atkRun(t, resolver.DefaultRules(), nil, raws)
}

// One survivor absorbs several profiles, one at a time and three at once,
// and under a merge cap some stay apart.
func TestAttackSeveralMergesOfOneSurvivor(t *testing.T) {
	raws := []string{
		atkIdentify("s", "", "s0", `{"plan":"s"}`, atkT1, "xid:s"),
		atkIdentify("p1", "", "s1", `{"plan":"p1"}`, atkT2, "xid:p1"),
		atkIdentify("p2", "", "s2", `{"plan":"p2"}`, atkT0, "xid:p2"),
		atkIdentify("p3", "", "s3", `{"zip":"p3"}`, atkT1, "xid:p3"),
		atkIdentify("p4", "", "s4", `{"zip":"p4"}`, atkT2, "xid:p4"),
		atkTrack("j1", "s0", atkT1, "xid:p1"),
		atkTrack("e1", "s1", atkT1),
		atkTrack("j2", "s2", atkT1, "xid:s", "xid:p3", "xid:p4"),
		atkTrack("e2", "s3", atkT1),
		atkTrack("e3", "s4", atkT1),
	}
	t.Run("default", func(t *testing.T) {
		atkRun(t, resolver.DefaultRules(), nil, raws)
	})
	t.Run("capped", func(t *testing.T) {
		rules := resolver.DefaultRules()
		rules.MaxMerges = 2
		atkRun(t, rules, nil, raws)
	})
}

// Traits written on the merged profile just before the merge, at the
// survivor's time, later and earlier, and on the survivor right after.
func TestAttackTraitsJustBeforeTheMerge(t *testing.T) {
	raws := []string{
		atkIdentify("s1", "", "sa", `{"plan":"s","tier":"s","city":"s"}`, atkT1),
		atkIdentify("m1", "", "ma", `{"plan":"m-equal"}`, atkT1),
		atkIdentify("m2", "", "ma", `{"tier":"m-later"}`, atkT2),
		atkIdentify("m3", "", "ma", `{"city":"m-earlier","zip":"m"}`, atkT0),
		atkIdentify("s2", "", "sa", `{"plan":"s-again"}`, atkT1), // tie on the survivor
		atkIdentify("mg", "", "ma", `{"plan":"merging"}`, atkT1, "anonymous_id:sa"),
		atkIdentify("s3", "", "sa", `{"tier":"s-equal"}`, atkT2),
		atkIdentify("m4", "", "ma", `{"zip":"via-merged-id"}`, atkT0),
	}
	atkRun(t, resolver.DefaultRules(), nil, raws)

	// The merging message itself first: its traits land after the merge.
	reversed := []string{
		atkIdentify("m1", "", "ma", `{"plan":"m","tier":"m"}`, atkT2),
		atkIdentify("s1", "", "sa", `{"plan":"s","tier":"s"}`, atkT2),
		atkIdentify("mg", "", "sa", `{"tier":"merging"}`, atkT2, "anonymous_id:ma"),
	}
	atkRun(t, resolver.DefaultRules(), nil, reversed)
}

// A deletion in the middle of a batch, with merges before and after it,
// of a person whose profile absorbed one made in the batch.
func TestAttackDeletionBetweenMerges(t *testing.T) {
	prefix := []string{
		atkIdentify("p1", "u-old", "old-a", `{"plan":"old"}`, atkT0, "xid:old"),
	}
	raws := []string{
		atkIdentify("m1", "u1", "a1", `{"plan":"x"}`, atkT1),
		atkTrack("m2", "a2", atkT1, "xid:k2"),
		atkTrack("m3", "a1", atkT2, "xid:k2"), // merge before
		atkTrack("m4", "a5", atkT1, "xid:old"),
		atkTrack("m5", "a6", atkT1, "xid:k6"),
		atkTrack("m6", "a5", atkT1, "xid:k6"), // into the stored profile
		atkDelete("d1", "u1"),
		atkTrack("m7", "a3", atkT2, "xid:k3"),
		atkTrack("m8", "a4", atkT2, "xid:k4"),
		atkTrack("m9", "a3", atkT3, "xid:k4"), // merge after
		atkIdentify("m10", "u1", "a1", `{"plan":"back"}`, atkT3, "xid:k2"),
		atkTrack("m11", "a2", atkT3, "xid:k3"),
		atkDelete("d2", "u-old"),
		atkTrack("m12", "a6", atkT3, "xid:k4"),
	}
	atkRun(t, resolver.DefaultRules(), prefix, raws)
}

// The same messageId twice in one batch, around a merge: the second is a
// duplicate whatever it carries.
func TestAttackSameMessageIDAroundAMerge(t *testing.T) {
	raws := []string{
		atkTrack("m1", "a1", atkT1),
		atkTrack("m2", "a2", atkT1, "xid:k2"),
		atkTrack("m2", "a1", atkT1, "xid:k2"), // a duplicate would-be merge
		atkTrack("m3", "a1", atkT2, "xid:k2"), // the merge
		atkTrack("m1", "a9", atkT2),
		atkIdentify("m3", "", "a3", `{"plan":"dup"}`, atkT3),
		atkTrack("m4", "a3", atkT3, "xid:k2"),
		atkTrack("m4", "a2", atkT3),
	}
	atkRun(t, resolver.DefaultRules(), nil, raws)
}

// atkChurn is a message from small pools that often carry identifiers of
// two or three profiles at once: many merges a batch, chained, with
// traits, aliases, deletions and repeated messageIds in between.
func atkChurn(rng *rand.Rand, n int) string {
	id := fmt.Sprintf("m%d", n)
	if n > 0 && rng.IntN(10) == 0 {
		id = fmt.Sprintf("m%d", rng.IntN(n))
	}
	at := []string{atkT0, atkT1, atkT1, atkT2, atkT3}[rng.IntN(5)]
	anon := fmt.Sprintf("a%d", rng.IntN(12))
	var ext []string
	for range rng.IntN(3) {
		ext = append(ext, fmt.Sprintf("xid:k%d", rng.IntN(12)))
	}
	switch rng.IntN(16) {
	case 0:
		return atkDelete(id, fmt.Sprintf("u%d", rng.IntN(4)))
	case 1:
		return atkAlias(id, fmt.Sprintf("u%d", rng.IntN(4)), fmt.Sprintf("a%d", rng.IntN(12)),
			at)
	case 2, 3, 4, 5, 6:
		return atkTrack(id, anon, at, ext...)
	}
	user := ""
	if rng.IntN(3) == 0 {
		user = fmt.Sprintf("u%d", rng.IntN(4))
	}
	keys := []string{"plan", "tier", "city"}
	var traits []string
	for _, k := range keys {
		if rng.IntN(2) == 0 {
			traits = append(traits, fmt.Sprintf("%q:%q", k, id+"-"+k))
		}
	}
	return atkIdentify(id, user, anon, "{"+strings.Join(traits, ",")+"}", at, ext...)
}

func TestAttackMergeChurnInOneBatch(t *testing.T) {
	seeds, messages := uint64(6), 120
	if os.Getenv(sqltest.PostgresEnv) != "" {
		seeds, messages = 3, 80
	}
	for seed := range seeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 4242))
			var prefix, raws []string
			for n := range 10 {
				prefix = append(prefix, atkChurn(rng, n))
			}
			for i := range prefix {
				prefix[i] = strings.Replace(prefix[i], `"messageId":"m`,
					`"messageId":"pre-m`, 1)
			}
			for n := range messages {
				raws = append(raws, atkChurn(rng, n))
			}
			rules := resolver.DefaultRules()
			if seed%2 == 1 {
				rules.MaxMerges = 3
			}
			atkRun(t, rules, prefix, raws)
		})
	}
}

// Merges in one batch after an operator unlinked an identifier of a
// merged family: the rebuilt profiles merge again, and the blocked
// identifier never joins anything.
func TestAttackMergesAfterUnlink(t *testing.T) {
	prefix := []string{
		atkTrack("p1", "a1", atkT0, "xid:k1"),
		atkTrack("p2", "a2", atkT0, "xid:k2"),
		atkTrack("p3", "a1", atkT1, "xid:k2", "xid:bad"),
		atkIdentify("p4", "", "a2", `{"plan":"p4"}`, atkT1),
	}
	before := func(s *resolver.Store) {
		atkPrefix(t, prefix)(s)
		_, err := s.Unlink(context.Background(),
			resolver.Identifier{Type: "xid", Value: "bad"}, "attack")
		if err != nil {
			t.Fatal(err)
		}
	}
	raws := []string{
		atkTrack("m1", "a3", atkT2, "xid:bad"),
		atkTrack("m2", "a3", atkT2, "xid:k1"),
		atkTrack("m3", "a4", atkT2, "xid:k2"),
		atkIdentify("m4", "", "a4", `{"plan":"m4"}`, atkT2, "anonymous_id:a3"),
		atkTrack("m5", "a1", atkT3, "xid:bad", "xid:k2"),
		atkTrack("m6", "a2", atkT3),
	}
	db, store := atkCompare(t, resolver.DefaultRules(), before, raws, len(raws), 2)
	atkLaterBatch(t, db, store)
}

// A batch past the rows one SQLite INSERT takes, merging as it goes: the
// partial flushes of merges and the last one write many rows each.
func TestAttackLargeBatchOfMerges(t *testing.T) {
	n := 1300
	if os.Getenv(sqltest.PostgresEnv) != "" {
		n = 700
	}
	var raws, joins []string
	for i := range n {
		raws = append(raws, atkIdentify(fmt.Sprintf("n%d", i), "",
			fmt.Sprintf("a%d", i), fmt.Sprintf(`{"plan":"p%d","k%d":1}`, i, i%7),
			[]string{atkT0, atkT1, atkT2}[i%3], fmt.Sprintf("xid:k%d", i)))
		if i%3 == 2 { // the last three profiles become one
			joins = append(joins, atkTrack(fmt.Sprintf("j%d", i), fmt.Sprintf("a%d", i),
				atkT1, fmt.Sprintf("xid:k%d", i-1), fmt.Sprintf("xid:k%d", i-2)))
		}
	}
	// The first merge writes every profile, identity and trait so far.
	raws = append(raws, joins...)
	db, store := atkCompare(t, resolver.DefaultRules(), func(*resolver.Store) {}, raws)
	atkLaterBatch(t, db, store)
}
