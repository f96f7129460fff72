package web_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
	"github.com/knit-cdp/knit/web"
	"github.com/knit-cdp/knit/webhook"
)

// auditEntry is one entry of GET /audit.
type auditEntry struct {
	ID        int64          `json:"id"`
	At        string         `json:"at"`
	Actor     string         `json:"actor"`
	Action    string         `json:"action"`
	Target    string         `json:"target"`
	Detail    map[string]any `json:"detail"`
	RequestID string         `json:"request_id"`
}

// auditPeople are three people for the audit log's changes to change.
func auditPeople() []map[string]any {
	var out []map[string]any
	for _, name := range []string{"jane", "bob", "carol"} {
		out = append(out, map[string]any{"type": "identify", "userId": name,
			"anonymousId": "anon-" + name, "messageId": "id-" + name,
			"traits": map[string]any{"email": name + "@example.com"}})
	}
	return out
}

// mustAuditLog reads the whole audit log through the API, a page of two
// entries at a time, newest first.
func (s *abuseSite) mustAuditLog(t *testing.T) []auditEntry {
	t.Helper()
	var all []auditEntry
	next := ""
	for range 100 {
		var page struct {
			Entries []auditEntry `json:"entries"`
			Next    *string      `json:"next"`
		}
		a := s.api(t, abuseRequest{method: http.MethodGet,
			path: "/audit?limit=2&next=" + url.QueryEscape(next)})
		if a.status != http.StatusOK {
			t.Fatalf("GET /audit: %d %s", a.status, a.body)
		}
		a.decode(t, &page)
		all = append(all, page.Entries...)
		if page.Next == nil {
			return all
		}
		next = *page.Next
	}
	t.Fatal("GET /audit pages on for ever")
	return nil
}

// mustMakeAuditedChanges makes one change of each kind through each path,
// oldest first: a run and an unlink through the API, Run now from a
// password session, deleting Bob from a token session, deleting Jane
// through the API, Segment's deletion of Carol and a token reset from the
// command line. It returns Bob's profile number.
func (s *abuseSite) mustMakeAuditedChanges(t *testing.T) int64 {
	t.Helper()
	s.batch(t, auditPeople())
	found, err := resolver.NewProfiles(s.db).Search(t.Context(), "bob")
	if err != nil || len(found) != 1 {
		t.Fatalf("search bob: %v %v", found, err)
	}
	bob := found[0]
	base := "/v1/spaces/any/collections/users/profiles/"
	withID := func(id string) http.Header { return http.Header{"X-Request-Id": {id}} }
	deletion := `{"type":"delete","userId":"carol","messageId":"del-1"}`
	steps := []func() abuseAnswer{
		func() abuseAnswer {
			return s.api(t, abuseRequest{method: http.MethodPost,
				path: "/audiences/cart_abandonment/runs", header: withID("req-run")})
		},
		func() abuseAnswer {
			return s.api(t, abuseRequest{method: http.MethodPost,
				path:   base + "anonymous_id:anon-jane/unlink",
				body:   []byte(`{"reason":"shared tablet with jane@example.com"}`),
				header: withID("req-unlink")})
		},
		func() abuseAnswer {
			return s.form(t, s.signIn(t, abusePassword), "/audience/shoe_reorder",
				"/run/shoe_reorder", url.Values{"back": {"/"}})
		},
		func() abuseAnswer {
			page := fmt.Sprintf("/people/%d/delete", bob)
			return s.form(t, s.signIn(t, abuseToken), page, page, nil)
		},
		func() abuseAnswer {
			return s.api(t, abuseRequest{method: http.MethodDelete, path: base + "user_id:jane",
				header: withID("req-delete")})
		},
		func() abuseAnswer {
			return s.do(t, abuseRequest{method: http.MethodPost, path: "/webhook",
				body: []byte(deletion), header: http.Header{"X-Signature": {
					webhook.Signature(abuseSecret, []byte(deletion))},
					"X-Request-Id": {"req-segment"}}})
		},
	}
	for i, step := range steps {
		if a := step(); a.status != http.StatusOK && a.status != http.StatusSeeOther {
			t.Fatalf("step %d: %d %.300s", i, a.status, a.body)
		}
	}
	cli := resolver.WithActor(t.Context(), resolver.Actor{Name: "cli"})
	if _, err := web.ResetToken(cli, s.db); err != nil {
		t.Fatal(err)
	}
	return bob
}

