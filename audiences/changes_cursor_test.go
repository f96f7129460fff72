package audiences

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
)

func TestErasingTheNewestChangesNeverLetsTheFeedReuseTheirCursors(t *testing.T) {
	onEachEngine(t, testErasedChangeCursorsStayUsed)
}

// Two people enter; the second one, the feed's newest change, is erased.
// The next run's change must come after the cursor a poller already got
// for the erased one, or that poller would never see it.
func testErasedChangeCursorsStayUsed(t *testing.T, db *sqldb.DB) {
	ctx := context.Background()
	at := testNow()
	def := signedUp(t)
	r := NewRunner(db, []Definition{def}, func() time.Time { return at }, nil)
	mustStoreSignup(t, db, 1, "u1", "one@example.com")
	mustStoreSignup(t, db, 2, "u2", "two@example.com")
	mustRunAt(t, r, def.Name)
	polled := mustPollChanges(t, r, def.Name, "")
	if len(polled.Changes) != 2 {
		t.Fatalf("first poll: %+v, want two entries", polled.Changes)
	}

	store := resolver.NewStore(db, resolver.DefaultRules(), time.Now, nil)
	erased := resolver.Identifier{Type: resolver.TypeUserID, Value: "u2"}
	if _, err := store.Delete(ctx, erased, "test"); err != nil {
		t.Fatal(err)
	}
	at = at.Add(time.Hour)
	mustStoreSignup(t, db, 3, "u3", "three@example.com")
	mustRunAt(t, r, def.Name)

	next := mustPollChanges(t, r, def.Name, polled.Next)
	if len(next.Changes) != 1 || next.Changes[0].UserID != "u3" {
		t.Errorf("polled since %s after the erasure: %+v, want u3 entering",
			polled.Next, next.Changes)
	}
	if cursorNumber(t, next.Next) <= cursorNumber(t, polled.Next) {
		t.Errorf("cursor %s after the erasure is not past %s", next.Next, polled.Next)
	}
}

func TestACursorPastTheFeedIsRefusedSayingWhereItEnds(t *testing.T) {
	onEachEngine(t, testUnissuedCursorRefused)
}

func testUnissuedCursorRefused(t *testing.T, db *sqldb.DB) {
	ctx := context.Background()
	def := signedUp(t)
	r := NewRunner(db, []Definition{def}, testNow, nil)
	if _, err := r.Changes(ctx, def.Name, "1", 10); resolver.ErrorCode(err) !=
		resolver.EInvalid {
		t.Errorf("cursor 1 before any change: %v, want EInvalid", err)
	}

	mustStoreSignup(t, db, 1, "u1", "one@example.com")
	mustStoreSignup(t, db, 2, "u2", "two@example.com")
	mustRunAt(t, r, def.Name)
	last := mustPollChanges(t, r, def.Name, "").Next
	if page := mustPollChanges(t, r, def.Name, last); len(page.Changes) != 0 ||
		page.Next != last {
		t.Errorf("polled with the last cursor %s: %+v, want nothing new", last, page)
	}

	past := strconv.FormatInt(cursorNumber(t, last)+1, 10)
	_, err := r.Changes(ctx, def.Name, past, 10)
	if resolver.ErrorCode(err) != resolver.EInvalid ||
		!strings.Contains(err.Error(), "since="+last) {
		t.Errorf("cursor %s past the feed's end %s: %v, want EInvalid naming since=%s",
			past, last, err, last)
	}
}

// mustPollChanges reads up to 10 changes of name after since.
func mustPollChanges(t *testing.T, r *Runner, name, since string) ChangePage {
	t.Helper()
	page, err := r.Changes(context.Background(), name, since, 10)
	if err != nil {
		t.Fatalf("changes of %s since %q: %v", name, since, err)
	}
	return page
}

func cursorNumber(t *testing.T, cursor string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(cursor, 10, 64)
	if err != nil {
		t.Fatalf("cursor %q: %v", cursor, err)
	}
	return n
}
