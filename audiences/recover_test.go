package audiences

import (
	"reflect"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// A process killed during a run on PostgreSQL keeps the audience's lock
// until the server ends its last query, which may be after the restarted
// process's RecoverInterrupted looked. The next run, holding the lock,
// marks the left run aborted.
func TestNextRunAbortsARunLeftByADeadSessionOnPostgres(t *testing.T) {
	pools := sqltest.MustOpenPostgresPools(t, 2)
	now := func() time.Time { return time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) }
	if _, err := pools[0].Exec(`INSERT INTO audience_runs (audience, started_ms,
		evaluated_ms, status) VALUES ('shoe_reorder', 0, 0, 'running')`); err != nil {
		t.Fatal(err)
	}
	// The dead process's session, still finishing its query.
	hold, release, released := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(released)
		_ = pools[0].WithNamedLock(t.Context(), "audience:shoe_reorder", func() error {
			close(hold)
			<-release
			return nil
		})
	}()
	<-hold

	runner := NewRunner(pools[1], WithBuiltins(nil), now, nil)
	if err := runner.RecoverInterrupted(t.Context()); err != nil {
		t.Fatal(err)
	}
	close(release) // the query ends; the server drops the session
	<-released
	if _, err := runner.Run(t.Context(), "shoe_reorder"); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := pools[1].Select(&got, `SELECT status FROM audience_runs
		WHERE audience = 'shoe_reorder' ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	if want := []string{StatusAborted, StatusOK}; !reflect.DeepEqual(got, want) {
		t.Errorf("runs %v, want %v", got, want)
	}
}
