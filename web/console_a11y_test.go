package web_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// axeViolation is one accessibility rule a page breaks, as axe-core
// reports it.
type axeViolation struct {
	ID    string   `json:"id"`
	Help  string   `json:"help"`
	Nodes []string `json:"nodes"`
}

// mustBeAccessible runs axe-core (vendored in testdata/axe-core) over the
// page the tab shows, against WCAG 2 A and AA (labels, contrast, names,
// landmarks), and fails the test on any violation.
func mustBeAccessible(t *testing.T, ctx context.Context) {
	t.Helper()
	axe, err := os.ReadFile("testdata/axe-core/axe.min.js")
	if err != nil {
		t.Fatalf("read axe-core: %v", err)
	}
	mustRun(t, ctx, chromedp.Evaluate[any](string(axe)+";0"))

	violations := mustRun(t, ctx, chromedp.Evaluate[[]axeViolation](`axe.run(document, {
		runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
	}).then(r => r.violations.map(v => ({id: v.id, help: v.help,
		nodes: v.nodes.map(n => n.target.join(" ")).slice(0, 5)})))`,
		chromedp.EvalAwaitPromise))
	if len(violations) == 0 {
		return
	}
	page := mustRun(t, ctx, chromedp.Location())
	var lines []string
	for _, v := range violations {
		lines = append(lines, v.ID+": "+v.Help+" at "+strings.Join(v.Nodes, ", "))
	}
	t.Errorf("%s breaks %d accessibility rules:\n%s", page, len(violations),
		strings.Join(lines, "\n"))
}

func TestConsolePagesPassAnAccessibilityCheck(t *testing.T) {
	base := mustConsoleServer(t)
	ctx := mustBrowser(t, base)

	mustVisit(t, ctx, base+"/login")
	mustBeAccessible(t, ctx)
	mustSignIn(t, ctx, browserToken)
	for _, path := range consolePages(t, ctx, base) {
		t.Run(path, func(t *testing.T) {
			mustVisit(t, ctx, base+path)
			mustBeAccessible(t, ctx)
		})
	}
}

// consolePages lists a signed-in console's pages worth checking: every
// section, one audience and Jane's profile.
func consolePages(t *testing.T, ctx context.Context, base string) []string {
	t.Helper()
	_, jane := mustSearch(t, ctx, "jane.doe@example.com")
	return []string{"/", strings.TrimPrefix(jane, base)}
}
