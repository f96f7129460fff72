package audiences_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/audiences"
)

// TestAttackHashEmailCoversNestedAndListedTraitEmails: with HashEmail, the
// json layout must not write any email in clear, wherever it sits among
// the traits.
func TestAttackHashEmailCoversNestedAndListedTraitEmails(t *testing.T) {
	f := mustFixture(t)
	f.mustIngest(t, map[string]any{"type": "identify", "messageId": "id-u1", "userId": "u1",
		"timestamp": runnerNow().Add(-30 * 24 * time.Hour).Format(time.RFC3339),
		"traits": map[string]any{"email": "Top@X.test",
			"contact": map[string]any{"email": "nested@x.test"},
			"emails":  []any{"listed@x.test"}}},
		productAdded("u1", "p1", 48*time.Hour))
	f.mustRun(t, cartAudience)

	var out bytes.Buffer
	err := f.runner.WriteCSVWith(context.Background(), &out, cartAudience,
		audiences.CSVOptions{Layout: "json", HashEmail: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, email := range []string{"top@x.test", "nested@x.test", "listed@x.test"} {
		if strings.Contains(strings.ToLower(out.String()), email) {
			t.Errorf("hash_email export writes %s in clear:\n%s", email, out.String())
		}
	}
}

// hookWriter calls hook once, at its first write, then keeps what it is
// given.
type hookWriter struct {
	bytes.Buffer
	hook func()
}

func (w *hookWriter) Write(p []byte) (int, error) {
	if w.hook != nil {
		hook := w.hook
		w.hook = nil
		hook()
	}
	return w.Buffer.Write(p)
}

// TestAttackJSONExportIsOneSnapshotWhileTraitsAndResultChange: after the
// first page is written, every person's traits change, a third of them
// complete their order and the audience runs again. The rest of the file
// must still be the snapshot the export began in.
func TestAttackJSONExportIsOneSnapshotWhileTraitsAndResultChange(t *testing.T) {
	f := mustFixture(t)
	f.mustIngestInBatches(t, peopleMessages(pagedPeople))
	f.mustRun(t, cartAudience)

	w := &hookWriter{}
	w.hook = func() {
		var changes []map[string]any
		for i := range pagedPeople {
			user := fmt.Sprintf("u%d", i)
			changes = append(changes, map[string]any{"type": "identify",
				"messageId": "id2-" + user, "userId": user,
				"timestamp": runnerNow().Add(-time.Hour).Format(time.RFC3339),
				"traits": map[string]any{"email": "changed-" + user + "@x.test",
					"plan": map[string]any{"seats": -1}}})
			if i%3 == 0 {
				changes = append(changes, orderCompleted(user, "p1", time.Hour))
			}
		}
		f.mustIngestInBatches(t, changes)
		f.mustRun(t, cartAudience)
	}
	err := f.runner.WriteCSVWith(context.Background(), w, cartAudience,
		audiences.CSVOptions{Layout: "json"})
	if err != nil {
		t.Fatal(err)
	}
	if w.hook != nil {
		t.Fatal("the hook never ran")
	}
	records, err := csv.NewReader(&w.Buffer).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	rows := records[1:]
	for _, row := range rows {
		checkPagedJSONRow(t, row)
	}
	checkProfileOrder(t, rows)
}

// TestAttackJSONExportPageBoundaries: every member once, whatever the size
// against the page (1,000).
func TestAttackJSONExportPageBoundaries(t *testing.T) {
	for _, n := range []int{0, 1, 999, 1000, 1001, 2000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			f := mustFixture(t)
			// one person out of the audience, so that a run happens at 0.
			messages := append(peopleMessages(n), identify("outsider", "o@x.test"))
			f.mustIngestInBatches(t, messages)
			f.mustRun(t, cartAudience)
			var out bytes.Buffer
			err := f.runner.WriteCSVWith(context.Background(), &out, cartAudience,
				audiences.CSVOptions{Layout: "json"})
			if err != nil {
				t.Fatal(err)
			}
			records, err := csv.NewReader(&out).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if len(records) != n+1 {
				t.Fatalf("%d records, want header and %d", len(records), n)
			}
			seen := map[string]bool{}
			for _, row := range records[1:] {
				user := checkPagedJSONRow(t, row)
				if seen[user] {
					t.Fatalf("%s twice", user)
				}
				seen[user] = true
			}
		})
	}
}

// TestAttackJSONExportCellsAreSafe: traits and identifiers starting with
// formula characters cannot make a cell start with one.
func TestAttackJSONExportCellsAreSafe(t *testing.T) {
	f := mustFixture(t)
	f.mustIngest(t, map[string]any{"type": "identify", "messageId": "id-x", "userId": "=1+1",
		"anonymousId": "@SUM(A1)",
		"timestamp":   runnerNow().Add(-30 * 24 * time.Hour).Format(time.RFC3339),
		"traits":      map[string]any{"=cmd": "+1", "-x": "@y"}},
		productAdded("=1+1", "p1", 48*time.Hour))
	f.mustRun(t, cartAudience)
	for _, layout := range []string{"json", "columns", "default"} {
		var out bytes.Buffer
		err := f.runner.WriteCSVWith(context.Background(), &out, cartAudience,
			audiences.CSVOptions{Layout: layout, BOM: true})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(out.String(), "\ufeff") {
			t.Errorf("%s: no BOM", layout)
		}
		text := strings.TrimPrefix(out.String(), "\ufeff")
		records, err := csv.NewReader(strings.NewReader(text)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range records[1:] {
			for _, cell := range row {
				if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
					t.Errorf("%s: cell %q", layout, cell)
				}
			}
			if layout == "json" {
				var traits map[string]any
				if err := json.Unmarshal([]byte(row[2]), &traits); err != nil || traits["=cmd"] != "+1" {
					t.Errorf("json traits %q (%v)", row[2], err)
				}
			}
		}
	}
}

// TestAttackJSONExportMemberMergedAwayKeepsTraits: two members merge after
// the run; the export (the traits "as the download starts") gives the
// merged-away member no traits at all, though the person still has them.
func TestAttackJSONExportMemberMergedAwayKeepsTraits(t *testing.T) {
	f := mustFixture(t)
	at := runnerNow().Add(-30 * 24 * time.Hour).Format(time.RFC3339)
	f.mustIngest(t,
		map[string]any{"type": "identify", "messageId": "i1", "userId": "u1", "timestamp": at,
			"traits": map[string]any{"plan": "pro", "email": "u1@x.test"}},
		map[string]any{"type": "identify", "messageId": "i2", "anonymousId": "a1", "timestamp": at,
			"traits": map[string]any{"plan": "pro", "email": "a1@x.test"}},
		productAdded("u1", "p1", 48*time.Hour),
		map[string]any{"type": "track", "event": "Product Added", "anonymousId": "a1",
			"messageId": "add-a1", "timestamp": runnerNow().Add(-48 * time.Hour).Format(time.RFC3339),
			"properties": map[string]any{"product_id": "p2"}})
	run := f.mustRun(t, cartAudience)
	if run.Size != 2 {
		t.Skipf("audience has %d members, want 2", run.Size)
	}
	f.mustIngest(t, map[string]any{"type": "track", "event": "E", "userId": "u1",
		"anonymousId": "a1", "messageId": "link",
		"timestamp": runnerNow().Add(-time.Hour).Format(time.RFC3339)})

	rows := mustExportRows(t, f.runner, audiences.CSVOptions{Layout: "json"})
	for _, row := range rows {
		if row[2] == "{}" {
			t.Errorf("member %s (ids %s) exported with no traits, the person has plan=pro", row[0], row[1])
		}
	}
}
