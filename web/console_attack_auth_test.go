package web_test

// Attacks on the console: hostile data from Segment messages, forged forms,
// redirects, sessions, secrets, headers and odd input. Every server here
// listens on 127.0.0.1 and nothing is sent anywhere else; payloads name only
// relative URLs, so even one that got through would not reach another host.

import (
	"context"
	"encoding/base64"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/chromedp/chromedp"

	"github.com/knit-cdp/knit/web"
)

// Attacks on forms, redirects, credentials, sessions and headers; the
// data attacks are in console_attack_test.go.

// TestAttackFormsRefuseForgedPosts posts every console form without its
// CSRF token, with a wrong one, with another session's, in the query
// string instead of the body, and as multipart and JSON: each is refused
// and changes nothing. GET and HEAD on the same addresses change nothing.
func TestAttackFormsRefuseForgedPosts(t *testing.T) {
	site := mustAttackSite(t)
	victim := site.signIn(t, attackToken)
	other := site.signIn(t, attackPassword)
	_, page := site.do(t, http.MethodGet, "/", nil, victim, nil)
	token := attackCSRFOf(t, page)
	_, otherPage := site.do(t, http.MethodGet, "/", nil, other, nil)
	otherToken := attackCSRFOf(t, otherPage)
	if token == otherToken {
		t.Fatalf("two sessions share the CSRF token %s", token)
	}
	jane := site.profileOf(t, "janedoe@example.com")
	runBefore := site.lastRun(t, "cart_abandonment")

	forms := []struct {
		path string
		form url.Values
	}{
		{"/run/cart_abandonment", url.Values{"back": {"/"}}},
		{fmt.Sprintf("/people/%d/unlink", jane),
			url.Values{"identifier": {"email:janedoe@example.com"}, "reason": {"forged"}}},
		{fmt.Sprintf("/people/%d/delete", jane), url.Values{"identifier": {""}}},
		{"/logout", url.Values{}},
	}
	forgeries := map[string]func(url.Values) (url.Values, string){
		"no token":    func(v url.Values) (url.Values, string) { return v, "" },
		"empty token": func(v url.Values) (url.Values, string) { return attackWith(v, ""), "" },
		"wrong token": func(v url.Values) (url.Values, string) {
			return attackWith(v, strings.Repeat("0", 64)), ""
		},
		"another's token": func(v url.Values) (url.Values, string) {
			return attackWith(v, otherToken), ""
		},
		"token in the query": func(v url.Values) (url.Values, string) { return v, "?csrf=" + token },
		"token with a suffix": func(v url.Values) (url.Values, string) {
			return attackWith(v, token+"0"), ""
		},
		"token upper case": func(v url.Values) (url.Values, string) {
			return attackWith(v, strings.ToUpper(token)), ""
		},
	}
	for _, f := range forms {
		for name, forge := range forgeries {
			form, query := forge(f.form)
			resp, body := site.do(t, http.MethodPost, f.path+query, form, victim, nil)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("POST %s with %s: %d %s, want 403", f.path, name,
					resp.StatusCode, strings.TrimSpace(body))
			}
		}
		// A JSON body, as fetch() from another site could send with no-cors
		// only as text/plain: neither carries a form field.
		for _, ctype := range []string{"application/json", "text/plain"} {
			header := http.Header{"Content-Type": {ctype}}
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, site.URL+f.path,
				strings.NewReader(`{"csrf":"`+token+`"}`))
			req.Header = header
			req.AddCookie(victim)
			resp, err := attackNoRedirects.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("POST %s as %s: %d, want 403", f.path, ctype, resp.StatusCode)
			}
		}
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			resp, _ := site.do(t, method, f.path+"?csrf="+token, nil, victim, nil)
			if resp.StatusCode == http.StatusSeeOther &&
				resp.Header.Get("Location") != "" && f.path == "/logout" {
				t.Errorf("%s %s signs out", method, f.path)
			}
		}
	}
	// A session's token is no token for a visitor without the session.
	resp, _ := site.do(t, http.MethodPost, "/run/cart_abandonment",
		url.Values{"csrf": {token}}, nil, nil)
	if resp.StatusCode != http.StatusSeeOther ||
		!strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Errorf("POST /run without a session: %d to %s, want the sign-in page",
			resp.StatusCode, resp.Header.Get("Location"))
	}

	if !site.exists(t, "janedoe@example.com") || site.profileOf(t, "janedoe@example.com") != jane {
		t.Errorf("a forged form changed Jane's profile %d", jane)
	}
	if got := site.lastRun(t, "cart_abandonment"); got != runBefore {
		t.Errorf("a forged form ran cart_abandonment: run %d, before %d", got, runBefore)
	}
	if resp, _ := site.do(t, http.MethodGet, "/", nil, victim, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("a forged sign-out ended the session: GET / is %d", resp.StatusCode)
	}

	// The real forms work with the real token.
	resp, _ = site.do(t, http.MethodPost, "/run/cart_abandonment",
		url.Values{"csrf": {token}, "back": {"/audience/cart_abandonment"}}, victim, nil)
	if resp.StatusCode != http.StatusSeeOther ||
		resp.Header.Get("Location") != "/audience/cart_abandonment" {
		t.Errorf("run now with its token: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if site.lastRun(t, "cart_abandonment") == runBefore {
		t.Errorf("run now with its token did not run")
	}
	resp, _ = site.do(t, http.MethodPost, "/logout", url.Values{"csrf": {token}}, victim, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("sign out with its token: %d", resp.StatusCode)
	}
	resp, _ = site.do(t, http.MethodGet, "/", nil, victim, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the session survived signing out: GET / is %d", resp.StatusCode)
	}
	if resp, _ := site.do(t, http.MethodGet, "/", nil, other, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("signing one session out ended another: GET / is %d", resp.StatusCode)
	}
}

