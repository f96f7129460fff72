package audiences_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/audiences"
	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

const cartAudience = "cart_abandonment"

// runnerNow is the fixed instant audiences are evaluated at.
func runnerNow() time.Time { return time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC) }

// fixture is a migrated database with a store to feed it and a runner over
// the built-in audiences.
type fixture struct {
	store  *resolver.Store
	runner *audiences.Runner
}

func mustFixture(t testing.TB) fixture {
	t.Helper()
	db := sqltest.MustOpen(t)
	return fixture{
		store:  resolver.NewStore(db, resolver.DefaultRules(), runnerNow, nil),
		runner: audiences.NewRunner(db, audiences.WithBuiltins(nil), runnerNow, nil),
	}
}

// mustIngest stores messages one by one, as Segment delivers them.
func (f fixture) mustIngest(t testing.TB, messages ...map[string]any) {
	t.Helper()
	for _, fields := range messages {
		m := mustParseFields(t, fields)
		if _, err := f.store.Ingest(context.Background(), []*resolver.Message{m}); err != nil {
			t.Fatalf("ingest %s: %v", m.Raw, err)
		}
	}
}

// mustParseFields parses a message given as fields, received from source
// "test" at runnerNow.
func mustParseFields(t testing.TB, fields map[string]any) *resolver.Message {
	t.Helper()
	raw, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	env := resolver.Envelope{Source: "test", ReceivedAt: runnerNow()}
	m, err := resolver.ParseMessage(raw, env)
	if err != nil {
		t.Fatalf("parse %s: %v", raw, err)
	}
	return m
}

func (f fixture) mustRun(t testing.TB, name string) audiences.Run {
	t.Helper()
	run, err := f.runner.Run(context.Background(), name)
	if err != nil {
		t.Fatalf("run %s: %v", name, err)
	}
	return run
}

