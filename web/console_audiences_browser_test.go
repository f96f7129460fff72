package web_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// checkAudiencesTable checks the audiences page lists both built-in
// audiences with Jane as their one member and a CSV link each.
func checkAudiencesTable(t *testing.T, ctx context.Context) {
	t.Helper()
	rows := mustRows(t, ctx, "table.audiences")
	var names []string
	for _, row := range rows {
		if len(row) != 5 {
			t.Fatalf("audience row has %d cells, want 5: %q", len(row), row)
		}
		name, _, _ := strings.Cut(row[0], "\n")
		names = append(names, name)
		if row[1] != "1" {
			t.Errorf("%s: size %q, want 1", name, row[1])
		}
		if !strings.Contains(row[2], "27 Nov 2026 12:00") {
			t.Errorf("%s: last computed %q, want 27 Nov 2026 12:00", name, row[2])
		}
		if row[4] != "Download CSV Run now" {
			t.Errorf("%s: action cell %q, want Download CSV and Run now", name, row[4])
		}
	}
	if want := []string{"cart_abandonment", "shoe_reorder"}; !slices.Equal(names, want) {
		t.Fatalf("audiences listed = %q, want %q", names, want)
	}

	links := mustRun(t, ctx, chromedp.Evaluate[[][]string](`Array.from(
		document.querySelectorAll("table.audiences a"),
		a => [a.textContent.trim(), a.getAttribute("href"), String(a.hasAttribute("download"))])`))
	want := [][]string{
		{"Download CSV", "/audiences/cart_abandonment.csv", "true"},
		{"Download CSV", "/audiences/shoe_reorder.csv", "true"},
	}
	if !slices.EqualFunc(links, want, slices.Equal) {
		t.Errorf("CSV links = %q, want %q", links, want)
	}
}
