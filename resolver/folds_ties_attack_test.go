package resolver_test

import (
	"fmt"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// Attacks on the folded merges of a PostgreSQL batch (foldedMerges,
// foldsSQL): trait ties in every arrangement, merge and identifier caps
// counted across waiting merges, reads that must see waiting merges, and
// the same batch on PostgreSQL and SQLite. Each case runs atkRun: a batch
// must leave what one Ingest a message leaves, and a later batch too.

// Four profiles tied on every key, merged into the oldest by one message;
// some keys live only on folded profiles, tied between them.
func TestAttackFoldTiesFourInOneMessage(t *testing.T) {
	raws := []string{
		atkIdentify("s", "", "s0", `{"plan":"s","zip":"s"}`, atkT1),
		atkIdentify("a", "", "a0", `{"plan":"a","zip":"a","only":"a"}`, atkT1),
		atkIdentify("b", "", "b0", `{"plan":"b","only":"b","both":"b"}`, atkT1),
		atkIdentify("c", "", "c0", `{"plan":"c","only":"c","both":"c"}`, atkT1),
		atkTrack("j", "b0", atkT1, "anonymous_id:s0", "anonymous_id:c0",
			"anonymous_id:a0"),
		atkIdentify("after", "", "c0", `{"only":"after"}`, atkT1),
	}
	atkRun(t, resolver.DefaultRules(), nil, raws)
	atkAcross(t, resolver.DefaultRules(), nil, raws, len(raws))
}

// A chain where each survivor is folded in turn: D into C, C into B, B
// into A, every level tied on one key, with writes between the merges to
// the survivor and to profiles about to be folded, at the tied time.
func TestAttackFoldTiesChainOfFour(t *testing.T) {
	raws := []string{
		atkIdentify("a", "", "a0", `{"k":"a"}`, atkT1),
		atkIdentify("b", "", "b0", `{"k":"b","m":"b"}`, atkT1),
		atkIdentify("c", "", "c0", `{"k":"c","m":"c","n":"c"}`, atkT1),
		atkIdentify("d", "", "d0", `{"k":"d","m":"d","n":"d","o":"d"}`, atkT1),
		atkTrack("cd", "c0", atkT1, "anonymous_id:d0"),
		atkIdentify("w1", "", "d0", `{"n":"w1","p":"w1"}`, atkT1), // lands on C
		atkIdentify("w2", "", "b0", `{"o":"w2"}`, atkT1),
		atkTrack("bc", "b0", atkT1, "anonymous_id:c0"),
		atkIdentify("w3", "", "a0", `{"p":"w3"}`, atkT0),
		atkIdentify("w4", "", "c0", `{"m":"w4"}`, atkT1), // lands on B
		atkTrack("ab", "d0", atkT2, "anonymous_id:a0"),
		atkIdentify("w5", "", "b0", `{"q":"w5","k":"w5"}`, atkT1),
	}
	atkRun(t, resolver.DefaultRules(), nil, raws)
	atkAcross(t, resolver.DefaultRules(), nil, raws, len(raws))
}

// Two branches built separately, then joined: A absorbed X, S absorbed M,
// then A absorbs S; ties on keys held by X, S and M only.
func TestAttackFoldTiesTwoBranches(t *testing.T) {
	raws := []string{
		atkIdentify("a", "", "a0", `{"own":"a"}`, atkT2),
		atkIdentify("s", "", "s0", `{"k":"s","own":"s"}`, atkT2),
		atkIdentify("x", "", "x0", `{"k":"x","j":"x"}`, atkT1),
		atkIdentify("m", "", "m0", `{"k":"m","j":"m","own":"m"}`, atkT2),
		atkTrack("sm", "m0", atkT1, "anonymous_id:s0"),
		atkTrack("ax", "x0", atkT1, "anonymous_id:a0"),
		atkIdentify("late", "", "m0", `{"j":"late"}`, atkT0),
		atkTrack("as", "s0", atkT1, "anonymous_id:x0"),
		atkIdentify("tie", "", "x0", `{"j":"tie","k":"tie"}`, atkT1),
	}
	atkRun(t, resolver.DefaultRules(), nil, raws)
	atkAcross(t, resolver.DefaultRules(), nil, raws, len(raws))
}

// Profiles made and folded in the same batch, whose ids are higher than a
// stored profile they all end in (from a prefix), ties against stored
// values and a merge carried by an identify with its own tied traits.
func TestAttackFoldTiesOntoStoredSurvivor(t *testing.T) {
	prefix := []string{
		atkIdentify("p1", "u1", "pa", `{"k":"stored","m":"stored"}`, atkT1, "xid:p"),
		atkIdentify("p2", "", "pb", `{"k":"pb"}`, atkT1, "xid:q"),
	}
	raws := []string{
		atkIdentify("n1", "", "n1", `{"k":"n1","m":"n1","z":"n1"}`, atkT1),
		atkIdentify("n2", "", "n2", `{"k":"n2","z":"n2"}`, atkT1),
		atkIdentify("j1", "", "n2", `{"z":"j1"}`, atkT1, "anonymous_id:n1"),
		atkTrack("j2", "n1", atkT1, "xid:q"),
		atkIdentify("j3", "u1", "n2", `{"m":"j3"}`, atkT1),
		atkIdentify("j4", "", "pb", `{"k":"j4"}`, atkT1),
	}
	atkRun(t, resolver.DefaultRules(), prefix, raws)
	atkAcross(t, resolver.DefaultRules(), prefix, raws, len(raws))
}

// Merge caps counted across merges waiting in memory and stored ones: a
// profile that absorbed others in an earlier batch and in this one meets
// MaxMerges, and MaxIdentifiers with a small identifier cap. At 5 merges
// the last merge (j7) passes the cap only if the cache forgets that a
// merged profile brings its own earlier merges along.
func TestAttackFoldCaps(t *testing.T) {
	prefix := []string{
		atkTrack("p1", "pa", atkT0, "xid:p1"),
		atkTrack("p2", "pb", atkT0, "xid:p2"),
		atkTrack("p3", "pa", atkT0, "xid:p2"), // pb's profile into pa's
	}
	raws := []string{
		atkTrack("n1", "na", atkT1, "xid:n1"),
		atkTrack("n2", "nb", atkT1, "xid:n2"),
		atkTrack("n3", "nc", atkT1, "xid:n3"),
		atkTrack("n4", "nd", atkT1, "xid:n4"),
		atkTrack("j1", "na", atkT1, "xid:n2"), // nb into na
		atkTrack("j2", "nc", atkT1, "xid:n4"), // nd into nc
		atkTrack("j3", "na", atkT2, "xid:n3"), // nc (with nd) into na
		atkTrack("j4", "pa", atkT2, "xid:n1"), // na's family into pa's
		atkTrack("j5", "ne", atkT2, "xid:p1", "xid:n9"),
		atkTrack("j6", "nf", atkT2, "xid:nf"),
		atkTrack("j7", "nf", atkT3, "anonymous_id:pa", "xid:n4"),
		atkTrack("j8", "nd", atkT3, "xid:last"),
	}
	for _, c := range []struct{ merges, ids int }{
		{2, 1000}, {3, 1000}, {5, 1000}, {100, 4}, {3, 9},
	} {
		t.Run(fmt.Sprintf("merges%d-ids%d", c.merges, c.ids), func(t *testing.T) {
			rules := resolver.DefaultRules()
			rules.MaxMerges, rules.MaxIdentifiers = c.merges, c.ids
			rules.DefaultLimit = 100 // the type limits stay out of the way
			atkRun(t, rules, prefix, raws)
			atkAcross(t, rules, prefix, raws, len(raws))
		})
	}
}

// Per-type identifier limits, with and without a time window, crossing
// merges that wait: the limit must count the identifiers of profiles
// folded earlier in the batch.
func TestAttackFoldTypeLimits(t *testing.T) {
	raws := []string{
		atkTrack("n1", "a1", atkT0, "xid:k1"),
		atkTrack("n2", "a2", atkT1, "xid:k2"),
		atkTrack("n3", "a3", atkT2, "xid:k3"),
		atkTrack("j1", "a1", atkT2, "anonymous_id:a2"), // a2 folded
		atkTrack("j2", "a3", atkT3, "anonymous_id:a1"), // would hold 3 xids
		atkTrack("j3", "a4", atkT3, "xid:k1", "xid:k3"),
		atkTrack("j4", "a2", atkT3, "xid:k4"),
	}
	for name, rules := range map[string]resolver.Rules{
		"limit2":  atkLimitRules(2, 0),
		"limit3":  atkLimitRules(3, 0),
		"window":  atkLimitRules(2, 90*time.Minute),
		"window2": atkLimitRules(2, 150*time.Minute),
	} {
		t.Run(name, func(t *testing.T) { atkRun(t, rules, nil, raws) })
	}
}

func atkLimitRules(limit int, window time.Duration) resolver.Rules {
	rules := resolver.DefaultRules()
	rules.Limits = map[string]int{resolver.TypeUserID: 1, "xid": limit}
	rules.Windows = map[string]time.Duration{}
	if window > 0 {
		rules.Windows["xid"] = window
	}
	return rules
}

// Reads that must see waiting merges: an alias whose previousId sits on a
// folded profile (stored before the batch, so looked up in the database),
// identifiers of folded profiles arriving again, a user id on a folded
// profile meeting another user id, and an erase of a person whose profile
// absorbed others earlier in the batch.
func TestAttackFoldReadsSeeWaitingMerges(t *testing.T) {
	prefix := []string{
		atkTrack("p1", "pa", atkT0, "xid:p1"),
		atkTrack("p2", "pb", atkT0, "xid:p2"),
		atkIdentify("p3", "u1", "pc", `{"k":"p3"}`, atkT0),
		atkIdentify("p4", "u2", "pd", `{"k":"p4"}`, atkT0),
	}
	raws := []string{
		atkTrack("j1", "pb", atkT1, "xid:p1"),      // pb's into pa's
		atkAlias("al", "u1", "pb", atkT1),          // previousId on the folded one
		atkTrack("j2", "pa", atkT1, "xid:p2"),      // folded ids again
		atkIdentify("j3", "u2", "pb", `{}`, atkT1), // two user ids
		atkTrack("j4", "pd", atkT2, "xid:p2"),
		atkTrack("j5", "new", atkT2, "xid:new", "anonymous_id:pb"),
		atkDelete("d1", "u1"),
		atkTrack("j6", "pb", atkT3, "xid:p1"),
		atkTrack("j7", "pd", atkT3, "xid:p1"),
	}
	atkRun(t, resolver.DefaultRules(), prefix, raws)
	rules := resolver.DefaultRules()
	rules.MaxMerges = 1
	atkRun(t, rules, prefix, raws)
}

// An erase of a user whose identifier sits on a profile folded earlier in
// the batch, then merges of the survivor's other identifiers.
func TestAttackFoldEraseOfFoldedUser(t *testing.T) {
	raws := []string{
		atkIdentify("s", "", "s0", `{"k":"s"}`, atkT1, "xid:s"),
		atkIdentify("m", "um", "m0", `{"k":"m"}`, atkT1, "xid:m"),
		atkIdentify("x", "", "x0", `{"k":"x"}`, atkT1, "xid:x"),
		atkTrack("j1", "s0", atkT1, "xid:m"),
		atkTrack("j2", "x0", atkT1, "xid:s"),
		atkDelete("d", "um"),
		atkTrack("j3", "m0", atkT2, "xid:x"),
		atkIdentify("j4", "um", "x0", `{"k":"back"}`, atkT1),
	}
	atkRun(t, resolver.DefaultRules(), nil, raws)
	atkAcross(t, resolver.DefaultRules(), nil, raws, len(raws))
}

// atkAcross stores prefix one message an Ingest and then raws in batches
// of size on SQLite (each merge written at once) and on PostgreSQL (merges
// folded), and wants the same tables, ids included, and the same merge
// times and profile update times. On PostgreSQL one Ingest a message folds
// too, so only SQLite shows what merges one at a time leave when one
// message merges several profiles. Without PostgreSQL it does nothing.
func atkAcross(t *testing.T, rules resolver.Rules, prefix, raws []string, size int) {
	t.Helper()
	if os.Getenv(sqltest.PostgresEnv) == "" {
		return // nothing to compare SQLite with
	}
	var want map[string][]string
	for _, db := range []*sqldb.DB{sqltest.MustOpenSQLite(t), sqltest.MustOpenPostgres(t)} {
		now := fixedNow // the batch an hour after the prefix, for the update times
		store := resolver.NewStore(db, rules, func() time.Time { return now }, nil)
		ingestIn(t, store, prefix, 1)
		now = fixedNow.Add(time.Hour)
		ingestIn(t, store, raws, size)
		got := snapshot(t, db)
		delete(got, "event_ids")
		got["merge_times"] = rowsOf(t, db, `SELECT survivor, merged, at_ms
			FROM profile_merges ORDER BY id`)
		got["profile_times"] = rowsOf(t, db, `SELECT id, created_ms, updated_ms
			FROM profiles ORDER BY id`)
		if want == nil {
			want = got
			continue
		}
		for table := range want {
			if !reflect.DeepEqual(want[table], got[table]) {
				t.Errorf("%s differ:\nSQLite:     %v\nPostgreSQL: %v",
					table, want[table], got[table])
			}
		}
	}
}

// The scenarios above, and a chain with an erase between merges, on
// SQLite and PostgreSQL, one message an Ingest and in one batch.
func TestAttackFoldPostgresMatchesSQLite(t *testing.T) {
	scenarios := map[string][]string{
		"chain with erase": {
			atkIdentify("a", "", "a0", `{"k":"a"}`, atkT1),
			atkIdentify("b", "", "b0", `{"k":"b","m":"b"}`, atkT1),
			atkIdentify("c", "", "c0", `{"k":"c","m":"c","n":"c"}`, atkT1),
			atkIdentify("d", "", "d0", `{"k":"d","m":"d","n":"d","o":"d"}`, atkT1),
			atkTrack("cd", "c0", atkT1, "anonymous_id:d0"),
			atkIdentify("w1", "", "d0", `{"n":"w1","p":"w1"}`, atkT1),
			atkTrack("bc", "b0", atkT1, "anonymous_id:c0"),
			atkTrack("ab", "d0", atkT2, "anonymous_id:a0"),
			atkIdentify("e", "ue", "e0", `{"k":"e"}`, atkT2),
			atkTrack("ae", "e0", atkT2, "anonymous_id:b0"),
			atkDelete("del", "ue"),
			atkTrack("f", "f0", atkT3, "xid:f"),
			atkTrack("g", "g0", atkT3, "xid:g"),
			atkTrack("fg", "g0", atkT3, "xid:f"),
		},
		"four in one message": {
			atkIdentify("s", "", "s0", `{"plan":"s","zip":"s"}`, atkT1),
			atkIdentify("a", "", "a0", `{"plan":"a","zip":"a","only":"a"}`, atkT1),
			atkIdentify("b", "", "b0", `{"plan":"b","only":"b","both":"b"}`, atkT1),
			atkIdentify("c", "", "c0", `{"plan":"c","only":"c","both":"c"}`, atkT1),
			atkTrack("j", "b0", atkT1, "anonymous_id:s0", "anonymous_id:c0",
				"anonymous_id:a0"),
		},
		"one message folds a chain": {
			atkIdentify("a", "", "a0", `{"k":"a"}`, atkT1),
			atkIdentify("b", "", "b0", `{"k":"b","m":"b"}`, atkT1),
			atkIdentify("c", "", "c0", `{"k":"c","m":"c","n":"c"}`, atkT1),
			atkIdentify("d", "", "d0", `{"m":"d","n":"d","o":"d"}`, atkT1),
			atkTrack("cd", "d0", atkT1, "anonymous_id:c0"),
			atkTrack("abc", "c0", atkT1, "anonymous_id:b0", "anonymous_id:a0"),
		},
	}
	for name, raws := range scenarios {
		t.Run(name, func(t *testing.T) {
			for _, size := range []int{1, len(raws)} {
				atkAcross(t, resolver.DefaultRules(), nil, raws, size)
			}
		})
	}
}

// After an erase the batch's identity cache starts empty, so lookups and
// counts read the database while merges wait: stored profiles folded after
// the erase, then an alias from an identifier of a folded one, its
// identifiers again, a merge cap and identifier limits that must count
// the waiting merges, and traits tied across them.
func TestAttackFoldReadsAfterErase(t *testing.T) {
	prefix := []string{
		atkIdentify("p0", "gone", "g0", `{"k":"gone"}`, atkT0),
		atkIdentify("p1", "", "pa", `{"k":"pa","m":"pa"}`, atkT1, "xid:p1"),
		atkIdentify("p2", "", "pb", `{"k":"pb","n":"pb"}`, atkT1, "xid:p2"),
		atkIdentify("p3", "", "pc", `{"k":"pc","m":"pc"}`, atkT1, "xid:p3"),
		atkIdentify("p4", "", "pd", `{"n":"pd"}`, atkT1, "xid:p4"),
		atkTrack("p5", "pe", atkT1, "xid:p5"),
		atkTrack("p6", "pd", atkT1, "xid:p6"),
	}
	raws := []string{
		atkDelete("d", "gone"),
		atkTrack("j1", "pa", atkT1, "xid:p2"),          // pb into pa
		atkTrack("j2", "pc", atkT1, "xid:p4"),          // pd into pc
		atkAlias("al", "u1", "pb", atkT2),              // previousId on folded pb
		atkTrack("j3", "pd", atkT2, "anonymous_id:pa"), // pc family into pa
		atkTrack("j4", "pb", atkT2, "xid:p5", "xid:n1"),
		atkIdentify("j5", "", "pe", `{"k":"j5"}`, atkT1, "xid:p6"),
		atkTrack("j6", "pd", atkT3, "xid:n2", "xid:n3"),
	}
	for _, c := range []struct {
		name          string
		merges, limit int
	}{{"default", 100, 0}, {"merges2", 2, 0}, {"merges3", 3, 0}, {"xids4", 100, 4}} {
		t.Run(c.name, func(t *testing.T) {
			rules := resolver.DefaultRules()
			rules.MaxMerges = c.merges
			if c.limit > 0 {
				rules = atkLimitRules(c.limit, 0)
			}
			atkRun(t, rules, prefix, raws)
		})
	}
}

// A stored profile that absorbed others in earlier batches is folded into
// an older one: the profiles merged into it before must point at the new
// survivor, and its stored merge count counts toward the cap.
func TestAttackFoldStoredSurvivorIsFolded(t *testing.T) {
	prefix := []string{
		atkIdentify("p1", "", "pa", `{"k":"pa"}`, atkT1, "xid:p1"),
		atkIdentify("p2", "", "pb", `{"k":"pb"}`, atkT1, "xid:p2"),
		atkIdentify("p3", "", "pc", `{"k":"pc","m":"pc"}`, atkT1, "xid:p3"),
		atkIdentify("p4", "", "pd", `{"m":"pd"}`, atkT1, "xid:p4"),
		atkTrack("p5", "pb", atkT1, "xid:p3"), // pc into pb
		atkTrack("p6", "pd", atkT1, "xid:p3"), // pd into pb
	}
	raws := []string{
		atkTrack("n1", "na", atkT1, "xid:n1"),
		atkTrack("j1", "pc", atkT2, "xid:n1"), // new na into pb
		atkTrack("j2", "pa", atkT2, "xid:p4"), // pb's family into pa
		atkTrack("j3", "pd", atkT3, "xid:n3"),
		atkIdentify("j4", "", "na", `{"m":"j4"}`, atkT1),
	}
	for _, merges := range []int{100, 2, 3} {
		t.Run(fmt.Sprint("merges", merges), func(t *testing.T) {
			rules := resolver.DefaultRules()
			rules.MaxMerges = merges
			atkRun(t, rules, prefix, raws)
			atkAcross(t, rules, prefix, raws, len(raws))
		})
	}
}