// attackWith returns a copy of v with csrf set to token.
func attackWith(v url.Values, token string) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = vs
	}
	out.Set("csrf", token)
	return out
}

// attackRedirects are next and back values that try to leave the site.
var attackRedirects = []string{
	"//evil.example", "///evil.example", "////evil.example", "/\\evil.example",
	"\\/evil.example", "/\\/evil.example", "https://evil.example", "http:evil.example",
	"http:/evil.example", "HTTPS://evil.example", "//evil.example/%2F..",
	"/%2F%2Fevil.example", "/%2F/evil.example", "/%5Cevil.example", "/%5C%5Cevil.example",
	"/\t/evil.example", "\t//evil.example", "/\n/evil.example", "/\r\n/evil.example",
	" //evil.example", "/ /evil.example", "/\u3000/evil.example", "/\x00/evil.example",
	"/.//evil.example", "/./\\evil.example", "/..//evil.example", "/%2e%2e//evil.example",
	"/./../..//evil.example", "javascript:alert(1)", "/javascript:alert(1)",
	"data:text/html,<script>alert(1)</script>", "evil.example", ".evil.example",
	"/@evil.example", "/?//evil.example", "/#//evil.example", "/\u2028/evil.example",
	"\uFF0F\uFF0Fevil.example", "/\uFF0Fevil.example",
	"/login\r\nSet-Cookie: knit_session=fixed", "/%0d%0aSet-Cookie:%20x=y",
	strings.Repeat("/", 5000) + "evil.example",
}

// checkLocal fails unless the redirect's Location stays on the site as a
// browser reads it: browsers drop tabs and newlines and read a backslash
// as a slash.
func checkLocal(t *testing.T, what, next string, resp *http.Response) {
	t.Helper()
	location := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("%s with %q: status %d, want 303", what, next, resp.StatusCode)
		return
	}
	if len(resp.Header.Values("Set-Cookie")) > 1 && strings.Contains(next, "Set-Cookie") {
		t.Errorf("%s with %q set cookies %q", what, next, resp.Header.Values("Set-Cookie"))
	}
	browser := strings.Map(func(r rune) rune {
		switch r {
		case '\t', '\n', '\r':
			return -1
		case '\\':
			return '/'
		}
		return r
	}, location)
	browser = strings.TrimLeft(browser, " \x00")
	u, err := url.Parse(browser)
	if !strings.HasPrefix(browser, "/") || strings.HasPrefix(browser, "//") ||
		err != nil || u.Scheme != "" || u.Host != "" {
		t.Errorf("%s with %q redirects to %q, off the site", what, next, location)
	}
}

