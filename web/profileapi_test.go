package web_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

func TestProfileHistoryEndpointExplainsMerges(t *testing.T) {
	db := sqltest.MustOpen(t)
	store := resolver.NewStore(db, resolver.DefaultRules(), time.Now, nil)
	env := resolver.Envelope{Source: "test", ReceivedAt: time.Now()}
	for _, raw := range []string{
		`{"type":"track","messageId":"m1","anonymousId":"a1","event":"E"}`,
		`{"type":"track","messageId":"m2","userId":"u1","event":"E"}`,
		`{"type":"identify","messageId":"m3","userId":"u1","anonymousId":"a1"}`,
	} {
		m, err := resolver.ParseMessage([]byte(raw), env)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Ingest(t.Context(), []*resolver.Message{m}); err != nil {
			t.Fatal(err)
		}
	}
	server := mustSite(t, db, "token-a")

	path := "/v1/spaces/s/collections/users/profiles/user_id:u1/merges?limit=2"
	var pages []string
	for path != "" {
		req, _ := http.NewRequest(http.MethodGet, server.URL+path, nil)
		req.Header.Set("Authorization", "Bearer token-a")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Data []struct {
				Kind        string `json:"kind"`
				Description string `json:"description"`
				MessageID   string `json:"message_id"`
			} `json:"data"`
			Cursor struct {
				HasMore bool   `json:"has_more"`
				Next    string `json:"next"`
				URL     string `json:"url"`
			} `json:"cursor"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
		for _, d := range body.Data {
			pages = append(pages, d.Kind+" "+d.MessageID+": "+d.Description)
		}
		path = ""
		if body.Cursor.HasMore {
			path = body.Cursor.URL + "?limit=2&next=" + body.Cursor.Next
		}
	}

	got := strings.Join(pages, "\n")
	if len(pages) != 3 || !strings.Contains(got, "merged m3: Merged with profile 2") {
		t.Errorf("history:\n%s\nwant created, created, merged", got)
	}
}
