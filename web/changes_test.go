package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/audiences"
	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

type changesBody struct {
	ComputedAt *string `json:"computed_at"`
	Changes    []struct {
		Cursor    string `json:"cursor"`
		Change    string `json:"change"`
		Email     string `json:"email"`
		ProfileID int64  `json:"profile_id"`
	} `json:"changes"`
	Next    string `json:"next"`
	HasMore bool   `json:"has_more"`
}

func TestChangesFeedTellsWhoEnteredAndWhoLeft(t *testing.T) {
	db := sqltest.MustOpen(t)
	store := resolver.NewStore(db, resolver.DefaultRules(), time.Now, nil)
	if _, err := store.Ingest(t.Context(), mustSeedMessages(t, time.Now())); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	runner := audiences.NewRunner(db, audiences.WithBuiltins(nil),
		func() time.Time { return now }, nil)
	mustRunAudience := func() {
		if _, err := runner.Run(t.Context(), "shoe_reorder"); err != nil {
			t.Fatal(err)
		}
	}
	mustRunAudience() // Jane is due new shoes
	server := mustSite(t, db, "token-a")

	get := func(query, etag string) (int, changesBody, string) {
		req, _ := http.NewRequest(http.MethodGet,
			server.URL+"/audiences/shoe_reorder/changes"+query, nil)
		req.Header.Set("Authorization", "Bearer token-a")
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body changesBody
		if resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, body, resp.Header.Get("ETag")
	}

	status, first, etag := get("", "")
	if status != http.StatusOK || len(first.Changes) != 1 || first.Changes[0].Change != "entered" ||
		first.Changes[0].Email != "janedoe@example.com" || first.ComputedAt == nil {
		t.Fatalf("first poll: %d %+v", status, first)
	}
	if status, _, _ := get("", etag); status != http.StatusNotModified {
		t.Errorf("same poll with If-None-Match: %d, want 304", status)
	}
	if _, empty, _ := get("?since="+first.Next, ""); len(empty.Changes) != 0 ||
		empty.Next != first.Next {
		t.Errorf("nothing new since %s: %+v", first.Next, empty)
	}

	now = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	mustRunAudience() // her new shoes reset the mileage
	_, second, _ := get("?since="+first.Next, "")
	if len(second.Changes) != 1 || second.Changes[0].Change != "exited" ||
		second.Changes[0].Email != "janedoe@example.com" || second.Next <= first.Next {
		t.Errorf("second poll: %+v", second)
	}
	if status, _, _ := get("?since=garbage", ""); status != http.StatusBadRequest {
		t.Errorf("a made-up cursor: %d, want 400", status)
	}
	if status, _, _ := get("?since=999999", ""); status != http.StatusBadRequest {
		t.Errorf("a cursor past the feed's end: %d, want 400", status)
	}

	// The members' page answers 304 too while the result is unchanged.
	members := func(etag string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, server.URL+"/audiences/shoe_reorder", nil)
		req.Header.Set("Authorization", "Bearer token-a")
		req.Header.Set("If-None-Match", etag)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("ETag")
	}
	_, tag := members("")
	if status, _ := members(tag); status != http.StatusNotModified {
		t.Errorf("members with If-None-Match: %d, want 304", status)
	}
	mustRunAudience()
	if status, _ := members(tag); status != http.StatusOK {
		t.Errorf("members after a new run: %d, want 200", status)
	}

	// CSV options come from the query; a bad one is a JSON 400, not a file.
	for query, want := range map[string]int{
		"?layout=xml": http.StatusBadRequest, "?columns=nope": http.StatusBadRequest,
		"?hash_email=on":                     http.StatusBadRequest,
		"?layout=columns&bom=1&hash_email=1": http.StatusOK,
	} {
		req, _ := http.NewRequest(http.MethodGet, server.URL+"/audiences/cart_abandonment.csv"+
			query, nil)
		req.Header.Set("Authorization", "Bearer token-a")
		if _, err := runner.Run(t.Context(), "cart_abandonment"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("CSV %s: %d, want %d", query, resp.StatusCode, want)
		}
	}
}

func TestAudiencePreviewThroughTheAPI(t *testing.T) {
	server := mustSeededSite(t)
	post := func(body string) (int, map[string]any) {
		return mustCallJSON(t, http.MethodPost, server.URL+"/audience-previews", body)
	}

	status, out := post(`name: every_runner
condition:
  aggregate:
    event: Workout Completed
    function: sum
    property: distance
    since_latest:
      event: Order Completed
      where: [{property: "products[].category", equals: Shoes}]
    at_least: 1
`)
	if status != http.StatusOK || out["size"] != float64(0) {
		// Jane's latest shoes were bought after her last run.
		t.Errorf("preview: %d %v", status, out)
	}
	if status, out := post(`name: broken`); status != http.StatusBadRequest {
		t.Errorf("a definition without a condition: %d %v, want 400", status, out)
	}
	status, out = post("name: misspelt\ncondition: {performed: {event: X, wihtin: 1d}}")
	if status != http.StatusBadRequest || !strings.Contains(fmt.Sprint(out), "wihtin") {
		t.Errorf("a misspelt key: %d %v, want 400 naming it", status, out)
	}
	status, out = post(`name: shoe_buyers_without_reorder
condition: {and: [{performed: {event: Order Completed}}, {not: {in_audience: shoe_reorder}}]}`)
	if status != http.StatusOK {
		t.Errorf("in_audience of a configured audience: %d %v, want 200", status, out)
	}
}