// TestAttackRedirectsStayOnTheSite signs in and runs audiences with next
// and back values that try to send the visitor to another site.
func TestAttackRedirectsStayOnTheSite(t *testing.T) {
	site := mustAttackSite(t)
	cookie := site.signIn(t, attackToken)
	_, page := site.do(t, http.MethodGet, "/", nil, cookie, nil)
	token := attackCSRFOf(t, page)
	for _, next := range attackRedirects {
		// In the form, as the sign-in page posts it.
		resp, _ := site.do(t, http.MethodPost, "/login",
			url.Values{"token": {attackToken}, "next": {next}}, nil, nil)
		checkLocal(t, "sign in (form)", next, resp)
		// In the query string, as a link to the sign-in page gives it.
		resp, _ = site.do(t, http.MethodPost, "/login?next="+url.QueryEscape(next),
			url.Values{"token": {attackPassword}}, nil, nil)
		if !isText(next) && resp.StatusCode == http.StatusBadRequest {
			continue // an address with a NUL or bad UTF-8 is refused outright
		}
		checkLocal(t, "sign in (query)", next, resp)
		resp, _ = site.do(t, http.MethodPost, "/run/shoe_reorder",
			url.Values{"csrf": {token}, "back": {next}}, cookie, nil)
		checkLocal(t, "run now", next, resp)
	}
	// Local paths are kept.
	for _, next := range []string{"/people?q=anon_456", "/audience/cart_abandonment#members",
		"/%2F%2Fevil.example"} {
		resp, _ := site.do(t, http.MethodPost, "/login",
			url.Values{"token": {attackToken}, "next": {next}}, nil, nil)
		if got := resp.Header.Get("Location"); got != next {
			t.Errorf("sign in with next %q goes to %q", next, got)
		}
	}
	// The redirect to the sign-in page keeps the address, query and all,
	// as a local path.
	resp, _ := site.do(t, http.MethodGet, "//evil.example/%2F..", nil, nil, nil)
	t.Logf("GET //evil.example/%%2F..: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	resp, _ = site.do(t, http.MethodGet, "/people?q=%2F%2Fevil.example", nil, nil, nil)
	want := "/login?next=%2Fpeople%3Fq%3D%252F%252Fevil.example"
	if got := resp.Header.Get("Location"); got != want {
		t.Errorf("signed-out deep link redirects to %q", got)
	}
}

// attackAPI is every API request, with the method it needs.
func attackAPI() [][2]string {
	id := "user_id:abc123def"
	base := "/v1/spaces/any/collections/users/profiles/" + id
	return [][2]string{
		{http.MethodGet, "/audiences"},
		{http.MethodGet, "/audiences/cart_abandonment"},
		{http.MethodGet, "/audiences/cart_abandonment.csv"},
		{http.MethodGet, "/audiences/cart_abandonment/changes"},
		{http.MethodPost, "/audiences/cart_abandonment/runs"},
		{http.MethodPost, "/audience-previews"},
		{http.MethodGet, base + "/traits"},
		{http.MethodGet, base + "/external_ids"},
		{http.MethodGet, base + "/merges"},
		{http.MethodGet, base + "/events"},
		{http.MethodGet, base + "/metadata"},
		{http.MethodGet, base + "/links"},
		{http.MethodPost, base + "/unlink"},
		{http.MethodDelete, base},
	}
}

// TestAttackEveryPageAndAPINeedsCredentials asks for every console page and
// API without credentials, with forged ones, and with the admin password
// as an API token: the console sends the visitor to sign in, the API
// answers 401, and nothing changes.
func TestAttackEveryPageAndAPINeedsCredentials(t *testing.T) {
	site := mustAttackSite(t)
	valid := site.signIn(t, attackToken)
	forgedCookies := map[string]*http.Cookie{
		"no cookie":     nil,
		"empty cookie":  {Name: sessionCookie, Value: ""},
		"made-up id":    {Name: sessionCookie, Value: strings.Repeat("a", 64)},
		"the token":     {Name: sessionCookie, Value: attackToken},
		"the password":  {Name: sessionCookie, Value: attackPassword},
		"id with space": {Name: sessionCookie, Value: valid.Value + " "},
		"upper case id": {Name: sessionCookie, Value: strings.ToUpper(valid.Value)},
	}
	pages := append(attackPages(site.hostile), "/people/1/unlink", "/settings?x=1")
	for _, path := range pages {
		if strings.HasPrefix(path, "/login") {
			continue
		}
		for name, cookie := range forgedCookies {
			resp, body := site.do(t, http.MethodGet, path, nil, cookie, nil)
			if resp.StatusCode != http.StatusSeeOther ||
				!strings.HasPrefix(resp.Header.Get("Location"), "/login?next=") ||
				strings.Contains(body, "<h1") || strings.Contains(body, "<main") {
				t.Errorf("GET %s with %s: %d to %q, want the sign-in page", path, name,
					resp.StatusCode, resp.Header.Get("Location"))
			}
		}
	}

	credentials := map[string]http.Header{
		"nothing":                        {},
		"the password as bearer":         {"Authorization": {"Bearer " + attackPassword}},
		"the password as basic":          {"Authorization": {attackBasic(attackPassword, "")}},
		"the password as basic password": {"Authorization": {attackBasic("", attackPassword)}},
		"the token as basic password":    {"Authorization": {attackBasic("", attackToken)}},
		"a wrong bearer":                 {"Authorization": {"Bearer " + attackToken + "x"}},
		"the token with a prefix":        {"Authorization": {"Bearer x" + attackToken}},
		"the token in the query":         {},
		"the session id as bearer":       {"Authorization": {"Bearer " + valid.Value}},
		"the webhook secret":             {"Authorization": {"Bearer " + attackWebhookSecret}},
		"the write key":                  {"Authorization": {attackBasic(attackWriteKey, "")}},
	}
	jane := site.profileOf(t, "janedoe@example.com")
	before := site.lastRun(t, "cart_abandonment")
	for _, call := range attackAPI() {
		for name, header := range credentials {
			path := call[1]
			if name == "the token in the query" {
				path += "?token=" + attackToken + "&api_token=" + attackToken
			}
			resp, body := site.do(t, call[0], path, nil, nil, header)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s with %s: %d %.200s, want 401", call[0], path, name,
					resp.StatusCode, body)
			}
		}
		// A console session reads, but never changes, through the API.
		resp, body := site.do(t, call[0], call[1], nil, valid, nil)
		safe := call[0] == http.MethodGet || call[0] == http.MethodHead
		if !safe && resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s with a console session: %d %.200s, want 401", call[0], call[1],
				resp.StatusCode, body)
		}
		// Nor does a session signed in with the admin password, with its
		// CSRF token in a form.
		pw := site.signIn(t, attackPassword)
		_, page := site.do(t, http.MethodGet, "/", nil, pw, nil)
		resp, _ = site.do(t, call[0], call[1], url.Values{"csrf": {attackCSRFOf(t, page)}}, pw, nil)
		if !safe && resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s with a password session and its CSRF token: %d, want 401",
				call[0], call[1], resp.StatusCode)
		}
	}
	if !site.exists(t, "janedoe@example.com") || site.profileOf(t, "janedoe@example.com") != jane ||
		site.lastRun(t, "cart_abandonment") != before {
		t.Errorf("a refused API call changed data")
	}
	// The API token works, as the header and as the Basic user.
	for _, header := range []http.Header{{"Authorization": {"Bearer " + attackToken}},
		{"Authorization": {attackBasic(attackToken, "")}}} {
		resp, _ := site.do(t, http.MethodGet, "/audiences", nil, nil, header)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET /audiences with the token: %d", resp.StatusCode)
		}
	}
}

