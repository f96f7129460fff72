package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tabletStory: Jane signs up on a shop's tablet; a stranger later adds a
// product on the same tablet without signing in. The tablet's device id
// fuses them, so Jane is wrongly in the cart abandonment audience.
const tabletStory = `{"type":"identify","messageId":"t1","anonymousId":"jane-anon","timestamp":"2026-11-25T10:00:00Z","traits":{"email":"jane@shop.test"},"context":{"device":{"id":"shop-tablet","type":"ios"}}}
{"type":"track","messageId":"t2","anonymousId":"stranger-anon","event":"Product Added","timestamp":"2026-11-25T11:00:00Z","properties":{"product_id":"shoe-x"},"context":{"device":{"id":"shop-tablet","type":"ios"}}}
{"type":"track","messageId":"t3","userId":"bob","event":"Product Added","timestamp":"2026-11-25T12:00:00Z","properties":{"product_id":"sock-1"},"context":{"traits":{"email":"bob@shop.test"}}}
`

func cartEmails(t *testing.T, db string) string {
	t.Helper()
	mustRun(t, "audiences", "run", "cart_abandonment", "--db", db,
		"--clock", "2026-11-27T12:00:00Z")
	var emails []string
	for _, m := range exportedMembers(t, db, "cart_abandonment") {
		emails = append(emails, m.Email)
	}
	return strings.Join(emails, " ")
}

func mustTabletDB(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	input := filepath.Join(dir, "tablet.ndjson")
	if err := os.WriteFile(input, []byte(tabletStory), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "k.db")
	mustRun(t, "import", "--db", db, input)
	return db
}

func TestUnlinkEndToEnd(t *testing.T) {
	db := mustTabletDB(t)
	if got := cartEmails(t, db); got != "jane@shop.test bob@shop.test" {
		t.Fatalf("before: cart abandonment holds %q, want Jane (wrongly) and Bob", got)
	}

	mustRun(t, "identity", "unlink", "ios.id:shop-tablet", "--db", db)
	if got := cartEmails(t, db); got != "bob@shop.test" {
		t.Errorf("after unlink: cart abandonment holds %q, want only Bob", got)
	}
	checkCounts(t, db, map[string]int{
		`SELECT COUNT(*) FROM profiles WHERE merged_into IS NULL AND retired_ms IS NULL`: 3,
		`SELECT COUNT(*) FROM events WHERE profile_id IS NULL`:                           0,
		`SELECT COUNT(*) FROM identities WHERE value = 'shop-tablet'`:                    0,
	})
}

func TestDeleteEndToEnd(t *testing.T) {
	db := mustTabletDB(t)
	mustRun(t, "identity", "unlink", "ios.id:shop-tablet", "--db", db)
	if got := cartEmails(t, db); got != "bob@shop.test" {
		t.Fatalf("before: cart abandonment holds %q, want Bob", got)
	}

	mustRun(t, "profiles", "delete", "user_id:bob", "--db", db)
	// Before the next run the result already lacks Bob, and says so in size.
	if left := exportedMembers(t, db, "cart_abandonment"); len(left) != 0 {
		t.Errorf("Bob is still exported after his deletion: %v", left)
	}
	if got := cartEmails(t, db); got != "" {
		t.Errorf("after delete: cart abandonment holds %q, want nobody", got)
	}
	checkCounts(t, db, map[string]int{
		`SELECT COUNT(*) FROM events WHERE raw LIKE '%bob%'`:       0,
		`SELECT COUNT(*) FROM identities WHERE value LIKE '%bob%'`: 0,
		`SELECT COUNT(*) FROM profile_deletions`:                   1,
	})
}

func checkCounts(t *testing.T, dbPath string, want map[string]int) {
	t.Helper()
	db := mustOpenReadOnly(t, dbPath)
	for query, n := range want {
		var got int
		mustScan(t, db, query, &got)
		if got != n {
			t.Errorf("%s = %d, want %d", query, got, n)
		}
	}
}

func TestDeleteAlsoErasesAudienceHistoryAndDeliveries(t *testing.T) {
	db := mustTabletDB(t)
	config := mustWriteConfig(t, `audiences:
  - name: cart_abandonment
    destinations: [{url: "http://127.0.0.1:9/hook"}]
`)
	mustRun(t, "audiences", "run", "cart_abandonment", "--db", db, "--config", config,
		"--clock", "2026-11-27T12:00:00Z")
	checkCounts(t, db, map[string]int{
		`SELECT COUNT(*) FROM audience_changes WHERE email = 'bob@shop.test'`: 1,
		`SELECT COUNT(*) FROM outbox WHERE body LIKE '%bob@shop.test%'`:       1,
	})

	mustRun(t, "profiles", "delete", "user_id:bob", "--db", db)
	checkCounts(t, db, map[string]int{
		`SELECT COUNT(*) FROM audience_changes WHERE email = 'bob@shop.test'`: 0,
		`SELECT COUNT(*) FROM outbox WHERE body LIKE '%bob%'`:                 0,
	})
}
