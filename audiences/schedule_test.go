package audiences

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

func TestSchedulesReadInTheirTimeZoneAcrossClockChanges(t *testing.T) {
	daily := Definition{Name: "d", Schedule: "30 2 * * *", Timezone: "Europe/Paris"}
	hourly := Definition{Name: "h", Schedule: "0 * * * *", Timezone: "Europe/Paris"}
	utc := func(s string) time.Time {
		parsed, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return parsed
	}
	cases := []struct {
		name string
		def  Definition
		from string
		want []string
	}{
		{"an ordinary day runs at 02:30 Paris time", daily, "2026-03-01T12:00:00Z",
			[]string{"2026-03-02T01:30:00Z", "2026-03-03T01:30:00Z"}},
		{"on the day clocks go forward 02:30 does not exist and is skipped", daily,
			"2026-03-28T12:00:00Z", []string{"2026-03-30T00:30:00Z"}},
		{"on the day clocks go back 02:30 happens twice and runs twice", daily,
			"2026-10-24T12:00:00Z", []string{"2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z",
				"2026-10-26T01:30:00Z"}},
		{"an hourly schedule keeps every real hour when clocks go back", hourly,
			"2026-10-24T23:30:00Z", []string{"2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z",
				"2026-10-25T02:00:00Z"}},
		{"CRON_TZ in the schedule itself works too",
			Definition{Name: "c", Schedule: "CRON_TZ=America/New_York 0 9 * * *"},
			"2026-07-01T00:00:00Z", []string{"2026-07-01T13:00:00Z"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			at := utc(tc.from)
			for _, want := range tc.want {
				next, err := tc.def.NextRun(at)
				if err != nil {
					t.Fatal(err)
				}
				if !next.Equal(utc(want)) {
					t.Errorf("after %s: next run %s, want %s", at.UTC(), next.UTC(), want)
				}
				at = next
			}
		})
	}
}