func attackBasic(user, password string) string {
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(user, password)
	return req.Header.Get("Authorization")
}

// signedIn tells whether cookie opens the console and reads the API.
func (s *attackSite) signedIn(t *testing.T, cookie *http.Cookie) (console, api bool) {
	t.Helper()
	resp, _ := s.do(t, http.MethodGet, "/settings", nil, cookie, nil)
	console = resp.StatusCode == http.StatusOK
	resp, _ = s.do(t, http.MethodGet, "/audiences", nil, cookie, nil)
	return console, resp.StatusCode == http.StatusOK
}

// TestAttackSessionsEnd checks that a session ends when it is signed out,
// when it expires and when the API token is reset, and that the sign-in
// form takes nothing but the token and the password.
func TestAttackSessionsEnd(t *testing.T) {
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	site := mustAttackSiteWith(t, now)

	for _, wrong := range []string{"", " ", attackToken + "x", attackToken[:len(attackToken)-1],
		strings.ToUpper(attackToken), attackPassword + "x", attackWebhookSecret,
		attackWriteKey, attackToken + "\x00", attackPassword[:10]} {
		if c := site.signIn(t, wrong); c != nil {
			t.Errorf("signing in with %q started a session", wrong)
		}
	}

	// Expiry, on the auth clock: 12 hours.
	cookie := site.signIn(t, attackToken)
	if cookie.MaxAge != 12*60*60 || !cookie.HttpOnly || cookie.Path != "/" {
		t.Errorf("session cookie %+v: want MaxAge 43200, HttpOnly, Path /", cookie)
	}
	mu.Lock()
	clock = clock.Add(12*time.Hour - time.Minute)
	mu.Unlock()
	if console, api := site.signedIn(t, cookie); !console || !api {
		t.Errorf("a session of 11h59m: console %v, API %v; want both", console, api)
	}
	mu.Lock()
	clock = clock.Add(2 * time.Minute)
	mu.Unlock()
	if console, api := site.signedIn(t, cookie); console || api {
		t.Errorf("a session of 12h01m: console %v, API %v; want neither", console, api)
	}

	// Signing out ends the session on the server, not only in the browser.
	cookie = site.signIn(t, attackPassword)
	_, page := site.do(t, http.MethodGet, "/", nil, cookie, nil)
	resp, _ := site.do(t, http.MethodPost, "/logout",
		url.Values{"csrf": {attackCSRFOf(t, page)}}, cookie, nil)
	cleared := false
	for _, c := range resp.Cookies() {
		cleared = cleared || (c.Name == sessionCookie && c.MaxAge < 0 && c.HttpOnly)
	}
	if !cleared {
		t.Errorf("sign out did not clear the cookie: %q", resp.Header.Values("Set-Cookie"))
	}
	if console, api := site.signedIn(t, cookie); console || api {
		t.Errorf("a signed-out session replayed: console %v, API %v", console, api)
	}

	// knit token reset signs every session out, even with KNIT_API_TOKEN set.
	byToken, byPassword := site.signIn(t, attackToken), site.signIn(t, attackPassword)
	if _, err := web.ResetToken(t.Context(), site.db); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*http.Cookie{"token": byToken, "password": byPassword} {
		if console, api := site.signedIn(t, c); console || api {
			t.Errorf("a %s session after token reset: console %v, API %v", name, console, api)
		}
	}
}