// mustMemberUsers lists the user_id of every current member, in profile
// order, reading page after page.
func (f fixture) mustMemberUsers(t testing.TB) []string {
	t.Helper()
	var users []string
	cursor := ""
	for {
		page, err := f.runner.Members(context.Background(), cartAudience, cursor, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Members {
			users = append(users, m.UserID)
		}
		if cursor = page.Next; cursor == "" {
			return users
		}
	}
}

// identify links a user to an email (none when email is "").
func identify(user, email string) map[string]any {
	msg := map[string]any{"type": "identify", "messageId": "id-" + user, "userId": user,
		"timestamp": runnerNow().Add(-30 * 24 * time.Hour).Format(time.RFC3339)}
	if email != "" {
		msg["traits"] = map[string]any{"email": email}
	}
	return msg
}

func productAdded(user, product string, ago time.Duration) map[string]any {
	return map[string]any{
		"type": "track", "event": "Product Added", "userId": user,
		"messageId":  fmt.Sprintf("add-%s-%s-%d", user, product, ago),
		"timestamp":  runnerNow().Add(-ago).Format(time.RFC3339Nano),
		"properties": map[string]any{"product_id": product},
	}
}

func orderCompleted(user, product string, ago time.Duration) map[string]any {
	return map[string]any{
		"type": "track", "event": "Order Completed", "userId": user,
		"messageId": fmt.Sprintf("order-%s-%s-%d", user, product, ago),
		"timestamp": runnerNow().Add(-ago).Format(time.RFC3339Nano),
		"properties": map[string]any{
			"products": []any{map[string]any{"product_id": product}},
		},
	}
}

// summary is the part of a run record that tests compare.
type summary struct {
	Size, Entered, Exited int
	Status                string
}

func summarise(run audiences.Run) summary {
	return summary{run.Size, run.Entered, run.Exited, run.Status}
}

func TestRunRecordsSizeEnteredAndExited(t *testing.T) {
	f := mustFixture(t)
	const twoDays = 48 * time.Hour
	f.mustIngest(t,
		identify("u1", "u1@example.com"), productAdded("u1", "p1", twoDays),
		identify("u2", "u2@example.com"), productAdded("u2", "p2", twoDays),
		identify("u3", ""), productAdded("u3", "p3", twoDays),
		identify("u4", "u4@example.com"), productAdded("u4", "p4", 10*24*time.Hour),
	)

	first := f.mustRun(t, cartAudience)
	if got, want := summarise(first), (summary{2, 2, 0, "ok"}); got != want {
		t.Errorf("first run = %+v, want %+v", got, want)
	}
	if !first.EvaluatedAt.Equal(runnerNow()) || first.Audience != cartAudience {
		t.Errorf("first run evaluated %s at %v, want %s at %v",
			first.Audience, first.EvaluatedAt, cartAudience, runnerNow())
	}
	if got, want := f.mustMemberUsers(t), []string{"u1", "u2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("members after the first run = %q, want %q (u3 has no email)", got, want)
	}

	// u1 buys the product and leaves; u4 adds a new one and enters.
	f.mustIngest(t,
		orderCompleted("u1", "p1", 24*time.Hour),
		productAdded("u4", "p5", 3*time.Hour),
	)
	second := f.mustRun(t, cartAudience)
	if got, want := summarise(second), (summary{2, 1, 1, "ok"}); got != want {
		t.Errorf("second run = %+v, want %+v", got, want)
	}
	if got, want := f.mustMemberUsers(t), []string{"u2", "u4"}; !reflect.DeepEqual(got, want) {
		t.Errorf("members after the second run = %q, want %q", got, want)
	}

	last, err := f.runner.LastRun(context.Background(), cartAudience)
	if err != nil {
		t.Fatal(err)
	}
	if last.ID != second.ID || summarise(last) != summarise(second) {
		t.Errorf("stored run = %+v, want %+v", last, second)
	}
}

func TestRunLeavesOutMembersWithoutEmail(t *testing.T) {
	f := mustFixture(t)
	f.mustIngest(t,
		identify("u1", ""), productAdded("u1", "p1", 48*time.Hour),
		productAdded("u2", "p2", 48*time.Hour),
	)

	run := f.mustRun(t, cartAudience)
	if got, want := summarise(run), (summary{0, 0, 0, "ok"}); got != want {
		t.Errorf("run = %+v, want %+v", got, want)
	}
	if got := f.mustMemberUsers(t); len(got) != 0 {
		t.Errorf("members = %q, want none", got)
	}
}

func TestMembersPagesInProfileOrder(t *testing.T) {
	f := mustFixture(t)
	var want []string
	for i := 1; i <= 5; i++ {
		user := fmt.Sprintf("u%d", i)
		f.mustIngest(t, identify(user, user+"@example.com"),
			productAdded(user, "p1", 48*time.Hour))
		want = append(want, user)
	}
	run := f.mustRun(t, cartAudience)

	tests := []struct {
		name      string
		limit     int
		wantPages [][]int64
	}{
		{name: "pages of two end with a page of one", limit: 2,
			wantPages: [][]int64{{1, 2}, {3, 4}, {5}}},
		{name: "a limit equal to the size gives one page", limit: 5,
			wantPages: [][]int64{{1, 2, 3, 4, 5}}},
		{name: "a limit above the size gives one page", limit: 100,
			wantPages: [][]int64{{1, 2, 3, 4, 5}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pages [][]int64
			var users []string
			cursor := ""
			for range 10 {
				page, err := f.runner.Members(context.Background(), cartAudience,
					cursor, tt.limit)
				if err != nil {
					t.Fatal(err)
				}
				if page.Run.ID != run.ID {
					t.Errorf("page of run %d, want run %d", page.Run.ID, run.ID)
				}
				var ids []int64
				for _, m := range page.Members {
					ids = append(ids, m.ProfileID)
					users = append(users, m.UserID)
				}
				pages = append(pages, ids)
				if page.Next == "" {
					break
				}
				if strings.Contains(page.Next, ":") {
					t.Errorf("next cursor %q is not opaque", page.Next)
				}
				cursor = page.Next
			}
			if !reflect.DeepEqual(pages, tt.wantPages) {
				t.Errorf("pages = %v, want %v", pages, tt.wantPages)
			}
			if !reflect.DeepEqual(users, want) {
				t.Errorf("users = %q, want %q", users, want)
			}
		})
	}
}

func TestMembersRefusesACursorItCannotUse(t *testing.T) {
	f := mustFixture(t)
	for _, user := range []string{"u1", "u2", "u3"} {
		f.mustIngest(t, identify(user, user+"@example.com"),
			productAdded(user, "p1", 48*time.Hour))
	}
	f.mustRun(t, cartAudience)
	page, err := f.runner.Members(context.Background(), cartAudience, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	older := page.Next
	if older == "" {
		t.Fatal("first page has no next cursor")
	}
	f.mustRun(t, cartAudience)

	tests := []struct {
		name     string
		cursor   string
		wantCode string
	}{
		{name: "a cursor from an older run is gone", cursor: older, wantCode: resolver.EGone},
		{name: "a cursor that is not base64 is invalid", cursor: "%%%",
			wantCode: resolver.EInvalid},
		{name: "a cursor without a position is invalid", cursor: "MTI",
			wantCode: resolver.EInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.runner.Members(context.Background(), cartAudience, tt.cursor, 1)
			if got := resolver.ErrorCode(err); got != tt.wantCode {
				t.Errorf("Members(%q) error = %v (code %q), want code %q",
					tt.cursor, err, got, tt.wantCode)
			}
		})
	}
}

func TestWriteCSV(t *testing.T) {
	f := mustFixture(t)
	const addedAt = "2026-12-02T12:00:00.000Z"
	products := []string{"a,\"b\"\nc", "=SUM(A1)", "+1", "-2", "@x", "\tx", "\rx"}
	for i, product := range products {
		user := fmt.Sprintf("u%d", i+1)
		f.mustIngest(t, identify(user, user+"@example.com"),
			productAdded(user, product, 48*time.Hour))
	}
	f.mustIngest(t, productAdded("u1", "plain", 49*time.Hour))
	f.mustIngest(t, identify("=1+2", "formula@example.com"),
		productAdded("=1+2", "p9", 48*time.Hour))
	f.mustIngest(t, identify("u9", "u9@example.com"),
		productAdded("u9", "0", 48*time.Hour), productAdded("u9", "=1+1", 48*time.Hour))
	f.mustRun(t, cartAudience)

	var out bytes.Buffer
	if err := f.runner.WriteCSV(context.Background(), &out, cartAudience); err != nil {
		t.Fatal(err)
	}

	// Every list item is neutralised, since spreadsheets in many locales
	// split cells on ";".
	want := "profile_id,email,user_id,abandoned_products,added_at\n" +
		"1,u1@example.com,u1,\"a,\"\"b\"\"\nc;plain\"," + addedAt + "\n" +
		"2,u2@example.com,u2,'=SUM(A1)," + addedAt + "\n" +
		"3,u3@example.com,u3,'+1," + addedAt + "\n" +
		"4,u4@example.com,u4,'-2," + addedAt + "\n" +
		"5,u5@example.com,u5,'@x," + addedAt + "\n" +
		"6,u6@example.com,u6,'\tx," + addedAt + "\n" +
		"7,u7@example.com,u7,\"'\rx\"," + addedAt + "\n" +
		"8,formula@example.com,'=1+2,p9," + addedAt + "\n" +
		"9,u9@example.com,u9,0;'=1+1," + addedAt + "\n"
	if got := out.String(); got != want {
		t.Errorf("csv:\ngot  %q\nwant %q", got, want)
	}

	records, err := csv.NewReader(strings.NewReader(out.String())).ReadAll()
	if err != nil {
		t.Fatalf("the export does not read back as CSV: %v", err)
	}
	if got, want := records[1][3], "a,\"b\"\nc;plain"; got != want {
		t.Errorf("first member's products read back as %q, want %q", got, want)
	}
	if got, want := len(records), 10; got != want {
		t.Errorf("read back %d records, want %d", got, want)
	}
}

func TestSafeCell(t *testing.T) {
	tests := []struct {
		name string
		text string
		want string
	}{
		{name: "empty text stays empty", text: "", want: ""},
		{name: "plain text is unchanged", text: "jane@example.com", want: "jane@example.com"},
		{name: "a leading = is neutralised", text: "=SUM(A1)", want: "'=SUM(A1)"},
		{name: "a leading + is neutralised", text: "+33 6", want: "'+33 6"},
		{name: "a leading - is neutralised", text: "-2", want: "'-2"},
		{name: "a leading @ is neutralised", text: "@cmd", want: "'@cmd"},
		{name: "a leading tab is neutralised", text: "\t=1", want: "'\t=1"},
		{name: "a leading carriage return is neutralised", text: "\r=1", want: "'\r=1"},
		{name: "a sign after the first character is kept", text: "a=b-c", want: "a=b-c"},
		{name: "a number is unchanged", text: "42", want: "42"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := audiences.SafeCell(tt.text); got != tt.want {
				t.Errorf("SafeCell(%q) = %q, want %q", tt.text, got, tt.want)
			}
		})
	}
}

