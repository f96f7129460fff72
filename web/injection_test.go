package web_test

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/audiences"
	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/webhook"
)

// injections are strings that end a SQL string or identifier, comment the
// rest out, widen a LIKE, look like placeholders of either engine, reach
// for a shell, a template or a page.
var injections = []string{
	`'; DROP TABLE events; --`,
	`" OR 1=1 --`,
	`%' OR '1'='1`,
	`\`,
	`$1`,
	`?`,
	`) UNION SELECT NULL --`,
	"`id`; $(id)",
	`{{.}}`,
	`<script>alert(1)</script>`,
	`_%`,
}

// injectionRules read a custom identifier, shopper_id, from traits.
func injectionRules() resolver.Rules {
	rules := resolver.DefaultRules()
	rules.Custom = append(rules.Custom, resolver.CustomType{Type: "shopper_id",
		Keys: []string{"shopper_id"}, Normaliser: "none"})
	return rules
}

// injectionMessages give each injection string a person: it is their user
// id, anonymous id, shopper id, the start of their email, a trait key and
// value, an event name, a property key and value.
// They happened an hour ago: audiences count events up to a whole second
// before now.
func injectionMessages() (tracking, hooks []map[string]any) {
	at := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	for i, p := range injections {
		tracking = append(tracking,
			map[string]any{"type": "identify", "userId": p, "anonymousId": p,
				"messageId": fmt.Sprintf("inj-id-%d", i), "timestamp": at,
				"traits": map[string]any{"email": p + "@example.com", "shopper_id": p, p: p}},
			map[string]any{"type": "track", "userId": p, "event": p, "timestamp": at,
				"messageId": fmt.Sprintf("inj-tr-%d", i), "properties": map[string]any{p: p}})
		hooks = append(hooks, map[string]any{"type": "track", "userId": p, "timestamp": at,
			"event": "Signed Up", "messageId": fmt.Sprintf("inj-su-%d", i)})
	}
	return tracking, hooks
}

// mustTables lists the database's tables.
func mustTables(t *testing.T, db *sqldb.DB) []string {
	t.Helper()
	query := `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`
	if db.Dialect() == sqldb.Postgres {
		query = `SELECT tablename FROM pg_tables WHERE schemaname = current_schema()
			ORDER BY tablename`
	}
	var names []string
	if err := db.SelectContext(t.Context(), &names, query); err != nil {
		t.Fatal(err)
	}
	return names
}

// mustIngestInjections sends injectionMessages through the tracking API
// and the signed webhook.
func (s *abuseSite) mustIngestInjections(t *testing.T) {
	t.Helper()
	tracking, hooks := injectionMessages()
	s.batch(t, tracking)
	body, err := json.Marshal(hooks)
	if err != nil {
		t.Fatal(err)
	}
	first, err := json.Marshal(hooks[0])
	if err != nil {
		t.Fatal(err)
	}
	// The webhook's signature covers the first element's bytes as sent.
	a := s.do(t, abuseRequest{method: http.MethodPost, path: "/webhook", body: body,
		header: http.Header{"X-Signature": {webhook.Signature(abuseSecret, first)}}})
	if a.status != http.StatusOK || strings.Contains(a.body, "rejected") {
		t.Fatalf("POST /webhook: %d %s", a.status, a.body)
	}
}

// TestInjectionStringsAreStoredAndFoundVerbatim feeds injectionMessages
// through the real handlers and proves: the tables are intact, each value
// is stored as sent, and every lookup by it (Profile API by each
// identifier type, event filters, console search) finds exactly its
// person.
func TestInjectionStringsAreStoredAndFoundVerbatim(t *testing.T) {
	site := mustAbuseSite(t, injectionRules(), nil)
	tables := mustTables(t, site.db)
	site.mustIngestInjections(t)

	if got := mustTables(t, site.db); !slices.Equal(got, tables) {
		t.Fatalf("tables changed: %v, before %v", got, tables)
	}
	var events int
	if err := site.db.GetContext(t.Context(), &events, `SELECT COUNT(*) FROM events`); err != nil ||
		events != 3*len(injections) {
		t.Fatalf("%d events stored (%v), want %d", events, err, 3*len(injections))
	}
	cookie := site.signIn(t, abuseToken)
	profiles := map[int64]string{}
	for i, p := range injections {
		var stored struct {
			UserID string `db:"user_id"`
			Event  string `db:"event"`
		}
		err := site.db.GetContext(t.Context(), &stored, site.db.Rebind(`SELECT user_id, event
			FROM events WHERE message_id = ?`), fmt.Sprintf("inj-tr-%d", i))
		if err != nil || stored.UserID != p || stored.Event != p {
			t.Errorf("%q stored as %+v (%v)", p, stored, err)
		}
		profile := checkProfileAPI(t, site, p)
		if other, taken := profiles[profile]; taken {
			t.Errorf("%q and %q share profile %d", p, other, profile)
		}
		profiles[profile] = p

		a := site.do(t, abuseRequest{method: http.MethodGet,
			path: "/people?q=" + url.QueryEscape(p), cookie: cookie})
		if want := fmt.Sprintf("/people/%d", profile); a.status != http.StatusSeeOther ||
			a.header.Get("Location") != want {
			t.Errorf("console search for %q: %d to %q, want %s", p, a.status,
				a.header.Get("Location"), want)
		}
		a = site.do(t, abuseRequest{method: http.MethodGet,
			path: fmt.Sprintf("/people/%d", profile), cookie: cookie})
		if a.status != http.StatusOK || !strings.Contains(a.body,
			template.HTMLEscapeString(p)) || strings.Contains(a.body, "<script>alert") {
			t.Errorf("the person page of %q: %d, not showing it as text", p, a.status)
		}
	}
}

// checkProfileAPI looks p up through the Profile API as each identifier
// type it is, and checks the traits and the event it names. It returns the
// profile's number.
func checkProfileAPI(t *testing.T, site *abuseSite, p string) int64 {
	t.Helper()
	base := "/v1/spaces/any/collections/users/profiles/"
	get := func(path string, dest any) {
		t.Helper()
		a := site.api(t, abuseRequest{method: http.MethodGet, path: base + path})
		if a.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, a.status, a.body)
		}
		a.decode(t, dest)
	}
	var traits struct {
		Traits map[string]any `json:"traits"`
	}
	get("user_id:"+url.PathEscape(p)+"/traits?limit=200", &traits)
	if traits.Traits[p] != p || traits.Traits["email"] != p+"@example.com" {
		t.Errorf("traits of %q: %v", p, traits.Traits)
	}

	var ids struct {
		Data []struct {
			Type string `json:"type"`
			ID   string `json:"id"`
		} `json:"data"`
	}
	get("shopper_id:"+url.PathEscape(p)+"/external_ids?limit=200", &ids)
	var got []string
	for _, id := range ids.Data {
		got = append(got, id.Type+"="+id.ID)
	}
	sort.Strings(got)
	want := []string{"anonymous_id=" + p, "email=" + strings.ToLower(p) + "@example.com",
		"shopper_id=" + p, "user_id=" + p}
	if !slices.Equal(got, want) {
		t.Errorf("external ids of %q: %q, want %q", p, got, want)
	}

	var events struct {
		Data []struct {
			Event      string         `json:"event"`
			Properties map[string]any `json:"properties"`
		} `json:"data"`
	}
	get("anonymous_id:"+url.PathEscape(p)+"/events?include="+url.QueryEscape(p), &events)
	if len(events.Data) != 1 || events.Data[0].Event != p || events.Data[0].Properties[p] != p {
		t.Errorf("events of %q named %q: %+v", p, p, events.Data)
	}

	var meta struct {
		Metadata struct {
			FirstMessageID string `json:"first_message_id"`
		} `json:"metadata"`
	}
	get("email:"+url.PathEscape(strings.ToLower(p)+"@example.com")+"/metadata", &meta)
	found, err := resolver.NewProfiles(site.db).Search(t.Context(), p)
	if err != nil || len(found) != 1 || meta.Metadata.FirstMessageID == "" {
		t.Fatalf("search %q: %v %v; metadata %+v", p, found, err, meta)
	}
	return found[0]
}

// signedUp is an audience of everyone who signed up, for the member search.
func signedUp() []audiences.Definition {
	return []audiences.Definition{{Name: "signed_up", IncludeAnonymous: true,
		Condition: &audiences.Condition{Performed: &audiences.Performed{
			Selector: audiences.Selector{Event: "Signed Up"}}}}}
}

// TestInjectionStringsInAudiences uses the strings as event names,
// property keys and values and trait keys in audience definitions
// previewed through the API, as member searches, and as audience names in
// every place one is taken: each preview finds exactly its person, each
// search exactly its member, and each name is refused or not found.
func TestInjectionStringsInAudiences(t *testing.T) {
	site := mustAbuseSite(t, injectionRules(), signedUp())
	site.mustIngestInjections(t)
	if a := site.api(t, abuseRequest{method: http.MethodPost,
		path: "/audiences/signed_up/runs"}); a.status != http.StatusOK {
		t.Fatalf("run signed_up: %d %s", a.status, a.body)
	}
	cookie := site.signIn(t, abuseToken)
	for _, p := range injections {
		for _, def := range injectionDefinitions(p) {
			checkPreview(t, site, p, def)
		}
		a := site.do(t, abuseRequest{method: http.MethodGet,
			path: "/audience/signed_up?q=" + url.QueryEscape(p), cookie: cookie})
		if a.status != http.StatusOK || strings.Count(a.body, `data-label="User ID"`) != 1 ||
			!strings.Contains(a.body, "<code>"+template.HTMLEscapeString(p)+"</code>") {
			t.Errorf("member search for %q: %d, %d members", p, a.status,
				strings.Count(a.body, `data-label="User ID"`))
		}
		checkAudienceName(t, site, cookie, p)
	}
}

// injectionDefinitions are audiences that should hold exactly the person of
// p: by event name, and, where p can be a property or trait name (no
// quotes, backslashes, brackets or dots), by property and by trait.
func injectionDefinitions(p string) []map[string]any {
	performed := map[string]any{"event": p}
	defs := []map[string]any{{"performed": performed}}
	if !strings.ContainsAny(p, `"\[].`) {
		defs = append(defs,
			map[string]any{"performed": map[string]any{"event": p,
				"where": []any{map[string]any{"property": p, "equals": p}}}},
			map[string]any{"trait": map[string]any{"key": p, "equals": p}},
			map[string]any{"trait": map[string]any{"key": p, "contains": p}})
	}
	return defs
}