// TestAttackChangingThePasswordEndsItsSessions: a session opened with the
// admin password must not outlive it. When KNIT_ADMIN_PASSWORD is changed
// (or removed) because it leaked, whoever signed in with it must lose the
// console and the API at once, not after 12 hours. Sessions are
// bound to the credentials in force (the token and the password), so a
// new password ends every session, the token's too: everyone signs in
// again.
func TestAttackChangingThePasswordEndsItsSessions(t *testing.T) {
	site := mustAttackSite(t)
	byPassword := site.signIn(t, attackPassword)
	byToken := site.signIn(t, attackToken)

	site.auth.SetAdminPassword("a new password after the leak")
	if c := site.signIn(t, attackPassword); c != nil {
		t.Fatalf("the old password still signs in")
	}
	if console, api := site.signedIn(t, byToken); console || api {
		t.Errorf("a token session after a password change: console %v, API %v; "+
			"want it ended with the others", console, api)
	}
	if console, api := site.signedIn(t, byPassword); console || api {
		t.Errorf("a session opened with the old password still works: console %v, "+
			"API %v; want neither", console, api)
	}

	site.auth.SetAdminPassword("")
	if console, api := site.signedIn(t, site.signIn(t, attackToken)); !console || !api {
		t.Errorf("the token does not sign in without a password set")
	}
}

