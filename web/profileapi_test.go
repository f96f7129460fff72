package web_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
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

// mustSeededSite serves the seed journey, ingested in one batch, plus a
// group call of Jane's, with the API token token-a.
func mustSeededSite(t *testing.T) *httptest.Server {
	t.Helper()
	db := sqltest.MustOpen(t)
	store := resolver.NewStore(db, resolver.DefaultRules(), time.Now, nil)
	messages := mustSeedMessages(t, time.Now())
	group, err := resolver.ParseMessage([]byte(`{"type":"group","messageId":"g1",
		"userId":"abc123def","groupId":"acme","timestamp":"2026-08-05T00:00:00Z"}`),
		resolver.Envelope{Source: "test", ReceivedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Ingest(t.Context(), append(messages, group)); err != nil {
		t.Fatal(err)
	}
	return mustSite(t, db, "token-a")
}

func mustProfileAPI(t *testing.T, server *httptest.Server, path string, dest any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, server.URL+
		"/v1/spaces/s/collections/users/profiles/email:janedoe@example.com"+path, nil)
	req.SetBasicAuth("token-a", "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(dest); err != nil {
		t.Fatal(err)
	}
}

type eventsPage struct {
	Data []struct {
		Type        string          `json:"type"`
		Event       string          `json:"event"`
		MessageID   string          `json:"message_id"`
		Timestamp   string          `json:"timestamp"`
		Context     json.RawMessage `json:"context"`
		ExternalIDs []struct {
			Type string `json:"type"`
			ID   string `json:"id"`
		} `json:"external_ids"`
	} `json:"data"`
	Cursor struct {
		HasMore bool   `json:"has_more"`
		Next    string `json:"next"`
	} `json:"cursor"`
}

func TestProfileEventsPageAcrossDevices(t *testing.T) {
	server := mustSeededSite(t)

	var all []string
	next := ""
	for {
		var page eventsPage
		mustProfileAPI(t, server, "/events?limit=7&sort=asc&exclude=Workout%20Completed"+
			"&next="+next, &page)
		for _, e := range page.Data {
			all = append(all, e.MessageID)
		}
		if !page.Cursor.HasMore {
			break
		}
		next = page.Cursor.Next
	}
	// 69 messages and a group call, less the 56 workouts.
	if len(all) != 14 || all[0] != "jane-001" || all[len(all)-1] != "jane-069" {
		t.Errorf("events in time order without workouts: %v", all)
	}

	var window eventsPage
	mustProfileAPI(t, server, "/events?include=Product%20Added"+
		"&start=2026-11-01T00:00:00Z&end=2026-12-01T00:00:00Z", &window)
	if len(window.Data) != 2 || window.Data[0].MessageID != "jane-068" ||
		string(window.Data[0].Context) == "{}" || len(window.Data[0].ExternalIDs) == 0 {
		t.Errorf("November adds, newest first, with context and ids: %+v", window.Data)
	}
}

func TestProfileMetadataAndLinks(t *testing.T) {
	server := mustSeededSite(t)

	var meta struct {
		Metadata map[string]any `json:"metadata"`
	}
	mustProfileAPI(t, server, "/metadata", &meta)
	if meta.Metadata["first_message_id"] != "jane-001" ||
		meta.Metadata["last_message_id"] != "g1" || meta.Metadata["first_source_id"] != "test" {
		t.Errorf("metadata %v", meta.Metadata)
	}

	var links struct {
		Data []struct {
			ToCollection string `json:"to_collection"`
			ExternalIDs  []struct {
				ID string `json:"id"`
			} `json:"external_ids"`
		} `json:"data"`
	}
	mustProfileAPI(t, server, "/links", &links)
	if len(links.Data) != 1 || links.Data[0].ToCollection != "accounts" ||
		links.Data[0].ExternalIDs[0].ID != "acme" {
		t.Errorf("links %+v", links.Data)
	}
}

func TestUnlinkAndDeleteThroughTheAPI(t *testing.T) {
	db := sqltest.MustOpen(t)
	store := resolver.NewStore(db, resolver.DefaultRules(), time.Now, nil)
	env := resolver.Envelope{Source: "test", ReceivedAt: time.Now()}
	for _, raw := range []string{
		`{"type":"identify","messageId":"m1","anonymousId":"a1","traits":{"email":"j@x.test"},` +
			`"context":{"device":{"id":"tablet","type":"ios"}}}`,
		`{"type":"track","messageId":"m2","anonymousId":"a2","event":"E",` +
			`"context":{"device":{"id":"tablet","type":"ios"}}}`,
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
	call := func(method, path, body string) (int, map[string]any) {
		return mustCallJSON(t, method,
			server.URL+"/v1/spaces/s/collections/users/profiles/"+path, body)
	}

	status, out := call(http.MethodPost, "ios.id:tablet/unlink", `{"reason":"shop tablet"}`)
	if status != http.StatusOK || len(out["profile_ids"].([]any)) != 2 {
		t.Fatalf("unlink: %d %v", status, out)
	}
	status, out = call(http.MethodDelete, "email:J@x.test", "")
	if status != http.StatusOK || out["events_deleted"] != float64(1) {
		t.Fatalf("delete: %d %v", status, out)
	}
	if status, _ := call(http.MethodDelete, "email:j@x.test", ""); status != http.StatusNotFound {
		t.Errorf("second delete: %d, want 404", status)
	}
}

func TestMadeUpCursorsAreRefused(t *testing.T) {
	server := mustSeededSite(t)
	for _, route := range []string{"traits", "external_ids", "merges", "events"} {
		req, _ := http.NewRequest(http.MethodGet, server.URL+
			"/v1/spaces/s/collections/users/profiles/user_id:abc123def/"+route+"?next=garbage", nil)
		req.SetBasicAuth("token-a", "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s with a made-up cursor: %d, want 400", route, resp.StatusCode)
		}
	}
}

// mustCallJSON sends body with the API token token-a and decodes the JSON
// answer, whatever its status.
func mustCallJSON(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer token-a")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}