func TestUnknownAudienceIsNotFound(t *testing.T) {
	f := mustFixture(t)
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
	}{
		{name: "Run", call: func() error {
			_, err := f.runner.Run(ctx, "nope")
			return err
		}},
		{name: "Members", call: func() error {
			_, err := f.runner.Members(ctx, "nope", "", 10)
			return err
		}},
		{name: "WriteCSV", call: func() error {
			return f.runner.WriteCSV(ctx, &bytes.Buffer{}, "nope")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" on an unknown audience is not found", func(t *testing.T) {
			err := tt.call()
			if got := resolver.ErrorCode(err); got != resolver.ENotFound {
				t.Errorf("error = %v (code %q), want code %q", err, got, resolver.ENotFound)
			}
		})
	}
}

func TestNeverComputedAudienceIsNotFound(t *testing.T) {
	f := mustFixture(t)
	_, err := f.runner.Members(context.Background(), cartAudience, "", 10)
	if got := resolver.ErrorCode(err); got != resolver.ENotFound {
		t.Errorf("Members before any run: error = %v (code %q), want code %q",
			err, got, resolver.ENotFound)
	}
}

func TestCancelledRunIsAbortedAndKeepsThePreviousResult(t *testing.T) {
	f := mustFixture(t)
	f.mustIngest(t, identify("u1", "u1@example.com"), productAdded("u1", "p1", 48*time.Hour))
	previous := f.mustRun(t, cartAudience)

	f.mustIngest(t, identify("u2", "u2@example.com"), productAdded("u2", "p2", 48*time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	run, err := f.runner.Run(ctx, cartAudience)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run with a cancelled context: error = %v, want context.Canceled", err)
	}
	if run.Status != audiences.StatusAborted {
		t.Errorf("returned run status = %q, want %q", run.Status, audiences.StatusAborted)
	}

	last, err := f.runner.LastRun(context.Background(), cartAudience)
	if err != nil {
		t.Fatal(err)
	}
	if last.ID == previous.ID || last.Status != audiences.StatusAborted {
		t.Errorf("latest run = %+v, want a new run with status %q",
			last, audiences.StatusAborted)
	}
	current, err := f.runner.CurrentRun(context.Background(), cartAudience)
	if err != nil {
		t.Fatal(err)
	}
	if current.ID != previous.ID {
		t.Errorf("current run = %d, want the previous run %d", current.ID, previous.ID)
	}
	if got, want := f.mustMemberUsers(t), []string{"u1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("members = %q, want the previous result %q", got, want)
	}
}

func TestAbortEndsRunsStartedWithALiveContext(t *testing.T) {
	f := mustFixture(t)
	f.mustIngest(t, identify("u1", "u1@example.com"), productAdded("u1", "p1", 48*time.Hour))
	previous := f.mustRun(t, cartAudience)

	f.runner.Abort()
	run, err := f.runner.Run(context.Background(), cartAudience)
	if !errors.Is(err, context.Canceled) || run.Status != audiences.StatusAborted {
		t.Fatalf("Run after Abort: status %q, error %v; want aborted", run.Status, err)
	}
	current, err := f.runner.CurrentRun(context.Background(), cartAudience)
	if err != nil || current.ID != previous.ID {
		t.Errorf("current run %d (err %v), want the previous run %d", current.ID, err, previous.ID)
	}
}
