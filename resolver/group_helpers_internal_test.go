package resolver

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver/sqldb"
)

// holdWriteLock keeps the database's write lock from another transaction
// until the returned function is called, so requests pile up meanwhile.
func holdWriteLock(t *testing.T, db *sqldb.DB) (release func()) {
	held, done := make(chan struct{}), make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		errs <- db.WithWriteTx(context.Background(), func(*sqlx.Tx) error {
			close(held)
			<-done
			return nil
		})
	}()
	<-held
	return func() {
		close(done)
		if err := <-errs; err != nil {
			t.Errorf("hold write lock: %v", err)
		}
	}
}

// poisonEvents makes the database refuse to store the event with
// messageID, as a failing disk or constraint would.
func poisonEvents(t *testing.T, db *sqldb.DB, messageID string) {
	t.Helper()
	statements := []string{fmt.Sprintf(`CREATE TRIGGER poison BEFORE INSERT ON events
		WHEN NEW.message_id = '%s' BEGIN SELECT RAISE(ABORT, 'poisoned'); END`, messageID)}
	if db.Dialect() == sqldb.Postgres {
		statements = []string{
			fmt.Sprintf(`CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN
				IF NEW.message_id = '%s' THEN RAISE EXCEPTION 'poisoned'; END IF;
				RETURN NEW; END $$ LANGUAGE plpgsql`, messageID),
			`CREATE TRIGGER poison BEFORE INSERT ON events
				FOR EACH ROW EXECUTE FUNCTION poison()`,
		}
	}
	for _, s := range statements {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("poison events: %v", err)
		}
	}
}

// waitForCallersInIngest returns once n goroutines are blocked inside
// GroupCommitter.Ingest: one waiting for its transaction, which waits for
// the held lock, and the others queued behind it. A fixed sleep was not
// enough on a loaded machine: callers not yet queued when the lock was
// released arrived one at a time, each to an idle committer.
func waitForCallersInIngest(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute) // a guard against hanging only
	for time.Now().Before(deadline) {
		if callersInIngest() >= n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("only %d of %d callers reached the committer", callersInIngest(), n)
}

// callersInIngest counts the goroutines blocked in a select inside
// GroupCommitter.Ingest, from a dump of every goroutine's stack.
func callersInIngest() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}

	count := 0
	for _, stack := range strings.Split(string(buf), "\n\n") {
		blocked := strings.Contains(stack, " [select")
		if blocked && strings.Contains(stack, "(*GroupCommitter).Ingest(") {
			count++
		}
	}
	return count
}