// TestAttackEveryHTMLPageRefusesFraming requests every page the site
// answers as HTML, errors and all, and checks that none may be framed and
// each carries the Content-Security-Policy. Answers that are not pages
// (403 and 500 text, JSON) must not be HTML.
func TestAttackEveryHTMLPageRefusesFraming(t *testing.T) {
	site := mustAttackSite(t)
	cookie := site.signIn(t, attackToken)
	type request struct {
		method, path string
		form         url.Values
		cookie       *http.Cookie
	}
	requests := []request{
		{http.MethodGet, "/login", nil, nil},
		{http.MethodGet, "/login?next=/settings", nil, nil},
		{http.MethodPost, "/login", url.Values{"token": {"wrong"}}, nil},
		{http.MethodGet, "/people/999999", nil, cookie},
		{http.MethodGet, "/audience/nope", nil, cookie},
		{http.MethodPost, "/run/cart_abandonment", url.Values{}, cookie},
		{http.MethodPost, "/people/1/delete", url.Values{"csrf": {"x"}}, cookie},
		{http.MethodGet, "/nowhere", nil, cookie},
		{http.MethodGet, "/static/style.css", nil, nil},
		{http.MethodGet, "/static/favicon.svg", nil, nil},
	}
	for _, path := range attackPages(site.hostile) {
		requests = append(requests, request{http.MethodGet, path, nil, cookie})
	}
	for _, r := range requests {
		resp, body := site.do(t, r.method, r.path, r.form, r.cookie, nil)
		ctype := resp.Header.Get("Content-Type")
		html := strings.HasPrefix(ctype, "text/html") ||
			(ctype == "" && strings.Contains(strings.ToLower(body), "<html"))
		if !html || resp.StatusCode == http.StatusSeeOther {
			continue
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if resp.Header.Get("X-Frame-Options") != "DENY" ||
			!strings.Contains(csp, "frame-ancestors 'none'") ||
			!strings.Contains(csp, "default-src 'self'") {
			t.Errorf("%s %s: %d %s page without X-Frame-Options DENY and the CSP "+
				"(X-Frame-Options %q, CSP %q): %.200s", r.method, r.path, resp.StatusCode,
				ctype, resp.Header.Get("X-Frame-Options"), csp, body)
		}
	}
}

// TestAttackStaticFolderIsNoUnframedPage: /static/ answers, to anyone
// and without signing in, an HTML listing of the console's assets (Go's
// file server lists folders), the one HTML page of the site without
// X-Frame-Options and the CSP. A folder should be a 404.
func TestAttackStaticFolderIsNoUnframedPage(t *testing.T) {
	site := mustAttackSite(t)
	for _, path := range []string{"/static/", "/static", "/static/vendor/uplot/"} {
		resp, body := site.do(t, http.MethodGet, path, nil, nil, nil)
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") &&
			resp.StatusCode == http.StatusOK && resp.Header.Get("X-Frame-Options") == "" {
			t.Errorf("GET %s: 200 HTML without X-Frame-Options or CSP, listing: %q", path,
				regexp.MustCompile(`href="([^"]+)"`).FindAllString(body, -1))
		}
	}
}

// TestAttackCookiesBehindTLS: behind a TLS proxy the session cookie is
// Secure when it is set and when it is cleared, and always HttpOnly with
// SameSite=Lax.
func TestAttackCookiesBehindTLS(t *testing.T) {
	site := mustAttackSite(t)
	tls := http.Header{"X-Forwarded-Proto": {"https"}}
	resp, _ := site.do(t, http.MethodPost, "/login", url.Values{"token": {attackPassword}}, nil, tls)
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			session = c
		}
	}
	if session == nil || !session.Secure || !session.HttpOnly ||
		session.SameSite != http.SameSiteLaxMode || session.Path != "/" {
		t.Fatalf("session cookie behind TLS: %+v", session)
	}
	_, page := site.do(t, http.MethodGet, "/", nil, session, tls)
	resp, _ = site.do(t, http.MethodPost, "/logout",
		url.Values{"csrf": {attackCSRFOf(t, page)}}, session, tls)
	for _, raw := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(raw, sessionCookie+"=") && (!strings.Contains(raw, "Secure") ||
			!strings.Contains(raw, "HttpOnly") || !strings.Contains(raw, "SameSite=Lax")) {
			t.Errorf("clearing cookie behind TLS: %s", raw)
		}
	}
	// The settings page shows the addresses Segment must use, with the
	// scheme the visitor came by.
	session = site.signIn(t, attackToken)
	_, page = site.do(t, http.MethodGet, "/settings", nil, session, tls)
	if !strings.Contains(page, "https://127.0.0.1") {
		t.Errorf("the settings page behind TLS does not show https URLs")
	}
}