func TestAFailedScheduledRunIsRetried(t *testing.T) {
	db := sqltest.MustOpen(t)
	now := func() time.Time { return time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) }
	runner := NewRunner(db, WithBuiltins(nil), now, nil)
	s, err := NewScheduler(runner, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.cron.Stop()
	s.retries = []time.Duration{time.Millisecond, time.Millisecond}

	// Every run fails: the events it reads are gone.
	if _, err := db.Exec(`ALTER TABLE events RENAME TO events_gone`); err != nil {
		t.Fatal(err)
	}
	s.runJob("cart_abandonment")

	runs, err := runner.Runs(context.Background(), "cart_abandonment", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 {
		t.Fatalf("%d runs, want the first and 2 retries", len(runs))
	}
	for _, run := range runs {
		if run.Status != StatusFailed || run.Error == "" {
			t.Errorf("run %+v, want failed with its reason", run)
		}
	}
}

func TestAnUnknownTimeZoneIsNamed(t *testing.T) {
	err := Validate([]Definition{{Name: "x", Timezone: "Mars/Olympus",
		Condition: &Condition{Performed: &Performed{Selector: Selector{Event: "A"}}}}})
	if err == nil || !strings.Contains(err.Error(), "audiences.x.timezone") {
		t.Errorf("Validate: %v", err)
	}
}

func TestFirstRunsWaitForTheAudiencesTheyRead(t *testing.T) {
	db := sqltest.MustOpen(t)
	now := func() time.Time { return time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) }
	defs := []Definition{
		{Name: "a_reader", Schedule: "0 0 1 1 *",
			Condition: &Condition{InAudience: "z_read"}},
		{Name: "z_read", Schedule: "0 0 1 1 *",
			Condition: &Condition{Performed: &Performed{Selector: Selector{Event: "X"}}}},
	}
	if err := Validate(defs); err != nil {
		t.Fatal(err)
	}
	runner := NewRunner(db, defs, now, nil)
	s, err := NewScheduler(runner, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	s.Stop()

	var order []string
	if err := db.Select(&order, `SELECT audience FROM audience_runs ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(order, []string{"z_read", "a_reader"}) {
		t.Errorf("first runs in order %v, want z_read before a_reader", order)
	}
}

func TestAScheduledRunHappensOnceAcrossProcesses(t *testing.T) {
	tick := time.Date(2026, 11, 27, 12, 15, 7, 0, time.UTC)
	now := func() time.Time { return time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) }
	run := func(t *testing.T, processes []*sqldb.DB) {
		for _, db := range processes {
			s, err := NewScheduler(NewRunner(db, WithBuiltins(nil), now, nil), nil)
			if err != nil {
				t.Fatal(err)
			}
			s.wallClock = func() time.Time { return tick }
			s.runJob("cart_abandonment")
			tick = tick.Add(20 * time.Second) // a slower process, same minute
		}
		var runs int
		if err := processes[0].Get(&runs, `SELECT COUNT(*) FROM audience_runs`); err != nil {
			t.Fatal(err)
		}
		if runs != 1 {
			t.Errorf("%d runs of one scheduled tick across %d processes, want 1",
				runs, len(processes))
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		db := sqltest.MustOpenSQLite(t)
		run(t, []*sqldb.DB{db, db, db})
	})
	t.Run("postgres", func(t *testing.T) {
		run(t, sqltest.MustOpenPostgresPools(t, 3))
	})
}

func TestRecoverInterruptedLeavesRunsOfLiveProcessesAlone(t *testing.T) {
	now := func() time.Time { return time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) }
	running := func(t *testing.T, db *sqldb.DB, name string) {
		t.Helper()
		if _, err := db.Exec(db.Rebind(`INSERT INTO audience_runs (audience, started_ms,
			evaluated_ms, status) VALUES (?, 0, 0, 'running')`), name); err != nil {
			t.Fatal(err)
		}
	}
	statuses := func(t *testing.T, db *sqldb.DB) []string {
		t.Helper()
		var got []string
		if err := db.Select(&got, `SELECT audience || ':' || status FROM audience_runs
			ORDER BY audience`); err != nil {
			t.Fatal(err)
		}
		return got
	}

	t.Run("a dead process's run is marked aborted", func(t *testing.T) {
		db := sqltest.MustOpen(t)
		running(t, db, "cart_abandonment")
		if err := NewRunner(db, WithBuiltins(nil), now, nil).RecoverInterrupted(
			t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := statuses(t, db); !reflect.DeepEqual(got,
			[]string{"cart_abandonment:aborted"}) {
			t.Errorf("runs %v", got)
		}
	})
	t.Run("a live process's run is left running", func(t *testing.T) {
		pools := sqltest.MustOpenPostgresPools(t, 2)
		running(t, pools[0], "cart_abandonment")
		running(t, pools[0], "shoe_reorder")
		hold, release := make(chan struct{}), make(chan struct{})
		go func() {
			_ = pools[0].WithNamedLock(t.Context(), "audience:shoe_reorder", func() error {
				close(hold)
				<-release
				return nil
			})
		}()
		<-hold
		err := NewRunner(pools[1], WithBuiltins(nil), now, nil).RecoverInterrupted(
			t.Context())
		close(release)
		if err != nil {
			t.Fatal(err)
		}
		if got := statuses(t, pools[1]); !reflect.DeepEqual(got,
			[]string{"cart_abandonment:aborted", "shoe_reorder:running"}) {
			t.Errorf("runs %v", got)
		}
	})
}

func TestEveryProcessComputesAtStartEvenInAClaimedMinute(t *testing.T) {
	db := sqltest.MustOpen(t)
	now := func() time.Time { return time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) }
	tick := time.Date(2026, 11, 27, 18, 45, 10, 0, time.UTC)
	defs := []Definition{builtin(t, "cart_abandonment")}
	defs[0].Schedule = "0 0 1 1 *" // no tick during the test

	for range 2 { // a process, then its restart within the same minute
		s, err := NewScheduler(NewRunner(db, defs, now, nil), nil)
		if err != nil {
			t.Fatal(err)
		}
		s.wallClock = func() time.Time { return tick }
		s.runJob("cart_abandonment") // a scheduled run claims the minute
		s.Start()
		s.Stop()
	}
	var runs int
	if err := db.Get(&runs, `SELECT COUNT(*) FROM audience_runs`); err != nil {
		t.Fatal(err)
	}
	// The first process's scheduled run, and each process's run at start;
	// the restart's scheduled run finds the minute claimed.
	if runs != 3 {
		t.Errorf("%d runs, want 3: every start computes, each minute once", runs)
	}
}
