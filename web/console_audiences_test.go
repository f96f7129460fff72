package web

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/audiences"
)

func TestAttributesAreWrittenForPeople(t *testing.T) {
	for _, tc := range []struct {
		value any
		want  string
	}{
		{nil, ""},
		{"shoe-c", "shoe-c"},
		{json.Number("1234567.25"), "1,234,567.25"},
		{json.Number("-1500"), "-1,500"},
		{json.Number("1e21"), "1e21"},
		{312.5, "312.5"},
		{[]any{"shoe-c", "sock-1"}, "shoe-c, sock-1"},
		{map[string]any{"a": 1}, `{"a":1}`},
		{true, "true"},
	} {
		if got := attrText(tc.value); got != tc.want {
			t.Errorf("attrText(%#v) = %q, want %q", tc.value, got, tc.want)
		}
	}
	added := newAttrView("added_at", "2026-12-04T10:00:00.000Z")
	if added.Label != "Added at" || !added.Time.Equal(time.Date(2026, 12, 4, 10, 0, 0, 0,
		time.UTC)) || added.Text != "" {
		t.Errorf("a time attribute reads %+v", added)
	}
}

func TestRunDurationsAndPageNumbers(t *testing.T) {
	start := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		35 * time.Millisecond: "35 ms", 2400 * time.Millisecond: "2.4 s",
		12 * time.Second: "12 s", 185 * time.Second: "3 min 5 s",
	} {
		run := audiences.Run{StartedAt: start, FinishedAt: start.Add(d)}
		if got := tookText(run); got != want {
			t.Errorf("tookText(%v) = %q, want %q", d, got, want)
		}
	}
	if got := tookText(audiences.Run{StartedAt: start}); got != "" {
		t.Errorf("a running run took %q", got)
	}
	for text, want := range map[string]int{"": 1, "0": 1, "-3": 1, "x": 1, "7": 7,
		"99999999999": maxMemberPage} {
		if got := pageNumber(text); got != want {
			t.Errorf("pageNumber(%q) = %d, want %d", text, got, want)
		}
	}
	if got := memberPageURL("/audience/a", "50% off", 3); got !=
		"/audience/a?page=3&q=50%25+off#members" {
		t.Errorf("memberPageURL = %q", got)
	}
}

func TestSizeChartSummary(t *testing.T) {
	at := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	var runs []audiences.Run
	for i, size := range []int{1200, 900, 15000} {
		runs = append(runs, audiences.Run{EvaluatedAt: at.Add(time.Duration(i) * time.Hour),
			Size: size})
	}
	chart := newSizeChart("size-a", runs, 120)
	want := "Members over the last 3 runs: from 1,200 to 15,000; lowest 900, highest 15,000."
	if chart.Label != want || !chart.Drawable || chart.Spec.X[2] != at.Unix()+7200 ||
		chart.Spec.Series[0].Values[1] != 900 {
		t.Errorf("chart = %+v", chart)
	}
	if chart := newSizeChart("size-a", runs[:1], 120); chart.Drawable ||
		chart.Label != "Members: 1,200 at the one run so far." {
		t.Errorf("one run: %+v", chart)
	}
	if chart := newSizeChart("size-a", nil, 120); chart.Drawable ||
		!strings.HasPrefix(chart.Label, "No size history yet") {
		t.Errorf("no runs: %+v", chart)
	}
}

// TestSizeChartPointsRiseInTime: runs evaluated at clocks chosen out of
// order (knit audiences run --clock) are drawn in time order, and runs all
// evaluated at one time are not drawn at all (no axis to draw them on).
func TestSizeChartPointsRiseInTime(t *testing.T) {
	at := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	later := at.Add(72 * time.Hour)
	runs := []audiences.Run{{EvaluatedAt: at, Size: 1}, {EvaluatedAt: later, Size: 0},
		{EvaluatedAt: at, Size: 2}, {EvaluatedAt: at, Size: 3}}
	chart := newSizeChart("size-a", runs, 120)
	wantX := []int64{at.Unix(), at.Unix(), at.Unix(), later.Unix()}
	if !slices.Equal(chart.Spec.X, wantX) ||
		!slices.Equal(chart.Spec.Series[0].Values, []int64{1, 2, 3, 0}) || !chart.Drawable {
		t.Errorf("chart = %+v, want x %v and sizes 1, 2, 3, 0", chart, wantX)
	}
	if !strings.Contains(chart.Label, "from 1 to 3") {
		t.Errorf("summary %q should follow the runs' order", chart.Label)
	}
	if chart := newSizeChart("size-a", runs[2:], 120); chart.Drawable {
		t.Errorf("runs at one time drawn: %+v", chart)
	}
}

// mustRenderAudience renders the audience page over data.
func mustRenderAudience(t *testing.T, data audienceData) string {
	t.Helper()
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	pages, err := parseTemplates(func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	err = pages["audience"].ExecuteTemplate(&out, "layout", page{Title: data.Name,
		SignedIn: true, Nav: "audiences", Data: data})
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return out.String()
}

func TestAudiencePageStates(t *testing.T) {
	at := time.Date(2026, 12, 4, 11, 0, 0, 0, time.UTC)
	failed := audiences.Run{StartedAt: at, Status: audiences.StatusFailed,
		Error: "database is locked"}
	card := audienceCard{Name: "vip", Computed: true, LastRun: &failed,
		Current: audiences.Run{Size: 5, EvaluatedAt: at.Add(-time.Hour)},
		NextRun: at.Add(75 * time.Minute)}
	cases := []struct {
		name string
		data audienceData
		want []string
	}{
		{"a failed run over an older result", audienceData{audienceCard: card}, []string{
			"The last run failed", "database is locked",
			"The members below are from the run before it.",
		}},
		{"a search that finds no one", audienceData{audienceCard: card,
			Members: memberList{Query: "50%_x", Searching: true, AllURL: "/audience/vip#members"}},
			[]string{"No member's email or user_id contains “50%_x”.", "Show all members"}},
		{"a page past the last", audienceData{audienceCard: card,
			Members: memberList{Page: 9, Total: 5, Beyond: true, FirstURL: "/audience/vip"}},
			[]string{"There is no page 9.", "Go to the first page"}},
		{"an empty result", audienceData{audienceCard: card},
			[]string{"No one is in this audience as of", "It runs again"}},
		{"never computed", audienceData{audienceCard: audienceCard{Name: "vip",
			NextRun: at.Add(75 * time.Minute)}},
			[]string{"Not computed yet: it runs", "4 Dec 2026 12:15 UTC", "Run now",
				"It has not run yet", "No one has entered or left yet."}},
	}
	for _, tc := range cases {
		html := mustRenderAudience(t, tc.data)
		for _, want := range tc.want {
			if !strings.Contains(html, want) {
				t.Errorf("%s: the page lacks %q", tc.name, want)
			}
		}
	}
}