// attackCursor encodes text as the console's and the Profile API's
// cursors are encoded.
func attackCursor(text string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(text))
}

// TestAttackOddInputIsNoServerError sends the console and the API what
// browsers and scripts can send: invalid UTF-8, NUL, huge values, negative
// and overflowing numbers, and tampered cursors. Each is answered without
// a 500, and a tampered cursor shows only the profile asked for. On
// PostgreSQL (KNIT_TEST_POSTGRES) invalid UTF-8 and NUL reach the database,
// which refuses them: the search box, the member search and the Profile
// API answer 500. SQLite takes them.
func TestAttackOddInputIsNoServerError(t *testing.T) {
	site := mustAttackSite(t)
	cookie := site.signIn(t, attackToken)
	jane := site.profileOf(t, "janedoe@example.com")
	_, page := site.do(t, http.MethodGet, fmt.Sprintf("/people/%d", jane), nil, cookie, nil)
	older := regexp.MustCompile(`older=([A-Za-z0-9_-]+)`).FindStringSubmatch(page)
	if older == nil {
		t.Fatalf("Jane's timeline has no older page")
	}
	raw, _ := base64.RawURLEncoding.DecodeString(older[1])
	t.Logf("Jane's older cursor reads %q", raw)

	huge := strings.Repeat("a", 200_000)
	odd := []string{"%FF%FE", "%00", "a%00b", "%ED%A0%80", "%C0%AF", "%F4%90%80%80",
		huge, "%25", "_", "%5C", "'", "%22%3B--"}
	var paths []string
	for _, q := range odd {
		paths = append(paths, "/people?q="+q, "/audience/cart_abandonment?q="+q,
			"/audience/cart_abandonment?q="+q+"&page=2")
	}
	for _, n := range []string{"-1", "0", "-9223372036854775808", "9223372036854775807",
		"99999999999999999999", "1e3", "0x10", "%FF", "1%00", "1.5", " 1"} {
		paths = append(paths, "/audience/cart_abandonment?page="+n, "/people/"+n,
			"/people/"+n+"/unlink?identifier=email:x", "/people/"+n+"/delete")
	}
	for _, c := range []string{"garbage", "%FF", "", attackCursor("knit1:"),
		attackCursor("knit1:-9223372036854775808:-9223372036854775808"),
		attackCursor("knit1:9223372036854775807:9223372036854775807"),
		attackCursor("knit1:0:0"), attackCursor("knit1:1:x"), attackCursor("knit1:\xff:1"),
		attackCursor("knit1:1:2:3"), attackCursor("0:0"), strings.Repeat("A", 100_000)} {
		paths = append(paths,
			fmt.Sprintf("/people/%d?older=%s", jane, c),
			fmt.Sprintf("/people/%d?older=%s", site.hostile, older[1]),
			"/audiences/cart_abandonment?next="+c,
			"/audiences/cart_abandonment/changes?since="+c,
			"/v1/spaces/s/collections/users/profiles/user_id:abc123def/events?next="+c,
			"/v1/spaces/s/collections/users/profiles/user_id:abc123def/traits?next="+c,
			"/v1/spaces/s/collections/users/profiles/user_id:abc123def/external_ids?next="+c)
	}
	for _, id := range []string{"user_id:%FF", "user_id:%00", "email:%FF@x", "%FF:%FF",
		"user_id:" + huge, "x", ":", "user_id:"} {
		paths = append(paths, "/v1/spaces/s/collections/users/profiles/"+id+"/traits")
	}
	paths = append(paths,
		"/v1/spaces/s/collections/users/profiles/user_id:abc123def/traits?next="+
			attackCursor("knit1:\xff\x00"),
		"/v1/spaces/s/collections/users/profiles/user_id:abc123def/traits?limit=-1",
		"/v1/spaces/s/collections/users/profiles/user_id:abc123def/events?start=%FF",
		"/v1/spaces/s/collections/users/profiles/user_id:abc123def/events?include=%FF,%00",
		"/audiences/cart_abandonment.csv?columns=%FF", "/audiences/cart_abandonment.csv?layout=%00",
		"/audiences/%FF", "/audiences/%FF.csv", "/audience/%FF", "/run/%FF")

	for _, path := range paths {
		method := http.MethodGet
		var form url.Values
		if strings.HasPrefix(path, "/run/") {
			method, form = http.MethodPost, url.Values{"csrf": {attackCSRFOf(t, page)}}
		}
		resp, body := site.do(t, method, path, form, cookie, nil)
		if resp.StatusCode >= 500 {
			t.Errorf("%s %.150s: %d %.100s", method, path, resp.StatusCode, body)
		}
		if strings.Contains(path, fmt.Sprintf("/people/%d?older=", site.hostile)) &&
			strings.Contains(body, "Workout Completed") {
			t.Errorf("GET %.100s: the hostile person's page shows Jane's events", path)
		}
	}
}