// checkPreview previews condition through POST /audience-previews.
func checkPreview(t *testing.T, site *abuseSite, p string, condition map[string]any) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"name": "probe", "include_anonymous": true,
		"condition": condition})
	if err != nil {
		t.Fatal(err)
	}
	a := site.api(t, abuseRequest{method: http.MethodPost, path: "/audience-previews",
		body: body})
	var got struct {
		Size   int `json:"size"`
		Sample []struct {
			UserID string `json:"user_id"`
		} `json:"sample"`
	}
	if a.status == http.StatusOK {
		a.decode(t, &got)
	}
	if a.status != http.StatusOK || got.Size != 1 || got.Sample[0].UserID != p {
		t.Errorf("preview of %s: %d %.300s; want exactly %q", body, a.status, a.body, p)
	}
}

// checkAudienceName uses p as an audience name in the config, the API,
// the console and a preview.
func checkAudienceName(t *testing.T, site *abuseSite, cookie *http.Cookie, p string) {
	t.Helper()
	def := audiences.Definition{Name: p, Condition: &audiences.Condition{
		Performed: &audiences.Performed{Selector: audiences.Selector{Event: "x"}}}}
	if err := audiences.Validate([]audiences.Definition{def}); err == nil {
		t.Errorf("a config naming an audience %q is accepted", p)
	}
	escaped := url.PathEscape(p)
	for _, r := range []abuseRequest{
		{method: http.MethodGet, path: "/audiences/" + escaped},
		{method: http.MethodGet, path: "/audiences/" + escaped + ".csv"},
		{method: http.MethodGet, path: "/audiences/" + escaped + "/changes"},
		{method: http.MethodPost, path: "/audiences/" + escaped + "/runs"},
	} {
		a := site.api(t, r)
		if a.status != http.StatusNotFound || !strings.Contains(a.body, `"not_found"`) {
			t.Errorf("%s %s: %d %.200s, want a JSON 404", r.method, r.path, a.status, a.body)
		}
	}
	a := site.do(t, abuseRequest{method: http.MethodGet, path: "/audience/" + escaped,
		cookie: cookie})
	if a.status != http.StatusNotFound || strings.Contains(a.body, "<script>alert") {
		t.Errorf("console /audience/%s: %d", escaped, a.status)
	}
	body, _ := json.Marshal(map[string]any{"name": p, "condition": map[string]any{
		"performed": map[string]any{"event": "x"}}})
	a = site.api(t, abuseRequest{method: http.MethodPost, path: "/audience-previews",
		body: body})
	if a.status != http.StatusBadRequest || !strings.Contains(a.body, `"invalid"`) {
		t.Errorf("a preview named %q: %d %.200s, want 400", p, a.status, a.body)
	}
}

