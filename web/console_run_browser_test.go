package web_test

import (
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"
)

func TestRunNowComesBackToThePageItWasPressedOn(t *testing.T) {
	base := mustConsoleServer(t)
	ctx := mustBrowser(t, base)
	mustVisit(t, ctx, base+"/login")
	mustSignIn(t, ctx, browserToken)

	mustVisit(t, ctx, base+"/audience/cart_abandonment")
	status, at := mustLoad(t, ctx, chromedp.Click(
		chromedp.CSS(`form[action="/run/cart_abandonment"] button`)))
	if status != http.StatusOK || at != base+"/audience/cart_abandonment" {
		t.Errorf("run now on the audience's page: status %d at %s, want that page", status, at)
	}
}