// TestAttackCSVExportsNeutraliseFormulas downloads hostile_plan, whose
// members carry a user_id and a trait that a spreadsheet would run, in
// every layout the console offers: no cell may start a formula.
func TestAttackCSVExportsNeutraliseFormulas(t *testing.T) {
	site := mustAttackSite(t)
	cookie := site.signIn(t, attackToken)
	for _, query := range []string{"", "?layout=columns", "?layout=json", "?bom=1",
		"?hash_email=1"} {
		path := "/audiences/hostile_plan.csv" + query
		resp, body := site.do(t, http.MethodGet, path, nil, cookie, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		records, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(body, "\uFEFF"))).ReadAll()
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		found := false
		for _, record := range records {
			for _, cell := range record {
				found = found || strings.Contains(cell, "HYPERLINK")
				if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
					t.Errorf("GET %s: cell %q starts a formula", path, cell)
				}
			}
		}
		if !found && !strings.Contains(query, "json") {
			t.Errorf("GET %s: the formula member is not in the export:\n%s", path, body)
		}
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: Cache-Control %q", path, resp.Header.Get("Cache-Control"))
		}
	}
}

// TestAttackSignedOutBrowserShowsNoPerson: someone signs out of the console
// on a shared computer; the next person presses Back. The person page must
// not come back from the browser's caches: pages that show people need
// Cache-Control: no-store (the CSV export has it; pages do not).
func TestAttackSignedOutBrowserShowsNoPerson(t *testing.T) {
	site := mustAttackSite(t)
	jane := site.profileOf(t, "janedoe@example.com")
	ctx := mustBrowser(t, site.URL)
	mustVisit(t, ctx, site.URL+"/login")
	mustSignIn(t, ctx, attackToken)
	mustVisit(t, ctx, fmt.Sprintf("%s/people/%d", site.URL, jane))
	if h1 := mustText(t, ctx, "main h1"); h1 != "Jane Doe" {
		t.Fatalf("Jane's page reads %q", h1)
	}
	_, at := mustLoad(t, ctx, chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)))
	if at != site.URL+"/login" {
		t.Fatalf("signing out lands at %s", at)
	}
	// history.back(), not chromedp.NavigateBack: a page restored from the
	// back/forward cache fires no load event to wait for.
	mustRun(t, ctx, chromedp.Evaluate[any](`history.back(); 0`))
	location, text := settledPage(t, ctx)
	if strings.Contains(text, "janedoe@example.com") || strings.Contains(text, "Jane Doe") {
		t.Errorf("after signing out, Back shows %s with Jane's data:\n%.300s", location, text)
	}
	for _, path := range []string{fmt.Sprintf("/people/%d", jane), "/audience/cart_abandonment",
		"/ingestion"} {
		cookie := site.signIn(t, attackToken)
		resp, _ := site.do(t, http.MethodGet, path, nil, cookie, nil)
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
			t.Errorf("GET %s: Cache-Control %q, want no-store", path, cc)
		}
	}
}

func isText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// settledPage waits until the tab has finished loading one address twice in
// a row (Back may load a page and then be redirected), and returns that
// address and the page's text. A navigation under way only means waiting.
func settledPage(t *testing.T, ctx context.Context) (string, string) {
	t.Helper()
	previous := ""
	for range 100 {
		time.Sleep(100 * time.Millisecond)
		state, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
			`[document.readyState, location.href, document.body ? document.body.innerText : ""]`))
		if err != nil || len(state) != 3 || state[0] != "complete" {
			previous = ""
			continue
		}
		if state[1] == previous {
			return state[1], state[2]
		}
		previous = state[1]
	}
	t.Fatal("the page never settled after going back")
	return "", ""
}