// TestAuditLogRecordsWhoChangedWhat makes every audited change through
// the API, the console (signed in with the token and with the admin
// password), Segment's deletion message and the command line's actor, and
// reads the log back: newest first, each entry with its actor, action,
// target and request id, never a secret, and nothing about an erased
// person.
func TestAuditLogRecordsWhoChangedWhat(t *testing.T) {
	site := mustAbuseSite(t, resolver.DefaultRules(), nil)
	bob := site.mustMakeAuditedChanges(t)

	got := site.mustAuditLog(t)
	want := []auditEntry{
		{Actor: "cli", Action: "token.reset", Target: "api_token"},
		{Actor: "segment:webhook", Action: "profile.delete", RequestID: "req-segment"},
		{Actor: "api:token", Action: "profile.delete", RequestID: "req-delete"},
		{Actor: "console:token", Action: "profile.delete",
			Target: fmt.Sprintf("profile:%d", bob)},
		{Actor: "console:admin", Action: "audience.run", Target: "shoe_reorder"},
		// Jane is erased: the unlink of her anonymous id no longer says whose.
		{Actor: "api:token", Action: "identity.unlink", Target: "erased on request",
			RequestID: "req-unlink"},
		{Actor: "api:token", Action: "audience.run", Target: "cart_abandonment",
			RequestID: "req-run"},
	}
	if len(got) != len(want) {
		t.Fatalf("the audit log has %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Actor != w.Actor || g.Action != w.Action ||
			(w.Target != "" && g.Target != w.Target) ||
			(w.RequestID != "" && g.RequestID != w.RequestID) || g.At == "" {
			t.Errorf("entry %d = %+v, want %+v", i, g, w)
		}
		if i > 0 && g.ID >= got[i-1].ID {
			t.Errorf("entry %d (id %d) is not older than the one before", i, g.ID)
		}
		if w.RequestID == "" && strings.HasPrefix(g.Actor, "console:") && g.RequestID == "" {
			t.Errorf("entry %d from the console has no request id", i)
		}
	}
	if got[1].Detail["message_id"] != "del-1" || got[3].Detail["events_deleted"] == nil ||
		got[6].Detail["run_id"] == nil {
		t.Errorf("details: %+v", got)
	}
	if !strings.HasPrefix(got[1].Target, "profile:") || !strings.HasPrefix(got[2].Target,
		"profile:") {
		t.Errorf("deletions name %q and %q, want profile numbers", got[1].Target, got[2].Target)
	}
	raw := site.api(t, abuseRequest{method: http.MethodGet, path: "/audit"}).body
	for _, gone := range []string{"jane", "bob", "carol", abuseToken, abusePassword,
		abuseSecret, abuseWriteKey} {
		if strings.Contains(raw, gone) {
			t.Errorf("the audit log names %q: %s", gone, raw)
		}
	}
}

// TestAuditLogNeedsTheTokenAndRefusesBadCursors: GET /audit is an API like
// the others; its cursor is checked.
func TestAuditLogNeedsTheTokenAndRefusesBadCursors(t *testing.T) {
	site := mustAbuseSite(t, resolver.DefaultRules(), nil)
	if a := site.do(t, abuseRequest{method: http.MethodGet, path: "/audit"}); a.status !=
		http.StatusUnauthorized {
		t.Errorf("GET /audit without the token: %d", a.status)
	}
	wrong := http.Header{"Authorization": {"Bearer " + abusePassword}}
	if a := site.do(t, abuseRequest{method: http.MethodGet, path: "/audit",
		header: wrong}); a.status != http.StatusUnauthorized {
		t.Errorf("GET /audit with the admin password: %d", a.status)
	}
	for _, bad := range []string{"x", "-1", "0", "1;DROP TABLE audit_log", "99999999999999999999"} {
		a := site.api(t, abuseRequest{method: http.MethodGet, path: "/audit?next=" +
			url.QueryEscape(bad)})
		if a.status != http.StatusBadRequest || !strings.Contains(a.body, `"invalid"`) {
			t.Errorf("GET /audit?next=%s: %d %s", bad, a.status, a.body)
		}
	}
	for _, bad := range []string{"0", "1001", "x"} {
		a := site.api(t, abuseRequest{method: http.MethodGet, path: "/audit?limit=" + bad})
		if a.status != http.StatusBadRequest {
			t.Errorf("GET /audit?limit=%s: %d", bad, a.status)
		}
	}
	var empty struct {
		Entries []auditEntry `json:"entries"`
		Next    *string      `json:"next"`
	}
	site.api(t, abuseRequest{method: http.MethodGet, path: "/audit"}).decode(t, &empty)
	if empty.Entries == nil || len(empty.Entries) != 0 || empty.Next != nil {
		t.Errorf("an empty log: %+v", empty)
	}
}

// TestConsoleAuditLogPage lists the entries on the console's page, pages
// through older ones and escapes what an entry holds.
func TestConsoleAuditLogPage(t *testing.T) {
	site := mustAbuseSite(t, resolver.DefaultRules(), nil)
	hostile := `<b data-pwn=1>"x"</b>`
	site.batch(t, []map[string]any{{"type": "identify", "userId": "h",
		"anonymousId": hostile, "messageId": "m-h"}})
	a := site.api(t, abuseRequest{method: http.MethodPost,
		path: "/v1/spaces/any/collections/users/profiles/anonymous_id:" +
			url.PathEscape(hostile) + "/unlink",
		body: []byte(fmt.Sprintf(`{"reason":%q}`, "because "+hostile))})
	if a.status != http.StatusOK {
		t.Fatalf("unlink: %d %s", a.status, a.body)
	}
	for i := range 54 {
		a := site.api(t, abuseRequest{method: http.MethodPost,
			path: "/audiences/cart_abandonment/runs"})
		if a.status != http.StatusOK {
			t.Fatalf("run %d: %d %s", i, a.status, a.body)
		}
	}
	cookie := site.signIn(t, abuseToken)
	rows := func(a abuseAnswer) int { return strings.Count(a.body, `data-label="When"`) }
	first := site.do(t, abuseRequest{method: http.MethodGet, path: "/audit-log", cookie: cookie})
	if first.status != http.StatusOK || rows(first) != 50 ||
		!strings.Contains(first.body, "audience.run") ||
		!strings.Contains(first.body, "api:token") {
		t.Fatalf("GET /audit-log: %d, %d rows", first.status, rows(first))
	}
	if first.header.Get("X-Frame-Options") != "DENY" ||
		!strings.Contains(first.header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Errorf("the audit log page may be framed: %v", first.header)
	}
	link := regexp.MustCompile(`href="(/audit-log\?next=[0-9]+)"`).FindStringSubmatch(first.body)
	if link == nil {
		t.Fatalf("no link to older entries")
	}
	older := link[1]
	second := site.do(t, abuseRequest{method: http.MethodGet, path: older, cookie: cookie})
	if second.status != http.StatusOK || rows(second) != 5 ||
		!strings.Contains(second.body, `href="/audit-log"`) ||
		!strings.Contains(second.body, "identity.unlink") {
		t.Errorf("GET %s: %d, %d rows", older, second.status, rows(second))
	}
	// The unlink's target and reason hold markup: shown as text.
	if strings.Contains(second.body, "<b data-pwn") ||
		strings.Count(second.body, "&lt;b data-pwn=1&gt;") != 2 {
		t.Errorf("an entry's target or detail is not escaped:\n%s", second.body)
	}
	settings := site.do(t, abuseRequest{method: http.MethodGet, path: "/settings", cookie: cookie})
	if !strings.Contains(settings.body, `href="/audit-log"`) {
		t.Errorf("the settings page does not link the audit log")
	}
	signedOut := site.do(t, abuseRequest{method: http.MethodGet, path: "/audit-log"})
	if signedOut.status != http.StatusSeeOther {
		t.Errorf("GET /audit-log signed out: %d", signedOut.status)
	}
}

// TestConsoleAuditLogPassesAnAccessibilityCheck runs axe-core over the
// audit log page with entries, in Chromium.
func TestConsoleAuditLogPassesAnAccessibilityCheck(t *testing.T) {
	site := mustAbuseSite(t, resolver.DefaultRules(), nil)
	if a := site.api(t, abuseRequest{method: http.MethodPost,
		path: "/audiences/cart_abandonment/runs"}); a.status != http.StatusOK {
		t.Fatalf("run: %d", a.status)
	}
	ctx := mustBrowser(t, site.URL)
	mustVisit(t, ctx, site.URL+"/login")
	mustSignIn(t, ctx, abuseToken)
	if status, _ := mustVisit(t, ctx, site.URL+"/audit-log"); status != http.StatusOK {
		t.Fatalf("GET /audit-log: %d", status)
	}
	mustBeAccessible(t, ctx)
}

// TestTheFirstTokenIsKnitsOwnDoing: the token knit generates on its first
// start is in the audit log as the system's, not an unknown actor's.
func TestTheFirstTokenIsKnitsOwnDoing(t *testing.T) {
	db := sqltest.MustOpen(t)
	if _, generated, err := web.EnsureToken(t.Context(), db, "", time.Now); err != nil ||
		generated == "" {
		t.Fatalf("EnsureToken: %q, %v", generated, err)
	}
	page, err := resolver.NewAuditLog(db).List(t.Context(), "", 10)
	if err != nil || len(page.Entries) != 1 || page.Entries[0].Actor != "system" ||
		page.Entries[0].Action != resolver.AuditTokenReset {
		t.Errorf("the audit log after the first start: %+v, %v", page.Entries, err)
	}
}
