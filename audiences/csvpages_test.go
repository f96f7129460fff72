package audiences_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/audiences"
	"github.com/knit-cdp/knit/resolver"
)

// pagedPeople is more members than two of an export's pages hold (1,000).
const pagedPeople = 2345

// TestCSVLayoutsAcrossPages exports more members than two pages hold: in
// the json layout every row must carry its own person's traits, nested
// ones assembled, and every layout must list every member once, in profile
// order.
func TestCSVLayoutsAcrossPages(t *testing.T) {
	f := mustFixture(t)
	f.mustIngestInBatches(t, peopleMessages(pagedPeople))
	f.mustRun(t, cartAudience)

	jsonRows := mustExportRows(t, f.runner, audiences.CSVOptions{Layout: "json",
		Columns: []string{"profile_id", "external_ids", "traits"}})
	users := make([]string, len(jsonRows))
	for i, row := range jsonRows {
		users[i] = checkPagedJSONRow(t, row)
	}
	checkProfileOrder(t, jsonRows)

	for _, layout := range []string{"default", "columns"} {
		rows := mustExportRows(t, f.runner, audiences.CSVOptions{Layout: layout,
			Columns: []string{"profile_id", "user_id"}})
		checkProfileOrder(t, rows)
		for i, row := range rows {
			if row[1] != users[i] {
				t.Fatalf("%s row %d is %s, the json layout's is %s", layout, i, row[1],
					users[i])
			}
		}
	}
}

// peopleMessages is, for each of n people, an identify with an email and
// a nested trait that name the person, and a product added two days ago
// that puts them in cart_abandonment.
func peopleMessages(n int) []map[string]any {
	var messages []map[string]any
	for i := range n {
		user := fmt.Sprintf("u%d", i)
		messages = append(messages, map[string]any{"type": "identify",
			"messageId": "id-" + user, "userId": user,
			"timestamp": runnerNow().Add(-30 * 24 * time.Hour).Format(time.RFC3339),
			"traits": map[string]any{"email": user + "@x.test",
				"plan": map[string]any{"seats": i}}},
			productAdded(user, "p1", 48*time.Hour))
	}
	return messages
}

// checkPagedJSONRow checks that a json layout row's traits are those of
// the person its identifiers name, and returns the person's user id.
func checkPagedJSONRow(t *testing.T, row []string) string {
	t.Helper()
	var ids map[string][]string
	var traits struct {
		Email string
		Plan  struct{ Seats int }
	}
	if err := json.Unmarshal([]byte(row[1]), &ids); err != nil {
		t.Fatalf("external_ids %q: %v", row[1], err)
	}
	if err := json.Unmarshal([]byte(row[2]), &traits); err != nil {
		t.Fatalf("traits %q: %v", row[2], err)
	}
	if len(ids["user_id"]) != 1 {
		t.Fatalf("profile %s has user ids %v, want one", row[0], ids["user_id"])
	}
	user := ids["user_id"][0]
	if want := user + "@x.test"; traits.Email != want {
		t.Fatalf("profile %s (%s) has email trait %q, want %q", row[0], user,
			traits.Email, want)
	}
	if want := "u" + strconv.Itoa(traits.Plan.Seats); want != user {
		t.Fatalf("profile %s (%s) has plan.seats %d, which is %s's", row[0], user,
			traits.Plan.Seats, want)
	}
	return user
}

// checkProfileOrder wants pagedPeople rows, their profile ids rising.
func checkProfileOrder(t *testing.T, rows [][]string) {
	t.Helper()
	if len(rows) != pagedPeople {
		t.Fatalf("exported %d members, want %d", len(rows), pagedPeople)
	}
	last := int64(0)
	for i, row := range rows {
		id, err := strconv.ParseInt(row[0], 10, 64)
		if err != nil || id <= last {
			t.Fatalf("row %d has profile %q after %d", i, row[0], last)
		}
		last = id
	}
}

// mustExportRows exports the cart audience with opts and returns its
// records without the header.
func mustExportRows(t *testing.T, runner *audiences.Runner,
	opts audiences.CSVOptions) [][]string {
	t.Helper()
	var out bytes.Buffer
	err := runner.WriteCSVWith(context.Background(), &out, cartAudience, opts)
	if err != nil {
		t.Fatalf("export %+v: %v", opts, err)
	}
	records, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatalf("read export %+v: %v", opts, err)
	}
	return records[1:]
}

// mustIngestInBatches stores messages 500 a call, as a tracking API batch
// would bring them.
func (f fixture) mustIngestInBatches(t testing.TB, messages []map[string]any) {
	t.Helper()
	var batch []*resolver.Message
	for i, fields := range messages {
		batch = append(batch, mustParseFields(t, fields))
		if len(batch) == 500 || i == len(messages)-1 {
			if _, err := f.store.Ingest(context.Background(), batch); err != nil {
				t.Fatalf("ingest: %v", err)
			}
			batch = batch[:0]
		}
	}
}

// TestCSVOnRunNamesTheRunTheFileHolds: a run that commits once the export
// has begun changes neither the file nor the run OnRun names.
func TestCSVOnRunNamesTheRunTheFileHolds(t *testing.T) {
	f := mustFixture(t)
	f.mustIngest(t, identify("u1", "u1@x.test"), productAdded("u1", "p1", 48*time.Hour))
	first := f.mustRun(t, cartAudience)

	var held audiences.Run
	calls := 0
	var out bytes.Buffer
	err := f.runner.WriteCSVWith(context.Background(), &out, cartAudience,
		audiences.CSVOptions{OnRun: func(run audiences.Run) {
			held, calls = run, calls+1
			if out.Len() > 0 {
				t.Error("OnRun was called after the export began writing")
			}
			f.mustIngest(t, orderCompleted("u1", "p1", time.Hour))
			if next := f.mustRun(t, cartAudience); next.ID == first.ID || next.Size != 0 {
				t.Errorf("the run in between is %+v", next)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 || held.ID != first.ID {
		t.Errorf("OnRun called %d times with run %d, want once with %d", calls, held.ID,
			first.ID)
	}
	if !strings.Contains(out.String(), "\n1,u1@x.test,u1,") {
		t.Errorf("the file lost the member of the run it holds:\n%s", out.String())
	}
}
