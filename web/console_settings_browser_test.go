package web_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

func TestConsoleSettingsShowWhatIsSetButNoSecret(t *testing.T) {
	base := mustConsoleServer(t)
	ctx := mustBrowser(t, base)
	mustVisit(t, ctx, base+"/login")
	mustSignIn(t, ctx, browserToken)

	status, _ := mustVisit(t, ctx, base+"/settings")
	if status != http.StatusOK {
		t.Fatalf("settings: status %d", status)
	}
	text := mustText(t, ctx, "main")
	for _, want := range []string{
		base + "/webhook", "Set: requests must carry a valid X-Signature",
		base + "/v1/batch", "2 write key(s) accepted",
		"The API token or the admin password.", "SQLite (test)",
		"100 merges, 1,000 identifiers",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("settings page lacks %q", want)
		}
	}

	rules := mustRows(t, ctx, "table.rules")
	if len(rules) == 0 || rules[0][1] != "user_id" || rules[0][2] != "1" {
		t.Errorf("identity rules start with %q, want user_id limited to 1", rules[:1])
	}
	schedules := mustRows(t, ctx, "table.schedules")
	if len(schedules) != 2 || schedules[0][0] != "cart_abandonment" ||
		!strings.Contains(schedules[0][1], "*/15 * * * *") ||
		schedules[0][3] != "an email" {
		t.Errorf("audience schedules = %q", schedules)
	}

	html := mustRun(t, ctx, chromedp.OuterHTML[string]("html"))
	for _, secret := range []string{browserToken, browserPassword} {
		if strings.Contains(html, secret) {
			t.Errorf("the settings page shows a secret: %q", secret)
		}
	}
	mustBeAccessible(t, ctx)
	mustScreenshot(t, ctx, "settings.png")
}

func TestAdminPasswordOpensTheConsoleButNotTheAPI(t *testing.T) {
	base := mustConsoleServer(t)
	ctx := mustBrowser(t, base)
	mustVisit(t, ctx, base+"/login")
	if label := mustText(t, ctx, `label[for="token"]`); label !=
		"API token or admin password" {
		t.Errorf("sign-in label = %q", label)
	}

	status, _ := mustSignIn(t, ctx, "not the password")
	if status != http.StatusUnauthorized || mustText(t, ctx, ".error") !=
		"That is neither the API token nor the admin password." {
		t.Errorf("wrong password: status %d", status)
	}
	status, at := mustSignIn(t, ctx, browserPassword)
	if status != http.StatusOK || at != base+"/" {
		t.Fatalf("admin password: status %d at %s, want the audiences page", status, at)
	}

	req, err := http.NewRequest(http.MethodGet, base+"/audiences", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+browserPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the admin password as an API token: %d, want 401", resp.StatusCode)
	}
}