// TestInjectionStringsAreEscapedOnPages reads the console pages that show
// the injected people and requires every string as text, never as markup.
func TestInjectionStringsAreEscapedOnPages(t *testing.T) {
	site := mustAbuseSite(t, injectionRules(), signedUp())
	site.mustIngestInjections(t)
	if a := site.api(t, abuseRequest{method: http.MethodPost,
		path: "/audiences/signed_up/runs"}); a.status != http.StatusOK {
		t.Fatalf("run signed_up: %d", a.status)
	}
	cookie := site.signIn(t, abuseToken)
	found, err := resolver.NewProfiles(site.db).Search(t.Context(), "<script>alert(1)</script>")
	if err != nil || len(found) != 1 {
		t.Fatalf("search: %v %v", found, err)
	}
	for _, path := range []string{fmt.Sprintf("/people/%d", found[0]),
		"/audience/signed_up", "/ingestion"} {
		a := site.do(t, abuseRequest{method: http.MethodGet, path: path, cookie: cookie})
		if a.status != http.StatusOK {
			t.Errorf("GET %s: %d", path, a.status)
		}
		if strings.Contains(a.body, "<script>alert(1)") {
			t.Errorf("GET %s holds the script element unescaped", path)
		}
		if path != "/ingestion" && !strings.Contains(a.body, "&lt;script&gt;alert(1)") {
			t.Errorf("GET %s does not show the script text", path)
		}
	}
	// A search is for an identifier as a whole: "%" is no wildcard.
	for _, q := range []string{"%", "_", "%%", "' OR '1'='1"} {
		a := site.do(t, abuseRequest{method: http.MethodGet, path: "/people?q=" +
			url.QueryEscape(q), cookie: cookie})
		if a.status != http.StatusOK || !strings.Contains(a.body, "No profile holds") {
			t.Errorf("console search for %q: %d, want no one", q, a.status)
		}
	}
}
