package migrations

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	_ "github.com/mattn/go-sqlite3"
)

// Migration 00015 carries each identity link from its messageId to its
// event's id and back, dropping links whose event is gone.
func TestIdentityLinksMoveToEventIdsAndBack(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	provider, err := newProvider(db, "sqlite")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provider.UpTo(ctx, 14); err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, `INSERT INTO events (id, message_id, source, type, ts_ms,
		received_ms, raw) VALUES (7, 'm-7', 's', 'track', 1, 1, '{}'),
		(9, 'm-9', 's', 'track', 1, 1, '{}')`)
	mustExec(t, db, `INSERT INTO identity_links (message_id, type, value) VALUES
		('m-7', 'user_id', 'u1'), ('m-7', 'anonymous_id', 'a1'),
		('m-9', 'user_id', 'u1'), ('m-gone', 'user_id', 'u2')`)

	if _, err := provider.UpTo(ctx, 15); err != nil {
		t.Fatal(err)
	}
	wantRows(t, db, `SELECT event_id || ' ' || type || ' ' || value FROM identity_links
		ORDER BY 1`, "7 anonymous_id a1", "7 user_id u1", "9 user_id u1")

	if _, err := provider.DownTo(ctx, 14); err != nil {
		t.Fatal(err)
	}
	wantRows(t, db, `SELECT message_id || ' ' || type || ' ' || value FROM identity_links
		ORDER BY 1`, "m-7 anonymous_id a1", "m-7 user_id u1", "m-9 user_id u1")
}

func mustExec(t *testing.T, db *sql.DB, query string) {
	t.Helper()
	if _, err := db.Exec(query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func wantRows(t *testing.T, db *sql.DB, query string, want ...string) {
	t.Helper()
	rows, err := db.Query(query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var row string
		if err := rows.Scan(&row); err != nil {
			t.Fatal(err)
		}
		got = append(got, row)
	}
	if len(got) != len(want) {
		t.Fatalf("rows %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("row %d = %q, want %q", i, got[i], want[i])
		}
	}
}
