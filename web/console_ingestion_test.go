package web

import (
	"strings"
	"testing"
	"time"
)

// TestEmptyIngestionPageSaysWhenNoWriteKeyIsSet: with no write key the
// tracking API refuses everything, so "send it with a write key" alone
// would send a new user to a 401.
func TestEmptyIngestionPageSaysWhenNoWriteKeyIsSet(t *testing.T) {
	pages, err := parseTemplates(time.Now)
	if err != nil {
		t.Fatal(err)
	}
	for keys, want := range map[int]bool{0: true, 2: false} {
		view := ingestionView{TrackingURL: "http://knit.test/v1/batch", WriteKeys: keys}
		var out strings.Builder
		err := pages["ingestion"].ExecuteTemplate(&out, "layout", page{Title: "Ingestion",
			SignedIn: true, Nav: "ingestion", Data: view})
		if err != nil {
			t.Fatalf("render: %v", err)
		}
		said := strings.Contains(out.String(), "none is set, so the tracking API refuses")
		if said != want {
			t.Errorf("with %d write keys the page says none is set: %v", keys, said)
		}
	}
}
