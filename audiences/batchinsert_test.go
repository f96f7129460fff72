package audiences

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// Rows added to a batchInsert land in full statements and a last partial
// one, each once, in the order they were added (the changes feed pages by
// id), and a row with the wrong number of values is refused by name.
func TestBatchInsertWritesEveryRowInOrder(t *testing.T) {
	ctx := context.Background()
	db := sqltest.MustOpen(t)
	const rows = 2*rowsPerInsert + 37

	err := db.WithTx(ctx, func(tx *sqlx.Tx) error {
		_, err := tx.Exec(`INSERT INTO audience_runs (id, audience, started_ms,
			evaluated_ms, status) VALUES (1, 'a', 0, 0, 'ok')`)
		if err != nil {
			return err
		}
		insert := newBatchInsert(tx, "audience_changes", []string{"audience", "run_id",
			"change", "profile_id", "user_id", "email", "identifiers", "attributes",
			"at_ms"}, "")
		for i := range rows {
			err := insert.add(ctx, "a", int64(1), Entered, int64(rows-i),
				fmt.Sprint("u", i), "", "{}", "{}", int64(0))
			if err != nil {
				return err
			}
		}
		if err := insert.add(ctx, "a", int64(1)); err == nil {
			t.Error("a row of two values for nine columns was accepted")
		}
		return insert.flush(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}

	var profiles []int64
	err = db.Select(&profiles, `SELECT profile_id FROM audience_changes ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]int64, rows)
	for i := range want {
		want[i] = int64(rows - i)
	}
	if !slices.Equal(profiles, want) {
		t.Errorf("%d rows stored, want %d in the order added", len(profiles), rows)
	}
}
