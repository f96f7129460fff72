package resolver

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// Attacks on the read-ahead: a chain of groups stored as pipeline steps,
// each taking what was read for it while the one before held the write
// lock (forced to see the database before that one's writes), must leave
// exactly what the same groups leave stored one Ingest a group.

// rpaGroup is one group's raw messages and what runs after it commits.
type rpaGroup struct {
	raws  []string
	after string // "", "unlink:type:value", "delete:type:value"
}

// rpaDump is every row of every table knit writes, as sorted text.
func rpaDump(t *testing.T, db *sqldb.DB) map[string][]string {
	t.Helper()
	var tables []string
	var err error
	if db.Dialect() == sqldb.Postgres {
		err = db.Select(&tables, `SELECT table_name FROM information_schema.tables
			WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`)
	} else {
		err = db.Select(&tables, `SELECT name FROM sqlite_master WHERE type = 'table'
			AND name NOT LIKE 'sqlite_%'`)
	}
	if err != nil {
		t.Fatal(err)
	}
	skip := map[string]bool{"schema_migrations": true, "goose_db_version": true}
	dump := map[string][]string{}
	for _, table := range tables {
		if skip[table] {
			continue
		}
		rows, err := db.Queryx("SELECT * FROM " + table)
		if err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		var lines []string
		for rows.Next() {
			cols, err := rows.SliceScan()
			if err != nil {
				t.Fatal(err)
			}
			var parts []string
			for _, c := range cols {
				if b, ok := c.([]byte); ok {
					c = string(b)
				}
				parts = append(parts, fmt.Sprint(c))
			}
			lines = append(lines, strings.Join(parts, "|"))
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		sort.Strings(lines)
		dump[table] = lines
	}
	return dump
}

func rpaSameDump(t *testing.T, want, got map[string][]string) bool {
	t.Helper()
	same := true
	for table, rows := range want {
		if !reflect.DeepEqual(rows, got[table]) {
			same = false
			t.Errorf("table %s differs:\none Ingest a group: %q\npipelined:         %q",
				table, rows, got[table])
		}
	}
	return same
}

func rpaBetween(t *testing.T, s *Store, op string) {
	t.Helper()
	if op == "" {
		return
	}
	kind, rest, _ := strings.Cut(op, ":")
	typ, value, _ := strings.Cut(rest, ":")
	id := Identifier{Type: typ, Value: value}
	var err error
	switch kind {
	case "unlink":
		_, err = s.Unlink(context.Background(), id, "attack")
	case "delete":
		_, err = s.Delete(context.Background(), id, "attack")
	}
	if err != nil && ErrorCode(err) != ENotFound {
		t.Fatalf("%s: %v", op, err)
	}
}

// rpaRun stores groups in a fresh database: one Ingest a group when
// pipelined is false, else as pipeline steps whose read-ahead for the
// next group is read to the end while the step holds the write lock. It
// returns the outcomes, the dump and how many steps took a read-ahead.
func rpaRun(t *testing.T, rules Rules, groups []rpaGroup,
	pipelined bool) ([][]Outcome, map[string][]string, int) {
	t.Helper()
	db := sqltest.MustOpen(t)
	clock := func() time.Time { return time.Date(2026, 12, 4, 15, 8, 0, 0, time.UTC) }
	s := NewStore(db, rules, clock, nil)
	ctx := context.Background()
	var all [][]Outcome
	used := 0
	var ahead *readAhead
	var prev *groupTrace
	for i, g := range groups {
		messages := raMessages(t, g.raws...)
		if !pipelined {
			outcomes, err := s.Ingest(ctx, messages)
			if err != nil {
				t.Fatalf("group %d: %v", i, err)
			}
			all = append(all, outcomes)
			rpaBetween(t, s, g.after)
			continue
		}
		var next *readAhead
		step := pipelineStep{ahead: ahead, prev: prev}
		if i+1 < len(groups) {
			nextMessages := raMessages(t, groups[i+1].raws...)
			step.startNext = func() {
				next = s.startReadAhead(nextMessages)
				<-next.done
				if next.err != nil {
					t.Errorf("read-ahead of group %d: %v", i+1, next.err)
				}
			}
		}
		done, err := s.ingestStep(ctx, messages, step)
		if err != nil {
			t.Fatalf("group %d (pipelined): %v", i, err)
		}
		if done.readAheadUsed {
			used++
		}
		all = append(all, done.outcomes)
		ahead, prev = next, done.trace
		rpaBetween(t, s, g.after)
	}
	return all, rpaDump(t, db), used
}

// rpaCompare runs groups both ways and fails where they differ.
func rpaCompare(t *testing.T, rules Rules, groups []rpaGroup) (int, bool) {
	t.Helper()
	wantOut, want, _ := rpaRun(t, rules, groups, false)
	gotOut, got, used := rpaRun(t, rules, groups, true)
	same := rpaSameDump(t, want, got)
	if !reflect.DeepEqual(wantOut, gotOut) {
		same = false
		t.Errorf("outcomes differ:\none Ingest a group: %+v\npipelined:         %+v",
			wantOut, gotOut)
	}
	return used, same
}

// rpaRandomGroups makes n groups of random messages over a few people.
func rpaRandomGroups(r *rand.Rand, n int, withOps bool) []rpaGroup {
	base := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	var groups []rpaGroup
	msg := 0
	for range n {
		var g rpaGroup
		size := 1 + r.IntN(5)
		for range size {
			msg++
			id := fmt.Sprintf("m%d", msg)
			if r.IntN(8) == 0 && msg > 1 { // a messageId seen before
				id = fmt.Sprintf("m%d", 1+r.IntN(msg-1))
			}
			at := base.Add(time.Duration(r.IntN(100000)) * time.Second).Format(time.RFC3339)
			user := fmt.Sprintf("u%d", r.IntN(5))
			anon := fmt.Sprintf("a%d", r.IntN(8))
			email := fmt.Sprintf("E%d@Example.com", r.IntN(4))
			if r.IntN(2) == 0 {
				email = strings.ToLower(email)
			}
			switch k := r.IntN(20); {
			case k < 6:
				g.raws = append(g.raws, fmt.Sprintf(`{"type":"identify","messageId":%q,`+
					`"userId":%q,"anonymousId":%q,"traits":{"email":%q,"plan":%q},`+
					`"timestamp":%q}`, id, user, anon, email, id, at))
			case k < 8:
				g.raws = append(g.raws, fmt.Sprintf(`{"type":"identify","messageId":%q,`+
					`"anonymousId":%q,"traits":{"email":%q,"n":%q},"timestamp":%q}`,
					id, anon, email, id, at))
			case k < 14:
				g.raws = append(g.raws, fmt.Sprintf(`{"type":"track","messageId":%q,`+
					`"anonymousId":%q,"event":"E","timestamp":%q}`, id, anon, at))
			case k < 16:
				g.raws = append(g.raws, fmt.Sprintf(`{"type":"track","messageId":%q,`+
					`"userId":%q,"event":"E","timestamp":%q}`, id, user, at))
			case k < 18:
				prevID := fmt.Sprintf("a%d", r.IntN(8))
				if r.IntN(2) == 0 {
					prevID = fmt.Sprintf("u%d", r.IntN(5))
				}
				g.raws = append(g.raws, fmt.Sprintf(`{"type":"alias","messageId":%q,`+
					`"userId":%q,"previousId":%q,"timestamp":%q}`, id, user, prevID, at))
			case k < 19:
				g.raws = append(g.raws, fmt.Sprintf(`{"type":"track","messageId":%q,`+
					`"anonymousId":"blocked-device","event":"nobody","timestamp":%q}`, id, at))
			default:
				if withOps {
					g.raws = append(g.raws, fmt.Sprintf(`{"type":"delete","messageId":%q,`+
						`"userId":%q}`, id, user))
				} else {
					g.raws = append(g.raws, fmt.Sprintf(`{"type":"page","messageId":%q,`+
						`"anonymousId":%q,"timestamp":%q}`, id, anon, at))
				}
			}
		}
		if withOps {
			switch r.IntN(12) {
			case 0:
				g.after = fmt.Sprintf("unlink:anonymous_id:a%d", r.IntN(8))
			case 1:
				g.after = fmt.Sprintf("delete:user_id:u%d", r.IntN(5))
			}
		}
		groups = append(groups, g)
	}
	return groups
}

// Random chains of groups: identifies with user ids (limit 1), emails in
// two cases, anonymous ids, aliases to user and anonymous ids, messages
// with no identifier and messageIds sent again, with and without
// erasures and unlinks between and inside groups.
func TestAttackReadAheadRandomChainsMatchOneIngestAGroup(t *testing.T) {
	seeds := 10
	if testing.Short() {
		seeds = 3
	}
	for _, withOps := range []bool{false, true} {
		for _, windows := range []bool{false, true} {
			totalUsed := 0
			for seed := range seeds {
				rules := DefaultRules()
				rules.MaxMerges = 3
				rules.MaxIdentifiers = 6
				rules.BlockedByType = map[string][]string{TypeAnonymousID: {"blocked-device"}}
				if windows {
					rules.Windows = map[string]time.Duration{TypeAnonymousID: 12 * time.Hour}
					rules.Limits = map[string]int{TypeUserID: 1, TypeAnonymousID: 2}
				}
				r := rand.New(rand.NewPCG(uint64(seed), 7))
				groups := rpaRandomGroups(r, 8, withOps)
				name := fmt.Sprintf("ops=%v/windows=%v/seed=%d", withOps, windows, seed)
				var used int
				ok := t.Run(name, func(t *testing.T) {
					var same bool
					used, same = rpaCompare(t, rules, groups)
					if !same {
						for i, g := range groups {
							t.Logf("group %d: %s after=%q", i, strings.Join(g.raws, " "), g.after)
						}
					}
				})
				totalUsed += used
				if !ok {
					return
				}
			}
			t.Logf("ops=%v windows=%v: %d steps took a read-ahead", withOps, windows, totalUsed)
			if totalUsed == 0 {
				t.Errorf("ops=%v windows=%v: no step took a read-ahead", withOps, windows)
			}
		}
	}
}
